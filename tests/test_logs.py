"""`spacechat serve`'s logs (issue 13): readable lines when a person watches a terminal, one JSON
object per line for anything else, and never a terminal colour code inside the JSON."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .support import URL_LINE

pytestmark = pytest.mark.slow


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except OSError:  # a pty reads EIO once the process closed its end
        return b""


def _pump(process: subprocess.Popen[bytes], fds: dict[int, bytearray], until: float, done: Callable[[], bool]) -> None:
    """Read the process's output into `fds` until `done()` or the deadline."""
    while not done() and time.monotonic() < until:
        ready, _, _ = select.select(list(fds), [], [], 0.2)
        for fd in ready:
            fds[fd] += _read(fd)
        if not ready and process.poll() is not None:
            return


def serve(tmp_path: Path, *, stderr_tty: bool, config: str = "") -> tuple[str, str]:
    """Run `spacechat serve` until it prints its URL, stop it, and return (stdout, stderr)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "config.toml").write_text(config)
    command = [sys.executable, "-m", "spacechat_plugin", "serve", "--config", str(tmp_path / "config.toml")]
    command += ["--data-dir", str(tmp_path / "data"), "--port", "0"]
    master, slave = pty.openpty() if stderr_tty else (-1, -1)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=slave if stderr_tty else subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None and (stderr_tty or process.stderr is not None)
    if stderr_tty:
        os.close(slave)
    out_fd = process.stdout.fileno()
    err_fd = master if stderr_tty else process.stderr.fileno()  # type: ignore[union-attr]
    fds = {out_fd: bytearray(), err_fd: bytearray()}
    try:
        _pump(process, fds, time.monotonic() + 30, lambda: bool(URL_LINE.search(fds[out_fd].decode())))
        assert URL_LINE.search(fds[out_fd].decode()), fds
    finally:
        process.send_signal(signal.SIGTERM)
        _pump(process, fds, time.monotonic() + 15, lambda: False)
        process.wait(10)
        process.stdout.close()
        if stderr_tty:
            os.close(master)
        elif process.stderr is not None:
            process.stderr.close()
    return fds[out_fd].decode(), fds[err_fd].decode().replace("\r\n", "\n")


def test_a_terminal_gets_readable_lines(tmp_path: Path) -> None:
    out, err = serve(tmp_path, stderr_tty=True)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, err
    assert not any(line.lstrip().startswith("{") for line in lines), err
    assert any("INFO" in line and "Uvicorn running on" in line for line in lines), err
    assert "Spacechat is running at" in out and "Create the owner account" in out


def test_a_pipe_gets_json_without_colour_codes(tmp_path: Path) -> None:
    _, err = serve(tmp_path, stderr_tty=False)
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any("Uvicorn running on" in record["message"] for record in records), err
    assert "\x1b" not in err
    assert not any("color_message" in record for record in records)
    assert {"ts", "level", "logger", "message", "request_id"} <= set(records[0])


def test_the_format_can_be_forced(tmp_path: Path) -> None:
    _, err = serve(tmp_path, stderr_tty=False, config='log_format = "text"\n')
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and not any(line.startswith("{") for line in lines), err
    _, err = serve(tmp_path / "tty", stderr_tty=True, config='log_format = "json"\n')
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and all(json.loads(line)["message"] for line in lines), err
    assert "\x1b" not in err
