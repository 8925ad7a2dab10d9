"""Subscribers in their own processes, so the load generator is not what a figure measures (#16).

One process that reads from thousands of sockets and also sends the requests it times puts every
chunk's timestamp behind the chunks read before it in the same loop turn, and its CPU becomes the
ceiling before the server's does. `SubscriberPool` spreads N realtime subscribers (SSE, and
optionally WebSocket) over P child processes, each its own uvloop loop on the client CPU (the
affinity is inherited from the pinned parent). The parent keeps the senders.

Every subscriber looks for markers of the form `<prefix><6 digits>` in the bytes it receives and
notes when it first sees each index. A child reports an index once all of its own subscribers have
it, with its first and last arrival (on `time.perf_counter()`'s clock, CLOCK_MONOTONIC:
comparable across processes of one machine); the parent resolves the index when every child has
reported: the first arrival overall and the last. A child reports nothing for an index one of its
subscribers missed, so a timeout in the parent counts at most that child's subscribers as missed
(`missed_upper`).

An SSE subscriber's arrival time is the kernel's: its socket has `SO_TIMESTAMPNS`, and each read
carries the time its first byte reached the socket (`StampedReader`), as the client of
`../shared/limit/fanout_limit.py` measures the raw limit. So a figure does not include how long
the client took to get round to one socket among thousands (bench/README.md, "Issue 16", gives
the difference). WebSocket subscribers are timed when read.

    pool = SubscriberPool(procs=4, host=host, port=port, token=token, prefix=b"fanout-ab12-")
    await pool.open(sse=1000)           # every stream waited for until `ready`
    first, last = await pool.seen(7)    # after posting a message whose text holds fanout-ab12-000007
    await pool.close()

Nothing here imports Spacechat.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import multiprocessing
import os
import socket
import struct
import time
from multiprocessing.connection import Connection
from typing import Any

from harness import CLIENT_PIDS, LAGGED, SSEStream, open_many, run_async

DIGITS = 6


class Tracker:
    """Per marker index: how many of this process's subscribers saw it, first and last arrival."""

    def __init__(self, prefix: bytes, report: Any) -> None:
        self.prefix = prefix
        self.total = 0
        self._report = report
        self._seen: dict[int, list[float]] = {}  # index -> [count, first, last]

    def found(self, data: bytes, tail: bytes, now: float, after: int) -> int:
        """Indices in `data` (with the previous chunk's `tail`, as a marker may be split) newer than
        `after`, the newest this subscriber saw; returns its new newest. Messages arrive in order."""
        text = tail + data
        newest = after
        start = text.find(self.prefix)
        while start >= 0:
            begin = start + len(self.prefix)
            digits = text[begin : begin + DIGITS]
            if len(digits) == DIGITS and digits.isdigit():
                index = int(digits)
                if index > newest:
                    newest = index
                    self._note(index, now)
            start = text.find(self.prefix, begin)
        return newest

    def _note(self, index: int, now: float) -> None:
        entry = self._seen.get(index)
        if entry is None:
            entry = self._seen[index] = [0, now, now]
        entry[0] += 1
        entry[2] = now
        if entry[0] == self.total:
            del self._seen[index]
            self._report(("seen", index, entry[1], entry[2]))


# Linux's values (asm-generic/socket.h); SCM_TIMESTAMPNS is SO_TIMESTAMPNS.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
STAMP = struct.Struct("@qq")  # struct timespec on 64-bit Linux: seconds, nanoseconds


def realtime_offset() -> float:
    """CLOCK_REALTIME minus perf_counter's clock (CLOCK_MONOTONIC), taken where the two are read
    closest together of a few tries: the kernel stamps reads in the first, the parent times
    its requests in the second."""
    best = None
    for _ in range(20):
        before = time.perf_counter()
        real = time.time()
        after = time.perf_counter()
        if best is None or after - before < best[0]:
            best = (after - before, real - (before + after) / 2)
    assert best is not None
    return best[1]


