"""The direct body writer that `spacechat serve` offers its plugins (hookspecs.DIRECT_WRITE).

uvicorn's httptools protocol runs each request in a `RequestResponseCycle` whose `send` is a
bound method; from it the writer reaches the cycle's transport and flow control, and writes
HTTP/1.1 chunks itself. Those are uvicorn internals, not its API, so the capability is offered
only on the versions it is tested with (TESTED_UVICORN, matching pyproject's bounds) and only
for the httptools protocol; anywhere else `open()` answers None and streams take the ordinary
ASGI path. `/metrics` counts deliveries by path, and a test fails if `spacechat serve` ever
stops using this one.

It also offers `park` (#16): a caught-up event stream hands its connection over, so an idle
stream keeps no task and no call chain (realtime/parked.py says what that saves). WebSocket
scopes get the same under hookspecs.WEBSOCKET_PARK (host/websocket_park.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ..hookspecs import DIRECT_WRITE, WEBSOCKET_PARK
from .reset import reset, unanswered
from .websocket_park import park_websocket

TESTED_UVICORN = ((0, 34), (0, 56))  # [lowest, highest) minor versions this was tested with
HTTPTOOLS_CYCLE = "uvicorn.protocols.http.httptools_impl"


def _version(text: str) -> tuple[int, int]:
    parts = text.split(".")
    return int(parts[0]), int(parts[1])


def supported(version: str = uvicorn.__version__) -> bool:
    low, high = TESTED_UVICORN
    return low <= _version(version) < high


_framed: tuple[bytes, bytes] = (b"", b"")


def chunk(body: bytes) -> bytes:
    """`body` as one HTTP/1.1 chunk. A fan-out hands the same bytes object to every subscriber
    that sees the same events, so the last one framed is kept: one framing per event batch,
    not one per subscriber."""
    global _framed
    last, framed = _framed
    if body is not last:
        framed = b"%x\r\n%s\r\n" % (len(body), body)
        _framed = (body, framed)
    return framed


def _httptools(protocol: Any) -> bool:
    """uvicorn's httptools protocol, or a subclass of it (host/server.py `http_protocol`)."""
    return any(kind.__module__ == HTTPTOOLS_CYCLE for kind in type(protocol).__mro__)


def _open_cycle(server_send: Any) -> Any:
    """uvicorn's httptools request cycle behind `send`, when it serves a started, chunked
    response; else None."""
    cycle = getattr(server_send, "__self__", None)
    if cycle is None or type(cycle).__module__ != HTTPTOOLS_CYCLE:
        return None
    if not getattr(cycle, "chunked_encoding", False) or not getattr(cycle, "response_started", False):
        return None
    return cycle


def chunk_writer(server_send: Any) -> Callable[[bytes], bool] | None:
    """A synchronous writer of HTTP/1.1 chunks for a response already started on uvicorn's
    httptools protocol, or None where that is not what serves it. It writes only while the
    transport takes data (not paused by back-pressure) and the response is open; otherwise it
    answers False and the caller sends the usual way, which waits for the socket."""
    cycle = _open_cycle(server_send)
    if cycle is None:
        return None
    transport, flow = cycle.transport, cycle.flow

    def write(body: bytes) -> bool:
        if cycle.disconnected or cycle.response_complete or flow.write_paused:
            return False
        transport.write(chunk(body))
        return True

    return write


