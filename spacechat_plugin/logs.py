"""Logs on stderr, each line carrying the request id of the request being served, so a log line
leads to the events the request caused (their envelopes carry the same `request_id`).

`log_format = "auto"` (the default) writes human-readable lines when stderr is a terminal (a
person runs `spacechat serve` and reads it) and one JSON object per line otherwise (a service
manager, a container, a pipe: something parses it); `"json"` and `"text"` force one or the other.
Neither carries terminal colour codes: uvicorn's `color_message` copy of its messages is dropped.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

from .events import current_request_id


class RequestIdFilter(logging.Filter):
    """Stamp the request id on every record, and drop uvicorn's ANSI-coloured copy of the
    message (its `color_message` extra), which would otherwise reach the JSON lines raw."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get()
        record.__dict__.pop("color_message", None)
        return True


class TextFormatter(logging.Formatter):
    """`14:06:01 INFO  spacechat: message [req_…]`: short enough to read in a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [{request_id}]" if request_id else line


def resolve_format(fmt: str, stream: TextIO) -> str:
    """`auto`: text for a terminal, JSON for anything else."""
    if fmt != "auto":
        return fmt
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a closed or unusual stream
        return "json"


def configure(level: str, fmt: str, stream: TextIO | None = None) -> str:
    """Send every log record (uvicorn's too) to one handler on `stream` (stderr); returns the
    format chosen."""
    out = stream or sys.stderr
    chosen = resolve_format(fmt, out)
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestIdFilter())
    if chosen == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
                timestamp=False,
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    return chosen
