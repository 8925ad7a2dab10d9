"""Idle keep-alive connections: the server keeps one open longer than the clients that reuse it.

uvicorn closes an idle connection after 5 s, and httpx reuses one until it has been idle 5 s by
its own clock, which starts a moment after the server's: a request sent on a connection idle just
under 5 s met the server's close and failed with `httpx.ReadError`, unanswered (CI saw it among
a thousand concurrent posts, where httpx's pool leaves its last connections idle). A POST is not
retried, so the client cannot tell whether its message was sent."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import Server, toml_config

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: spacechat\r\n\r\n"
HTTPX_POOL_EXPIRY = 5.0  # httpx's default keepalive_expiry


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def exchange(sock: socket.socket) -> bytes:
    """One request on `sock` and its whole response (the health check has a content-length)."""
    sock.sendall(REQUEST)
    received = b""

    def more() -> bytes:
        data = sock.recv(65536)
        assert data, f"the server closed the connection after {received!r}"
        return data

    while b"\r\n\r\n" not in received:
        received += more()
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:])
    while len(body) < int(fields[b"content-length"]):
        body += more()
    return body


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes `sock` (its end of the stream) within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    finally:
        sock.settimeout(10)


@pytest.fixture
def quick_close(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data", toml_config(top="keep_alive_seconds = 1\n")).start()
    yield running
    running.stop()


def test_an_idle_connection_outlives_an_http_clients_pool_expiry(shared_server: Server) -> None:
    with connect(shared_server.url) as sock:
        exchange(sock)
        assert not closed_within(sock, HTTPX_POOL_EXPIRY + 1), "closed while a client may still reuse it"
        assert b'"status":"ok"' in exchange(sock).replace(b" ", b"")


def test_keep_alive_seconds_sets_when_an_idle_connection_is_closed(quick_close: Server) -> None:
    with connect(quick_close.url) as sock:
        exchange(sock)
        idle_from = time.monotonic()
        assert closed_within(sock, 10)
        assert time.monotonic() - idle_from >= 0.9  # not at once: after the configured second
