"""One server per data directory: an exclusive `flock` on `spacechat.lock`, taken before anything
in the directory is read or written.

Two servers on one SQLite file each believe they own the event log's seq and the live replies:
the second marks the first's streaming replies interrupted and, once it has written, the first
fails every write on `UNIQUE constraint failed: events.seq` (issue 10). The lock makes the second
start refuse at once, naming the process that holds it, having changed nothing.

`flock` locks belong to an open file description and end with the process (even `kill -9`), so a
crashed server never leaves a stale lock behind. The file keeps the holder's PID as text, for the
message only. Within one process the lock is re-entrant (the CLI takes it before the host starts,
the plugin again when it starts), counted, and released by the last holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = "spacechat.lock"


class DataDirBusy(Exception):
    """Another process holds the data directory's lock; the message names its PID."""

    def __init__(self, data_dir: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(
            f"{data_dir} is in use by another Spacechat ({holder}); stop it first, or use another --data-dir"
        )
        self.pid = pid


@dataclass
class _Held:
    fd: int
    count: int


_held: dict[Path, _Held] = {}
_mutex = threading.Lock()


def holder_pid(data_dir: Path) -> int | None:
    """The PID written in the lock file (whoever holds it now, or last held it)."""
    try:
        text = (data_dir / LOCK_NAME).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def ensure_free(data_dir: Path) -> None:
    """Raise DataDirBusy when another process holds the directory's lock; create nothing (the
    quick check before a slow start: `acquire` is what holds it)."""
    path = data_dir.expanduser().resolve() / LOCK_NAME
    if path.resolve().parent in _held:
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise DataDirBusy(path.parent, holder_pid(path.parent)) from None
    finally:
        os.close(fd)


def acquire(data_dir: Path) -> Path:
    """Take the data directory's lock (creating the directory); raise DataDirBusy at once when
    another process holds it. Returns the resolved directory, the key for `release`."""
    key = data_dir.expanduser().resolve()
    with _mutex:
        held = _held.get(key)
        if held is not None:
            held.count += 1
            return key
        key.mkdir(parents=True, exist_ok=True)
        fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirBusy(key, holder_pid(key)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = _Held(fd, 1)
        return key


def release(key: Path) -> None:
    """Give back one hold; the last one unlocks (the file stays: removing it would race a
    server starting now)."""
    with _mutex:
        held = _held.get(key)
        if held is None:
            return
        held.count -= 1
        if held.count > 0:
            return
        del _held[key]
        with contextlib.suppress(OSError):
            os.ftruncate(held.fd, 0)
        fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)
