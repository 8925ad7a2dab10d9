"""What a finished request or a parked WebSocket leaves behind under uvicorn: nothing that waits
for the garbage collector (#16).

The scope's DIRECT_WRITE and WEBSOCKET_PARK offers close over uvicorn's `send`, a bound method
of the request cycle (or WebSocket protocol) that holds the scope: a reference cycle, so each
request's cycle, scope and headers, and each parked WebSocket's spent protocol, stayed in memory
until a collection found them (bench/connections.py: 12 KiB per parked WebSocket instead of 5).
So did the HTTP protocol that read a WebSocket's handshake (its parser refers back to it), and
uvicorn's keep-alive timer held a connection reset while idle until it fired (host/server.py
`http_protocol`). Here the collector is off while real requests and WebSockets run over loopback,
under `spacechat serve`'s uvicorn configuration, and what is still alive of uvicorn's
per-request objects is counted."""

from __future__ import annotations

import gc
import socket
import struct
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send
from websockets.sync.client import connect

from spacechat_plugin.hookspecs import DIRECT_WRITE, WEBSOCKET_PARK
from spacechat_plugin.host.fastpath import supported
from spacechat_plugin.host.server import uvicorn_config

from .loopback import ThreadedServer

pytestmark = pytest.mark.skipif(not supported(), reason="this uvicorn is not the one fastpath reads")

parked: list[Any] = []


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        assert DIRECT_WRITE in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        connection = scope["extensions"][WEBSOCKET_PARK]["park"](lambda: None, lambda: None, lambda text: None)
        assert connection is not None, "parked"
        parked.append(connection)  # what the stream keeps: (write, end, beat, abort)
        connection[0](b"\x81\x06parked")  # a text frame, written past uvicorn


def alive(kind: str) -> int:
    return sum(1 for obj in gc.get_objects() if type(obj).__name__ == kind)


def eventually(condition: Callable[[], bool], timeout: float = 10) -> bool:
    """The server's thread lets go of a request a moment after its client has the answer."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


@pytest.fixture
def server() -> Iterator[str]:
    """The test app under `spacechat serve`'s own uvicorn configuration."""
    threaded = ThreadedServer(
        app, "fastpath-garbage", uvicorn_config(app, host="127.0.0.1", port=0, log_level="warning")
    )
    url = threaded.start()
    try:
        yield url
    finally:
        threaded.stop()
        parked.clear()


def test_finished_requests_leave_nothing_for_the_collector(server: str, collector_off: None) -> None:
    before = alive("RequestResponseCycle")
    with httpx.Client(base_url=server) as client:
        for _ in range(40):
            assert client.get("/").text == "ok"
        # The connection's current cycle stays until the next request replaces it.
        assert eventually(lambda: alive("RequestResponseCycle") - before <= 1), alive("RequestResponseCycle")


def test_a_parked_websocket_leaves_uvicorns_protocol_to_go(server: str, collector_off: None) -> None:
    url = server.replace("http://", "ws://") + "/ws"
    with ExitStack() as stack:
        # Uncompressed: a WebSocket with per-message-deflate is not parked.
        sockets = [stack.enter_context(connect(url, compression=None)) for _ in range(20)]
        assert [ws.recv(timeout=10) for ws in sockets] == ["parked"] * 20
        assert len(parked) == 20
        assert eventually(lambda: alive("WebSocketsSansIOProtocol") == 0), alive("WebSocketsSansIOProtocol")
        # Nor the HTTP protocol that read the handshake (its parser refers back to it).
        assert alive("HttpProtocol") == 0, alive("HttpProtocol")


def test_a_connection_the_client_resets_is_let_go_before_its_keep_alive_ends(server: str) -> None:
    """uvicorn cancels the keep-alive timer only on a clean close: the timer of a connection reset
    while idle held its protocol, request cycle and scope for the whole keep_alive_seconds (75 s)."""
    host, port = server.removeprefix("http://").split(":")
    before = alive("HttpProtocol")
    for _ in range(20):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: served\r\n\r\n")
            received = b""
            while not received.endswith(b"ok"):
                received += sock.recv(65536)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
    assert eventually(lambda: gc.collect() >= 0 and alive("HttpProtocol") == before), alive("HttpProtocol")