class ParkedConnection(asyncio.Protocol):
    """The protocol of a connection whose response carries on after its ASGI app returned: a
    parked event stream (realtime/parked.py). It takes over from uvicorn's protocol on the same
    transport, so uvicorn's per-connection objects (protocol, parser, request cycle, scope) and
    the app's call chain are freed; what stays is this object and the socket. Slots only: one of
    these per idle stream is the whole of the host's share of its memory."""

    __slots__ = ("closed", "on_closed", "on_writable", "paused", "transport")

    def __init__(self, transport: Any, on_writable: Callable[[], None], on_closed: Callable[[], None]) -> None:
        self.transport = transport
        self.on_writable = on_writable
        self.on_closed = on_closed
        self.paused = False
        self.closed = False

    def write(self, body: bytes) -> bool:
        """One HTTP/1.1 chunk now, or False (nothing written) while back-pressure holds or after
        the end; the stream then waits for `on_writable`."""
        if self.paused or self.closed:
            return False
        self.transport.write(chunk(body))
        return True

    def end(self) -> None:
        """The response's last chunk, then close: the client reconnects (with Last-Event-ID).
        Behind a full socket the last chunk could never be written, and a close would wait for
        it as long as the client lives: then the connection is dropped instead."""
        if self.paused:
            self.abort()
        elif not self.closed:
            self.closed = True
            self.transport.write(b"0\r\n\r\n")
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection now (a reset), discarding what the socket still holds."""
        if not self.closed:
            self.closed = True
            reset(self.transport)

    def beat(self, seconds: float) -> None:
        """Once per heartbeat interval: a client that has acknowledged nothing for `seconds`
        while the heartbeats sent to it are retransmitted is gone without a word (host/reset.py
        `unanswered`): drop the connection and end the stream, as when a client leaves. One
        getsockopt, ~2 µs: 10,000 idle streams at 15 s heartbeats cost ~1.3 ms of CPU a second."""
        if not self.closed and unanswered(self.transport, seconds):
            self.abort()
            self.on_closed()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if not self.closed:
            self.on_writable()

    def data_received(self, data: bytes) -> None:
        """An event stream's client has nothing more to say; whatever it sends is dropped."""

    def eof_received(self) -> bool | None:
        return None  # the client finished sending: close, as uvicorn's protocol would

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.on_closed()


def park(
    server_send: Any, on_writable: Callable[[], None], on_closed: Callable[[], None]
) -> tuple[Callable[[bytes], bool], Callable[[], None], Callable[[], None], Callable[[float], None]] | None:
    """Take the connection of a started, chunked response away from uvicorn, so its ASGI app can
    return and the response go on (hookspecs.DIRECT_WRITE `park`): (write, end, abort, beat), or
    None when it cannot be done now (not httptools, back-pressure, the client gone). uvicorn is
    told the response is complete (so it neither closes the socket when the app returns nor
    waits for it at shutdown: the bus ends parked streams when the server stops)."""
    cycle = _open_cycle(server_send)
    if cycle is None or cycle.disconnected or cycle.response_complete or cycle.flow.write_paused:
        return None
    transport = cycle.transport
    protocol = transport.get_protocol()
    if transport.is_closing() or not _httptools(protocol):
        return None
    parked = ParkedConnection(transport, on_writable, on_closed)
    cycle.response_complete = True
    protocol.connections.discard(protocol)
    transport.set_protocol(parked)
    if not transport.is_reading():  # to hear the client leave
        transport.resume_reading()
    return parked.write, parked.end, parked.abort, parked.beat


def abort(server_send: Any) -> None:
    """Reset the connection behind uvicorn's `send` now, discarding what its socket holds: for a
    stream whose client took nothing for realtime.stall_seconds, which a close would wait on."""
    transport = getattr(getattr(server_send, "__self__", None), "transport", None)
    if transport is not None and hasattr(transport, "abort"):
        reset(transport)


def offer_direct_write(app: ASGIApp) -> ASGIApp:
    """Wrap the host's ASGI app so every HTTP request's scope offers DIRECT_WRITE, and every
    WebSocket's WEBSOCKET_PARK, bound to uvicorn's own `send` for that request (before any
    middleware wraps it)."""
    if not supported():
        return app

    async def with_direct_write(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            name = DIRECT_WRITE
            offer = {
                "open": lambda: chunk_writer(send),
                "park": lambda on_writable, on_closed: park(send, on_writable, on_closed),
                "abort": lambda: abort(send),
            }
        elif scope["type"] == "websocket":
            name = WEBSOCKET_PARK
            offer = {
                "park": lambda on_writable, on_closed, on_text: park_websocket(send, on_writable, on_closed, on_text),
                "abort": lambda: abort(send),
            }
        else:
            await app(scope, receive, send)
            return
        extensions = scope.setdefault("extensions", {})
        extensions[name] = offer
        try:
            await app(scope, receive, send)
        finally:
            # The offer closes over `send`, a bound method of uvicorn's request cycle (or
            # WebSocket protocol), which holds this scope: a reference cycle, so every request's
            # cycle, scope and headers, and every parked WebSocket's spent protocol, waited for
            # the garbage collector (~5 KiB per WebSocket still uncollected among 1,000 parked,
            # bench/README.md). Taken back when the app returns, they go with their last reference.
            extensions.pop(name, None)

    return with_direct_write
