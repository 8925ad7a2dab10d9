"""The direct body writer that `spacechat serve` offers its plugins (hookspecs.DIRECT_WRITE).

uvicorn's httptools protocol runs each request in a `RequestResponseCycle` whose `send` is a
bound method; from it the writer reaches the cycle's transport and flow control, and writes
HTTP/1.1 chunks itself. Those are uvicorn internals, not its API, so the capability is offered
only on the versions it is tested with (TESTED_UVICORN, matching pyproject's bounds) and only
for the httptools protocol; anywhere else `open()` answers None and streams take the ordinary
ASGI path. `/metrics` counts deliveries by path, and a test fails if `spacechat serve` ever
stops using this one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from ..hookspecs import DIRECT_WRITE

TESTED_UVICORN = ((0, 34), (0, 56))  # [lowest, highest) minor versions this was tested with
HTTPTOOLS_CYCLE = "uvicorn.protocols.http.httptools_impl"


def _version(text: str) -> tuple[int, int]:
    parts = text.split(".")
    return int(parts[0]), int(parts[1])


def supported(version: str = uvicorn.__version__) -> bool:
    low, high = TESTED_UVICORN
    return low <= _version(version) < high


def chunk_writer(server_send: Any) -> Callable[[bytes], bool] | None:
    """A synchronous writer of HTTP/1.1 chunks for a response already started on uvicorn's
    httptools protocol, or None where that is not what serves it. It writes only while the
    transport takes data (not paused by back-pressure) and the response is open; otherwise it
    answers False and the caller sends the usual way, which waits for the socket."""
    cycle = getattr(server_send, "__self__", None)
    if cycle is None or type(cycle).__module__ != HTTPTOOLS_CYCLE:
        return None
    if not getattr(cycle, "chunked_encoding", False) or not getattr(cycle, "response_started", False):
        return None
    transport, flow = cycle.transport, cycle.flow

    def write(body: bytes) -> bool:
        if cycle.disconnected or cycle.response_complete or flow.write_paused:
            return False
        transport.write(b"%x\r\n%s\r\n" % (len(body), body))
        return True

    return write


def offer_direct_write(app: ASGIApp) -> ASGIApp:
    """Wrap the host's ASGI app so every HTTP request's scope offers DIRECT_WRITE, bound to
    uvicorn's own `send` for that request (before any middleware wraps it)."""
    if not supported():
        return app

    async def with_direct_write(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            extensions = scope.setdefault("extensions", {})
            extensions[DIRECT_WRITE] = {"open": lambda: chunk_writer(send)}
        await app(scope, receive, send)

    return with_direct_write
