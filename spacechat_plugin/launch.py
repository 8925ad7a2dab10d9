"""The `spacechat` command's first step, before anything slow is imported.

`spacechat serve --data-dir DIR` on the data directory of a running server must refuse at once
(issue 10): under load, importing the command line and the configuration's models alone took
seconds. So the data directory's lock is checked here, with nothing but the standard library,
and only then is the command line loaded (which takes the lock for real once the configuration
is known to be good).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from .store.lock import DataDirBusy, ensure_free


def data_dir_argument(argv: Sequence[str]) -> str | None:
    """The `--data-dir` of a `serve` command line, when it has one."""
    if not argv or argv[0] != "serve" or "--worker" in argv:  # a worker's supervisor holds it
        return None
    for index, arg in enumerate(argv):
        if arg == "--data-dir" and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith("--data-dir="):
            return arg.split("=", 1)[1]
    return None


def main() -> None:
    data_dir = data_dir_argument(sys.argv[1:])
    if data_dir:
        try:
            ensure_free(Path(data_dir))
        except DataDirBusy as exc:
            sys.stderr.write(f"Error: {exc}\n")
            sys.exit(1)
    from .cli import main as cli

    cli()
