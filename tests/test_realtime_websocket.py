"""The realtime WebSocket once parked (#16), over real uvicorn on loopback: the websockets
library's asyncio client, and its sans-I/O client where a test needs a client that misbehaves
(one that never reads, one that never answers a ping)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from .listen import Listener
from .support import Server, invite, realtime_gauges, terminate_timed, toml_config

pytestmark = pytest.mark.asyncio

IDLE: dict[str, float] = {"subscribers": 0, "parked_sse": 0, "parked_ws": 0}
ONE_PARKED_WS: dict[str, float] = {"subscribers": 1, "parked_sse": 0, "parked_ws": 1}


@pytest.fixture(scope="module")
def beating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A chat-only server whose streams beat every 0.5 s (heartbeats, and the keepalive pings
    that ride on them)."""
    config = toml_config(runtime={"mode": "none"}, realtime={"heartbeat_seconds": 0.5})
    running = Server(tmp_path_factory.mktemp("beating") / "data", config).start()
    yield running
    running.stop()


def ws_url(server: Server, query: str = "") -> str:
    return server.url.replace("http://", "ws://") + "/v1/realtime/ws" + query


async def gauges(server: Server) -> dict[str, float]:
    async with server.client() as client:
        return realtime_gauges((await client.get("/metrics")).text)


async def settle(server: Server, expected: Mapping[str, float], timeout: float = 10) -> None:
    """Wait for the server's gauges to read `expected` (a stream that ends is unregistered on a
    later turn of the server's loop than the one that closed it)."""
    got: dict[str, float] = {}
    try:
        async with asyncio.timeout(timeout):
            while (got := await gauges(server)) != expected:
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"gauges stayed {got}, expected {expected}") from None


async def new_thread(server: Server) -> str:
    async with server.client() as client:
        answer = await client.post(f"/v1/channels/{server.channel_id('general')}/messages", json={"text": "root"})
    return str(answer.json()["thread"]["id"])


async def post(server: Server, thread_id: str, texts: list[str]) -> None:
    async with server.client() as client:
        for text in texts:
            answer = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": text})
            assert answer.status_code == 201, answer.text