class StampedReader:
    """The transport of an SSE subscriber read with `recvmsg`, so each read comes with the
    kernel's receive time (`SO_TIMESTAMPNS`) instead of the time the client got round to it.
    Just what `SSEStream` uses: `write` (the request) and `close`."""

    def __init__(self, sock: socket.socket, protocol: SSEStream, offset: float) -> None:
        self._sock, self._protocol, self._offset = sock, protocol, offset
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self._loop.add_reader(sock.fileno(), self._readable)

    @classmethod
    async def connect(cls, host: str, port: int, protocol: SSEStream, offset: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        protocol.connection_made(cls(sock, protocol, offset))  # type: ignore[arg-type]

    def _readable(self) -> None:
        try:
            data, ancillary, _, _ = self._sock.recvmsg(262144, socket.CMSG_SPACE(STAMP.size))
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost(None)
            return
        now = None
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= STAMP.size:
                seconds, nanos = STAMP.unpack_from(value)
                now = seconds + nanos / 1e9 - self._offset
        self._protocol.received(data, time.perf_counter() if now is None else now)

    def write(self, data: bytes) -> None:
        self._sock.send(data)  # a request of a few hundred bytes: the socket takes it whole

    def close(self) -> None:
        self._lost(None)

    def _lost(self, exc: Exception | None) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._protocol.connection_lost(exc)


class MarkerSSE(SSEStream):
    """An SSE subscriber that reads everything: markers, the newest `id:`, `lagged`, and how many
    events came in how many of the server's writes (each write is one HTTP chunk).

    It is the load generator's hot path (send.py's subscribers receive ~400 KiB per message
    sent), so it passes over each chunk's bytes as few times as it can: one count of `id:` lines,
    the marker search only when there is a prefix to look for, the HTTP chunk framing walked by
    its sizes (not searched for), the newest `id:` and `lagged` found near the end. Before this,
    four searches per byte held the client's core at 100 % at ~1,000 messages/s and made the
    client, not the server, what send.py measured."""

    def __init__(self, *args: Any, tracker: Tracker, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracker = tracker
        self.newest = -1
        self.last_id = 0
        self.lagged = False
        self.events = 0
        self.writes = 0
        self._chunk_left = 0  # bytes of the current HTTP chunk (and its CRLF) still to come
        self._size_line = b""  # a chunk-size line split by TCP

    @classmethod
    async def open_stamped(cls, host: str, port: int, token: str, *, offset: float, tracker: Tracker) -> MarkerSSE:
        """A subscriber whose reads carry the kernel's receive time (`StampedReader`)."""
        stream = cls(host, port, token, tracker=tracker)
        await StampedReader.connect(host, port, stream, offset)
        return stream

    def chunk(self, data: bytes, now: float) -> None:
        tail, prefix = self._tail, self.tracker.prefix
        seam = len(prefix) + DIGITS  # a marker cut by TCP: in the previous read's last bytes
        if prefix and (prefix in data or prefix in tail[-seam:] + data[:seam]):
            self.newest = self.tracker.found(data, tail, now, self.newest)
        self.events += data.count(b"\nid: ") + (tail[-4:] + data[:4]).count(b"\nid: ")  # (one cut by TCP)
        self._count_writes(data)
        at = data.rfind(b"\nid: ")
        end = data.find(b"\n", at + 5) if at >= 0 else -1
        if end < 0:  # the newest id line is split, or not in this read: look across the seam
            window = tail + data
            at = window.rfind(b"\nid: ")
            end = window.find(b"\n", at + 5) if at >= 0 else -1
            if end > 0:
                self.last_id = int(window[at + 5 : end])
        else:
            self.last_id = int(data[at + 5 : end])
        if LAGGED in tail + data[-128:]:  # the stream's last event, followed by nothing but the end
            self.lagged = True

    def _count_writes(self, data: bytes) -> None:
        """Walk the chunked framing: a size line, that many bytes and CRLF, the next size line."""
        if self._size_line:
            data, self._size_line = self._size_line + data, b""
        at, length = 0, len(data)
        while at < length:
            if self._chunk_left:
                step = min(self._chunk_left, length - at)
                self._chunk_left -= step
                at += step
                continue
            end = data.find(b"\r\n", at)
            if end < 0:
                self._size_line = data[at:]
                return
            size = int(self._size_line + data[at:end], 16)
            self._size_line = b""
            if size:
                self.writes += 1
            self._chunk_left = size + 2
            at = end + 2


class MarkerWS(SSEStream):
    """`GET /v1/realtime/ws` on a raw socket: the handshake, then server frames (never masked)
    are parsed only as far as answering pings (uvicorn closes a socket that misses its pong) and
    noticing `ready`; the marker search runs over the raw bytes, where text frames are verbatim."""

    ACCEPTED = b"HTTP/1.1 101"

    def __init__(self, host: str, port: int, token: str, *, tracker: Tracker) -> None:
        super().__init__(host, port, token)
        key = base64.b64encode(os.urandom(16)).decode()
        self._request = (
            f"GET /v1/realtime/ws HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.tracker = tracker
        self.newest = -1
        self._buffer = bytearray()

    def chunk(self, data: bytes, now: float) -> None:
        if self.tracker.prefix in self._tail + data:
            self.newest = self.tracker.found(data, self._tail, now, self.newest)
        self._frames(data, now)

    def _frames(self, data: bytes, now: float) -> None:
        buffer = self._buffer
        buffer += data
        while len(buffer) >= 2:
            opcode, length, at = buffer[0] & 0x0F, buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, at = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, at = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < at + length:
                return
            payload = bytes(buffer[at : at + length])
            del buffer[: at + length]
            if opcode == 0x9 and self.transport is not None:  # ping: a masked pong with its payload
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
            elif opcode == 0x1 and not self.ready.done() and b'"type":"ready"' in payload:
                self.ready.set_result(now)


# --- the child process -------------------------------------------------------------------------------


def _child(conn: Connection, host: str, port: int, token: str, prefix: bytes) -> None:
    run_async(_child_main(conn, host, port, token, prefix))


async def _child_main(conn: Connection, host: str, port: int, token: str, prefix: bytes) -> None:
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[Any] = asyncio.Queue()

    def readable() -> None:
        try:
            commands.put_nowait(conn.recv())
        except EOFError:  # the parent is gone
            loop.remove_reader(conn.fileno())
            commands.put_nowait(("close",))

    loop.add_reader(conn.fileno(), readable)
    tracker = Tracker(prefix, conn.send)
    offset = realtime_offset()
    streams: list[Any] = []
    while True:
        command = await commands.get()
        if command[0] == "open":
            _, sse, ws = command
            tracker.total += sse + ws
            try:
                streams += await open_many(
                    lambda: MarkerSSE.open_stamped(host, port, token, offset=offset, tracker=tracker), sse
                )
                streams += await open_many(lambda: MarkerWS.open(host, port, token, tracker=tracker), ws)
            except Exception as exc:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))
                continue
            conn.send(("opened", len(streams)))
        elif command[0] == "status":
            sse_streams = [stream for stream in streams if isinstance(stream, MarkerSSE)]
            conn.send(
                (
                    "status",
                    min((stream.last_id for stream in sse_streams if not stream.lagged), default=None),
                    sum(stream.lagged for stream in sse_streams),
                    sum(stream.events for stream in sse_streams),
                    sum(stream.writes for stream in sse_streams),
                )
            )
        elif command[0] == "close":
            for stream in streams:
                stream.close()
            with contextlib.suppress(OSError):
                conn.send(("closed", len(streams)))
            return


# --- the parent ----------------------------------------------------------------------------------------


class SubscriberPool:
    """Realtime subscribers spread over `procs` child processes (see the module's docstring)."""

    def __init__(self, procs: int, host: str, port: int, token: str, prefix: bytes) -> None:
        assert procs >= 1
        context = multiprocessing.get_context("spawn")  # no fork of a running event loop
        self.procs: list[Any] = []
        self.conns: list[Connection] = []
        for _ in range(procs):
            ours, theirs = context.Pipe()
            process = context.Process(target=_child, args=(theirs, host, port, token, prefix), daemon=True)
            process.start()
            theirs.close()
            self.procs.append(process)
            self.conns.append(ours)
            assert process.pid is not None
            CLIENT_PIDS.add(process.pid)
        self.counts = [0] * procs
        self._reports: dict[int, dict[int, tuple[float, float]]] = {}  # index -> child -> (first, last)
        self._waiters: dict[int, asyncio.Future[tuple[float, float]]] = {}
        self._replies: list[asyncio.Queue[Any]] = [asyncio.Queue() for _ in range(procs)]
        loop = asyncio.get_running_loop()
        for number, conn in enumerate(self.conns):
            loop.add_reader(conn.fileno(), self._readable, number)

    def describe(self) -> str:
        return f"{len(self.procs)} subscriber process(es) on the client CPU"

    def _readable(self, number: int) -> None:
        conn = self.conns[number]
        try:
            message = conn.recv()
        except EOFError:
            asyncio.get_running_loop().remove_reader(conn.fileno())
            self._replies[number].put_nowait(("error", "the subscriber process ended"))
            return
        if message[0] != "seen":
            self._replies[number].put_nowait(message)
            return
        _, index, first, last = message
        reports = self._reports.setdefault(index, {})
        reports[number] = (first, last)
        if len(reports) == sum(1 for count in self.counts if count):
            del self._reports[index]
            result = (min(f for f, _ in reports.values()), max(t for _, t in reports.values()))
            waiter = self.seen(index)
            if not waiter.done():
                waiter.set_result(result)

    async def open(self, sse: int, ws: int = 0) -> None:
        """Connect `sse` SSE and `ws` WebSocket subscribers, spread evenly; each child waits for
        every one of its streams' `ready`."""
        procs = len(self.procs)
        for number, conn in enumerate(self.conns):
            share_sse = sse // procs + (1 if number < sse % procs else 0)
            share_ws = ws // procs + (1 if number < ws % procs else 0)
            self.counts[number] += share_sse + share_ws
            conn.send(("open", share_sse, share_ws))
        for number in range(procs):
            reply = await self._replies[number].get()
            if reply[0] != "opened":
                raise RuntimeError(f"subscriber process {number}: {reply[1]}")

    async def status(self) -> tuple[int | None, int, int, int]:
        """Over every SSE subscriber: the lowest newest `id:` of those not cut (None: all were),
        how many were cut with `lagged`, events read, and the server's writes they came in."""
        for conn in self.conns:
            conn.send(("status",))
        replies = [await queue.get() for queue in self._replies]
        lowest = [reply[1] for reply in replies if reply[1] is not None]
        return (
            min(lowest) if lowest else None,
            sum(reply[2] for reply in replies),
            sum(reply[3] for reply in replies),
            sum(reply[4] for reply in replies),
        )

    def seen(self, index: int) -> asyncio.Future[tuple[float, float]]:
        """(first, last) arrival of marker `index` over every subscriber."""
        waiter = self._waiters.get(index)
        if waiter is None:
            waiter = self._waiters[index] = asyncio.get_running_loop().create_future()
        return waiter

    def missed_upper(self, index: int) -> int:
        """After a timeout: at most this many subscribers missed `index` (those of the children that
        have not reported it)."""
        reported = self._reports.get(index, {})
        return sum(count for number, count in enumerate(self.counts) if number not in reported)

    def forget(self, index: int) -> None:
        """Drop what is known of `index` (after a timeout, so a late report resolves nothing)."""
        self._reports.pop(index, None)
        self._waiters.pop(index, None)

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        for number, conn in enumerate(self.conns):
            with contextlib.suppress(OSError):
                conn.send(("close",))
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._replies[number].get(), 30)
            loop.remove_reader(conn.fileno())
        for process in self.procs:
            process.join(10)
            if process.is_alive():
                process.kill()
            CLIENT_PIDS.discard(process.pid)
        for conn in self.conns:
            conn.close()
