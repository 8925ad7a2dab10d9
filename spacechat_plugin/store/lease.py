"""A lease in Postgres: at most one process at a time holds it (issue 17, "agents run once").

The lease is a session-level advisory lock held by a connection of its own. Postgres releases
it when that session ends, and a session ends when its process dies: a SIGKILLed holder's socket
is closed by the kernel and the server drops the session at once; a holder cut off by the
network is dropped when the server's TCP keepalives give up: the lease's session sets them
itself (`keepalive_seconds` idle, then 5 probes 1 s apart, and a `tcp_user_timeout` of twice
`keepalive_seconds`), since the server's defaults follow the kernel's (two hours). The holder's
own check (below) fails before that, so it stops before another can start. Meanwhile every other
process asks for the lock every `retry_seconds`, so one of them holds it within seconds.

The holder checks its session every `retry_seconds` too: when the check fails (the database
restarted, the connection broke) it may no longer hold the lock, and it says so (`on_lost`)
before anything else could take it over, then competes again like the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("spacechat.lease")


def lock_key(name: str) -> int:
    """A stable advisory lock key (a non-negative bigint) for a lease's name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") >> 1


class Lease:
    def __init__(
        self,
        dsn: str,
        name: str,
        *,
        on_acquired: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
        retry_seconds: float = 1.0,
        keepalive_seconds: int = 5,
    ) -> None:
        self.dsn, self.name, self.key = dsn, name, lock_key(name)
        self._on_acquired, self._on_lost = on_acquired, on_lost
        self.retry_seconds = retry_seconds
        self.keepalive_seconds = keepalive_seconds
        self.held = False
        self.acquired_times = 0
        self.attempts = 0  # times it asked for the lock without holding it
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"spacechat-lease-{self.name}")

    async def stop(self) -> None:
        """Give the lease up (a clean stop hands it over at once, not after a timeout)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close()
        self.held = False

    async def take_within(self, seconds: float) -> bool:
        """Ask for the lock until it is granted or `seconds` pass (a holder just killed is let go
        by Postgres a moment after its socket closes): True and held until `stop` when granted."""
        deadline = asyncio.get_running_loop().time() + seconds
        try:
            while not await self._try():
                if asyncio.get_running_loop().time() >= deadline:
                    await self._close()
                    return False
                await asyncio.sleep(self.retry_seconds)
        except BaseException:
            await self._close()
            raise
        self.held = True
        return True

    async def _connect(self) -> Any:
        import psycopg  # the `postgres` extra

        k = self.keepalive_seconds
        return await psycopg.AsyncConnection.connect(
            self.dsn,
            autocommit=True,
            application_name=f"spacechat lease {self.name}",
            connect_timeout=max(2, k),
            keepalives=1,
            keepalives_idle=k,
            keepalives_interval=1,
            keepalives_count=max(2, k),
            # The same on the server's end of the socket, which is what ends the session (and so
            # the lock) when this machine or its network is gone.
            options=(
                f"-c tcp_keepalives_idle={k} -c tcp_keepalives_interval=1 -c tcp_keepalives_count=5"
                f" -c tcp_user_timeout={2 * k * 1000}"
            ),
        )

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def _try(self) -> bool:
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect()
        cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
        row = await cursor.fetchone()
        return bool(row and row[0])

    async def _still_held(self) -> bool:
        """Whether our session is alive, and so still holds the lock: a session-level advisory
        lock ends only with its session or an unlock. A query, so a dead connection is found
        now, not when the kernel gives up on it."""
        cursor = await asyncio.wait_for(self._conn.execute("SELECT 1"), timeout=max(2, self.keepalive_seconds))
        return (await cursor.fetchone()) is not None

    async def _run(self) -> None:
        while True:
            try:
                if not self.held:
                    self.attempts += 1
                    if await self._try():
                        self.held = True
                        self.acquired_times += 1
                        log.info("took the lease %s", self.name)
                        await self._on_acquired()
                elif not await self._still_held():
                    raise ConnectionError("the lease's lock is gone")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._close()
                if self.held:
                    self.held = False
                    log.warning("lost the lease %s (%s)", self.name, exc)
                    with contextlib.suppress(Exception):
                        await self._on_lost()
                else:
                    log.debug("the lease %s cannot be asked for now: %s", self.name, exc)
            await asyncio.sleep(self.retry_seconds)


class FileLease(Lease):
    """The same lease among the worker processes of one machine (`spacechat serve --workers`,
    on the SQLite file): an exclusive `flock` on a file in the data directory, which the kernel
    releases when its holder's process ends, however it ends. Asked for, and held, like the
    Postgres one (the file lock cannot be lost while its holder lives)."""

    def __init__(
        self,
        path: Path,
        *,
        on_acquired: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
        retry_seconds: float = 1.0,
    ) -> None:
        super().__init__(str(path), path.name, on_acquired=on_acquired, on_lost=on_lost, retry_seconds=retry_seconds)
        self.path = path

    async def _try(self) -> bool:
        if self._conn is None:
            self._conn = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._conn, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    async def _still_held(self) -> bool:
        return True

    async def _close(self) -> None:
        fd, self._conn = self._conn, None
        if fd is not None:
            os.close(fd)  # releases the lock