async def read_until(
    ws: ClientConnection, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
) -> list[dict[str, Any]]:
    """Messages as they come, each one text message holding one JSON object, until `done`."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while not done(got):
            message = await ws.recv()
            assert isinstance(message, str), "every message is a text message"
            got.append(json.loads(message))
    return got


def created(messages: list[dict[str, Any]]) -> list[str]:
    return [m["payload"]["message"]["text"] for m in messages if m.get("event_type") == "message.created"]


def seqs(messages: list[dict[str, Any]]) -> list[int]:
    return [m["seq"] for m in messages if m.get("seq") is not None]


async def test_a_caught_up_websocket_is_parked_and_keeps_the_contract(beating: Server) -> None:
    """Parked once `ready` is sent: each event its own text message, in order; heartbeats; a
    ping (text or protocol) answered; anything else ignored; the client's close frame answered
    and the stream unregistered; and a reconnect with ?after= continues with no gap and no
    duplicate. The client answers the server's keepalive pings (as every WebSocket client
    does), so the connection outlives several ticks."""
    thread_id = await new_thread(beating)
    async with connect(ws_url(beating), additional_headers=beating.auth) as ws:
        assert ws.protocol.extensions == [], "per-message-deflate is not offered by default"
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready"
        assert await gauges(beating) == ONE_PARKED_WS
        await post(beating, thread_id, ["one", "two", "three"])
        first = await read_until(ws, lambda got: len(created(got)) == 3)
        assert created(first) == ["one", "two", "three"]
        assert seqs(first) == list(range(ready["resume_after"] + 1, ready["resume_after"] + 4))
        beats = await read_until(ws, lambda got: sum(m.get("type") == "heartbeat" for m in got) >= 4)
        assert all(m == {"type": "heartbeat", "ts": m["ts"]} for m in beats if "event_type" not in m)
        for ping in ("hello", b"\x00binary", "ping", '{"type":"ping"}'):  # "hello" and bytes are ignored
            await ws.send(ping)
        answers = await read_until(ws, lambda got: sum(m.get("type") == "pong" for m in got) == 2)
        replies = [m for m in answers if m.get("type") != "heartbeat" and "event_type" not in m]
        assert replies == [{"type": "pong"}, {"type": "pong"}], "two pings answered, the rest ignored"
        pong = await ws.ping(b"are you there")
        async with asyncio.timeout(10):
            await pong
        assert ws.protocol.state is State.OPEN and await gauges(beating) == ONE_PARKED_WS
        last = seqs(first)[-1]
    # Leaving the block sent a close frame: the server answered it, and let the stream go.
    assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1000
    await settle(beating, IDLE)

    await post(beating, thread_id, ["four", "five"])  # missed while away
    async with connect(ws_url(beating, f"?after={last}"), additional_headers=beating.auth) as ws:
        replayed = await read_until(ws, lambda got: got[-1:] != [] and got[-1].get("type") == "ready")
        assert await gauges(beating) == ONE_PARKED_WS
        await post(beating, thread_id, ["six", "seven"])
        live = await read_until(ws, lambda got: len(created(got)) == 2)
    assert created(replayed) + created(live) == ["four", "five", "six", "seven"]
    assert seqs(replayed) + seqs(live) == list(range(last + 1, last + 5)), "no gap, no duplicate"
    await settle(beating, IDLE)


async def test_a_signed_in_persons_parked_websocket_ends_their_presence_when_closed(beating: Server) -> None:
    """The stream of a session keeps its person present; parked, closing it still ends that
    (the stream's `on_end` runs when the parked stream is unregistered)."""
    watcher = invite(beating, beating.token, "member", name="Wanda Watcher")
    mover = invite(beating, beating.token, "member", name="Max Mover")

    def presence_of(user_id: str, status: str) -> Callable[[dict[str, Any]], bool]:
        return lambda e: e["event_type"] == "presence.changed" and e["payload"]["users"].get(user_id) == status

    async with Listener(beating, watcher.auth) as watching:
        at = watching.mark()
        async with connect(ws_url(beating), additional_headers=mover.auth) as ws:
            assert json.loads(await ws.recv())["type"] == "ready"
            await watching.wait_for(presence_of(mover.id, "active"), after=at)
            assert (await gauges(beating))["parked_ws"] == 1
            at = watching.mark()
        await watching.wait_for(presence_of(mover.id, "away"), after=at)
        await settle(beating, {"subscribers": 1, "parked_sse": 1, "parked_ws": 0})  # the watcher's SSE
    await settle(beating, IDLE)


def raw_websocket(server: Server, *, receive_buffer: int | None = None) -> tuple[socket.socket, ClientProtocol]:
    """A WebSocket whose client is the library's sans-I/O protocol over a plain socket: it reads
    and writes only when the test says so (its handshake request is sent, its answer not read)."""
    client = ClientProtocol(parse_uri(ws_url(server)))
    request = client.connect()
    request.headers["Authorization"] = f"Bearer {server.token}"
    client.send_request(request)
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.connect((host, int(port)))
    sock.sendall(b"".join(client.data_to_send()))
    return sock, client


def read_frames(sock: socket.socket, client: ClientProtocol, timeout: float = 30) -> list[Frame]:
    """Every frame the server sends until its close frame (or the socket's end), parsed by the
    library. Nothing is written back: the pongs the library queues for the server's pings are
    never sent."""
    sock.settimeout(timeout)
    frames: list[Frame] = []
    while not any(frame.opcode is Opcode.CLOSE for frame in frames):
        data = sock.recv(65536)
        if not data:
            break
        client.receive_data(data)
        frames.extend(event for event in client.events_received() if isinstance(event, Frame))
    return frames


def texts(frames: list[Frame]) -> list[dict[str, Any]]:
    return [json.loads(bytes(frame.data)) for frame in frames if frame.opcode is Opcode.TEXT]


def close_code(frames: list[Frame]) -> int:
    return next(Close.parse(bytes(frame.data)).code for frame in frames if frame.opcode is Opcode.CLOSE)


async def test_a_parked_websocket_that_never_answers_a_ping_is_closed_and_unregistered(beating: Server) -> None:
    """A peer that vanished without a FIN sends nothing at all, and the heartbeats sent to it
    would sit in the kernel's buffer for many minutes. The server pings on each tick (0.5 s
    here) and fails a client that did not answer by the next one: 1011, as uvicorn's own
    keepalive (every 20 s, so not what closes it within this test's seconds)."""
    sock, client = raw_websocket(beating)
    started = time.monotonic()
    try:
        frames = await asyncio.to_thread(read_frames, sock, client, 15)
    finally:
        sock.close()
    assert time.monotonic() - started < 10
    messages = texts(frames)
    assert messages[0]["type"] == "ready" and any(m.get("type") == "heartbeat" for m in messages)
    assert any(frame.opcode is Opcode.PING for frame in frames), "pinged before being given up"
    assert close_code(frames) == 1011
    await settle(beating, IDLE)


async def test_a_parked_websocket_that_never_reads_gets_lagged_and_resumes_without_loss(tmp_path: Path) -> None:
    """A client that stops reading fills its socket: the server keeps its cursor instead of
    queueing frames, cuts it with `lagged` once max_lag behind (written when the socket takes
    it, then a close), and the client resumes from `resume_after` with nothing lost."""
    config = toml_config(runtime={"mode": "none"}, realtime={"max_lag": 20, "ring_size": 64})
    server = Server(tmp_path / "data", config).start()
    try:
        thread_id = await new_thread(server)
        sock, client = raw_websocket(server, receive_buffer=4096)
        try:
            await settle(server, ONE_PARKED_WS)
            big = "x" * 30_000  # 250 messages of ~30 KB overflow the kernel's socket buffers
            await post(server, thread_id, [f"{i}-{big}" for i in range(250)])
            frames = await asyncio.to_thread(read_frames, sock, client)
        finally:
            sock.close()
        messages = texts(frames)
        assert messages[0]["type"] == "ready" and messages[-1]["type"] == "lagged", messages[-1:]
        assert close_code(frames) == 1000
        lagged = messages[-1]
        got = [m for m in messages if "event_type" in m]
        assert got and got[-1]["seq"] == lagged["resume_after"]
        assert len(created(got)) < 250
        async with connect(ws_url(server, f"?after={lagged['resume_after']}"), additional_headers=server.auth) as ws:
            rest = await read_until(ws, lambda seen: seen[-1:] != [] and seen[-1].get("type") == "ready")
        combined = got + [m for m in rest if "event_type" in m]
        assert sorted(int(text.split("-")[0]) for text in created(combined)) == list(range(250))
        assert seqs(combined) == sorted(set(seqs(combined)))
        await settle(server, IDLE)
    finally:
        server.stop()


async def test_a_compressed_websocket_is_served_unparked_and_stopping_closes_every_websocket(tmp_path: Path) -> None:
    """With realtime.ws_per_message_deflate on, a client that negotiates the extension keeps
    today's task (its frames are its own) and the contract (a binary message is ignored, as a
    parked one ignores it); one that does not is parked. When
    the server stops, both are closed with 1012 (service restart, as uvicorn says) and the
    server is gone within the stop budget."""
    config = toml_config(runtime={"mode": "none"}, realtime={"ws_per_message_deflate": True})
    server = Server(tmp_path / "data", config).start()
    try:
        thread_id = await new_thread(server)
        async with (
            connect(ws_url(server), additional_headers=server.auth) as compressed,
            connect(ws_url(server), additional_headers=server.auth, compression=None) as plain,
        ):
            assert [type(e).__name__ for e in compressed.protocol.extensions] == ["PerMessageDeflate"]
            assert plain.protocol.extensions == []
            for ws in (compressed, plain):
                assert json.loads(await ws.recv())["type"] == "ready"
            assert await gauges(server) == {"subscribers": 2, "parked_sse": 0, "parked_ws": 1}
            await post(server, thread_id, ["a", "b", "c"])
            got = [await read_until(ws, lambda seen: len(created(seen)) == 3) for ws in (compressed, plain)]
            assert created(got[0]) == created(got[1]) == ["a", "b", "c"]
            assert seqs(got[0]) == seqs(got[1])
            await compressed.send(b"\x00binary")  # ignored, and the stream reads on
            await compressed.send("ping")
            assert (await read_until(compressed, lambda seen: seen[-1:] == [{"type": "pong"}]))[-1] == {"type": "pong"}

            process = server.process
            assert process is not None

            code, took = await asyncio.to_thread(terminate_timed, process)
            for ws in (compressed, plain):
                with pytest.raises(ConnectionClosed) as closed:
                    async with asyncio.timeout(10):
                        async for _ in ws:
                            pass
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        assert code == 0 and took < 5, f"exit {code} after {took:.1f} s"
    finally:
        server.stop()


async def test_a_parked_websocket_lets_go_of_the_handshake_and_parses_on() -> None:
    """The library's parser keeps the handshake's request (every header, ~4 KiB with a
    browser's) for the connection's life; parking swaps in a fresh frame parser when it waits
    at a frame boundary, and never in the middle of a frame."""
    import gc
    import weakref

    from websockets.http11 import Request
    from websockets.protocol import OPEN
    from websockets.server import ServerProtocol

    from spacechat_plugin.host.websocket_park import _forget_handshake

    def opened() -> tuple[ServerProtocol, ClientProtocol, weakref.ref[Request]]:
        client = ClientProtocol(parse_uri("ws://localhost/v1/realtime/ws"))
        request = client.connect()
        request.headers["Cookie"] = "session=" + "c" * 500
        client.send_request(request)
        server = ServerProtocol()
        server.receive_data(b"".join(client.data_to_send()))
        (received,) = server.events_received()
        assert isinstance(received, Request)
        server.send_response(server.accept(received))
        server.data_to_send()
        client = ClientProtocol(parse_uri("ws://localhost/"), state=OPEN)  # past its handshake
        return server, client, weakref.ref(received)

    def parsed(server: ServerProtocol, client: ClientProtocol) -> list[tuple[Opcode, bytes]]:
        server.receive_data(b"".join(client.data_to_send()))
        return [(e.opcode, bytes(e.data)) for e in server.events_received() if isinstance(e, Frame)]

    server, client, request = opened()
    gc.collect()
    assert request() is not None, "held by the library's parser"
    _forget_handshake(server)
    gc.collect()
    assert request() is None, "let go"
    client.send_text(b"ping")
    client.send_ping(b"beat")
    assert parsed(server, client) == [(Opcode.TEXT, b"ping"), (Opcode.PING, b"beat")]
    assert server.data_to_send() == [Frame(Opcode.PONG, b"beat").serialize(mask=False)]

    server, client, request = opened()
    client.send_text(b"split in two")
    frame = b"".join(client.data_to_send())
    server.receive_data(frame[:2])  # mid-frame, nothing buffered: the parser holds the header it read
    before = server.parser
    _forget_handshake(server)
    assert server.parser is before
    server.receive_data(frame[2:])
    assert [(e.opcode, bytes(e.data)) for e in server.events_received() if isinstance(e, Frame)] == [
        (Opcode.TEXT, b"split in two")
    ]
