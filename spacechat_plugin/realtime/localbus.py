"""The bus between the worker processes of one `spacechat serve --workers N` (issue 16).

Several workers on one machine share one SQLite file and need what several gateways get from
NATS (realtime/relay.py): each worker's committed events, live events and control messages
reach the others. The supervisor that started them runs a `Hub` on a Unix socket in the data
directory; each worker's relay connects to it with `connect`, which answers the few calls the
relay makes of a NATS client (`subscribe`, `publish`, `flush`, `close`, and the disconnected /
reconnected callbacks), so the relay's guarantees (seq order, gaps filled from the log, nothing
twice) are the same code in both deployments.

The wire is a stream of frames: a 4-byte big-endian length, then one byte giving the subject's
length, the subject, and the body. The hub sends each frame to every other connection (a
worker does not hear its own, as with NATS's `no_echo`). Like NATS core, it is at most once: a
worker that is restarting misses what is sent meanwhile, and its relay reads that from the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("spacechat.localbus")

HEADER = struct.Struct(">IB")  # frame length (after these 4 bytes), subject length
Callback = Callable[[], Awaitable[None]]


def frame(subject: str, body: bytes) -> bytes:
    name = subject.encode()
    return HEADER.pack(1 + len(name) + len(body), len(name)) + name + body


async def read_frame(reader: asyncio.StreamReader) -> tuple[str, bytes, bytes]:
    """(subject, body, the whole frame as read); IncompleteReadError at the end of the stream."""
    head = await reader.readexactly(HEADER.size)
    length, name_length = HEADER.unpack(head)
    rest = await reader.readexactly(length - 1)
    return rest[:name_length].decode(), rest[name_length:], head + rest


class Hub:
    """Relays frames between the workers' connections; run by the supervisor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.AbstractServer | None = None
        self.frames = 0

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left by a supervisor that was killed
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                _, _, whole = await read_frame(reader)
                self.frames += 1
                for other in self._writers:
                    if other is not writer and not other.is_closing():
                        other.write(whole)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()


class Message:
    """What a subscription's callback is given (as a NATS client gives its `Msg`)."""

    __slots__ = ("data", "subject")

    def __init__(self, subject: str, data: bytes) -> None:
        self.subject, self.data = subject, data


class Client:
    """A worker's connection to the hub, reconnecting by itself when it breaks."""

    def __init__(
        self,
        path: Path,
        *,
        disconnected_cb: Callback | None = None,
        reconnected_cb: Callback | None = None,
        reconnect_time_wait: float = 0.25,
    ) -> None:
        self.path = path
        self._disconnected_cb, self._reconnected_cb = disconnected_cb, reconnected_cb
        self.reconnect_time_wait = reconnect_time_wait
        self._callbacks: dict[str, Callable[[Message], Awaitable[None]]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._closed = False

    async def open(self) -> None:
        reader, self._writer = await asyncio.open_unix_connection(str(self.path))
        self._reader_task = asyncio.create_task(self._read(reader), name="spacechat-localbus-read")

    async def subscribe(self, subject: str, cb: Callable[[Message], Awaitable[None]]) -> None:
        self._callbacks[subject] = cb

    async def publish(self, subject: str, payload: bytes) -> None:
        if self._writer is None or self._writer.is_closing():
            raise ConnectionError("not connected to the workers' hub")
        self._writer.write(frame(subject, payload))

    async def flush(self) -> None:
        if self._writer is not None:
            await self._writer.drain()

    async def close(self) -> None:
        self._closed = True
        if self._writer is not None:
            self._writer.close()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """Hand each frame to its subject's callback, in order; when the hub goes away, say so
        and connect again until it is back (the relay fills the gap from the log)."""
        while True:
            try:
                subject, body, _ = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                if self._closed:
                    return
                if self._disconnected_cb is not None:
                    await self._disconnected_cb()
                reader = await self._reconnect()
                if self._reconnected_cb is not None:
                    await self._reconnected_cb()
                continue
            callback = self._callbacks.get(subject)
            if callback is not None:
                await callback(Message(subject, body))

    async def _reconnect(self) -> asyncio.StreamReader:
        while True:
            await asyncio.sleep(self.reconnect_time_wait)
            with contextlib.suppress(OSError):
                reader, self._writer = await asyncio.open_unix_connection(str(self.path))
                return reader


async def connect(url: str, **callbacks: Any) -> Client:
    """A connected client for a `unix://PATH` bus URL (the relay's only other kind is NATS)."""
    client = Client(Path(url.removeprefix("unix://")), **callbacks)
    await client.open()
    return client
