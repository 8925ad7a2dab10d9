"""A client alive but taking nothing (a frozen tab, a suspended process) is dropped after
realtime.stall_seconds, over real uvicorn on loopback, whichever way its stream is carried:
parked SSE and WebSocket (realtime/parked.py), and a stream still served by its task (catching
up, or a compressed WebSocket). Before, its kernel acknowledged the server's zero-window probes
forever: the stream kept its place on the bus and its socket's buffer for as long as the client
lived. Each client here holds its socket open and reads nothing until the server has let the
stream go; what it then finds is a reset, and resuming from the last event it got loses
nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from .support import Server, events_after, parse_sse, realtime_gauges, toml_config

pytestmark = pytest.mark.asyncio

HEARTBEAT, STALL = 0.5, 1.0
MESSAGES = 250  # of ~30 KB each: more than the kernel's socket buffers on loopback hold


@pytest.fixture(scope="module")
def lagging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Streams cut after 20 events behind, beating every 0.5 s, dropped after 1 s stalled."""
    config = toml_config(
        runtime={"mode": "none"},
        realtime={"heartbeat_seconds": HEARTBEAT, "stall_seconds": STALL, "max_lag": 20, "ring_size": 64},
    )
    running = Server(tmp_path_factory.mktemp("lagging") / "data", config).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def patient(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The default max_lag (a stalled client is never `lagged` here), per-message-deflate
    offered (a compressed WebSocket keeps its task), dropped after 1 s stalled. Beating every
    3 s: a parked WebSocket's keepalive fails a client that has not answered a ping by the next
    tick, unless its socket is full by then; the posts fill it well within one tick."""
    config = toml_config(
        runtime={"mode": "none"},
        realtime={"heartbeat_seconds": 3, "stall_seconds": STALL, "ws_per_message_deflate": True},
    )
    running = Server(tmp_path_factory.mktemp("patient") / "data", config).start()
    yield running
    running.stop()


async def figures(server: Server) -> dict[str, float]:
    """The realtime gauges, and `stalled`: spacechat_realtime_stalled_total."""
    async with server.client() as client:
        text = (await client.get("/metrics")).text
    found = realtime_gauges(text)
    found["stalled"] = sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "spacechat_realtime_stalled_total"
    )
    return found


def reset_by_server(sock: socket.socket, timeout: float = 20) -> bool:
    """Wait, reading nothing, for the server to drop the connection: the kernel reports a reset
    (or an end) on the socket whatever it still holds unread. False: it held on for `timeout`."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP)  # POLLERR and POLLHUP are reported whatever is asked
    return bool(poller.poll(int(timeout * 1000)))


async def dropped(server: Server, sock: socket.socket, stalled: float) -> None:
    """The server dropped this client's connection while the client held it open, counted it as
    stalled, and holds no stream any more (its own loop unregistered the stream before it could
    answer the request that asks)."""
    assert await asyncio.to_thread(reset_by_server, sock), "the server held a client that reads nothing"
    assert await figures(server) == {"subscribers": 0, "parked_sse": 0, "parked_ws": 0, "stalled": stalled}


def read_until(sock: socket.socket, done: Callable[[bytes], bool], timeout: float = 10) -> bytes:
    """What the socket brings until `done` says enough (the stream's `ready`); nothing after."""
    sock.settimeout(timeout)
    got = b""
    while not done(got):
        chunk = sock.recv(4096)
        assert chunk, f"the server ended the stream before it was ready: {got[-300:]!r}"
        got += chunk
    return got


def big_texts(count: int, offset: int = 0) -> list[str]:
    """~30 KB each, numbered, and random enough that per-message-deflate cannot shrink them."""
    return [f"{offset + i}-" + base64.b64encode(os.urandom(22_000)).decode() for i in range(count)]


async def newest_seq(server: Server) -> int:
    async with server.client() as client:
        return int((await client.get("/v1/system/health")).json()["store"]["last_seq"])


async def new_thread(server: Server) -> str:
    async with server.client() as client:
        answer = await client.post(f"/v1/channels/{server.channel_id('general')}/messages", json={"text": "root"})
    return str(answer.json()["thread"]["id"])


async def post(server: Server, thread_id: str, texts: list[str], concurrency: int = 1) -> None:
    """Post `texts` as replies, `concurrency` at a time (one at a time: in their order)."""
    pending = iter(texts)
    async with server.client() as client:

        async def poster() -> None:
            for text in pending:
                answer = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": text})
                assert answer.status_code == 201, answer.text

        await asyncio.gather(*[poster() for _ in range(concurrency)])


def numbers(events: list[dict[str, Any]], thread_id: str) -> list[int]:
    """The numbers of the big replies posted in `thread_id`, in the order they came."""
    return [
        int(e["payload"]["message"]["text"].split("-")[0])
        for e in events
        if e.get("event_type") == "message.created"
        and e.get("thread_id") == thread_id
        and e["payload"]["message"]["text"] != "root"
    ]


def connected(server: Server, request: bytes) -> socket.socket:
    """A client socket with a 4 KiB receive buffer that has sent `request` and reads nothing."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(request)
    return sock


def sse_client(server: Server, after: int | None = None) -> socket.socket:
    query = "" if after is None else f"?after={after}"
    host = server.url.removeprefix("http://")
    return connected(
        server,
        f"GET /v1/realtime/sse{query} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode(),
    )


def drain(sock: socket.socket, timeout: float = 20) -> tuple[bytes, str]:
    """Everything the socket still holds, and how it ended: "reset", "closed" or "timeout"."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        ended = "closed"
    except ConnectionResetError:
        ended = "reset"
    except TimeoutError:
        ended = "timeout"
    finally:
        sock.close()
    return b"".join(chunks), ended


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """The complete logged events of a cut-off chunked SSE response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    out: list[bytes] = []
    while body:
        size_line, found, rest = body.partition(b"\r\n")
        if not found:
            break
        size = int(size_line, 16)
        if size == 0 or len(rest) < size + 2:
            break
        out.append(rest[:size])
        body = rest[size + 2 :]
    text = b"".join(out).decode()
    complete = text[: text.rfind("\n\n") + 2]
    return [e.json() for e in parse_sse(complete) if e.event == "message" and e.id]


async def test_a_parked_sse_client_that_stops_reading_is_dropped_and_resumes_without_loss(lagging: Server) -> None:
    """Cut as lagged, it could never be written its `lagged`: it is dropped instead, while it
    still holds its socket open, and its resume from the last event it got has the rest."""
    thread_id = await new_thread(lagging)
    start = await newest_seq(lagging)
    before = (await figures(lagging))["stalled"]
    sock = sse_client(lagging)
    first = b""
    try:
        first = await asyncio.to_thread(read_until, sock, lambda got: b"event: ready" in got)
        assert (await figures(lagging))["parked_sse"] == 1, "parked once ready"
        await post(lagging, thread_id, big_texts(MESSAGES))
        await dropped(lagging, sock, before + 1)
    finally:
        rest_of_it, ended = await asyncio.to_thread(drain, sock)
    raw = first + rest_of_it
    assert ended == "reset", f"the connection {ended}: the server held it"
    got = sse_events(raw)
    assert len(numbers(got, thread_id)) < MESSAGES, "the client was dropped before it could have had everything"
    rest = await asyncio.to_thread(events_after, lagging, got[-1]["seq"] if got else start)
    combined = numbers(got, thread_id) + numbers(rest, thread_id)
    assert combined == list(range(MESSAGES)), "nothing lost, nothing twice, in order"


async def test_an_sse_client_that_reads_nothing_of_its_catch_up_is_dropped(lagging: Server) -> None:
    """Resuming from far back, its replay waits on a socket that never drains: the stream's
    task gives up after stall_seconds and the connection is reset."""
    thread_id = await new_thread(lagging)
    start = await newest_seq(lagging)
    await post(lagging, thread_id, big_texts(MESSAGES))
    before = (await figures(lagging))["stalled"]
    sock = sse_client(lagging, after=start)
    try:
        await dropped(lagging, sock, before + 1)
    finally:
        raw, ended = await asyncio.to_thread(drain, sock)
    assert ended == "reset", f"the connection {ended}: the server held it"
    assert len(numbers(sse_events(raw), thread_id)) < MESSAGES


def ws_client(server: Server, *, compressed: bool = False) -> tuple[socket.socket, ClientProtocol]:
    """A WebSocket whose client is the library's sans-I/O protocol: its handshake is sent, and
    nothing is read until the test says so."""
    extensions = [ClientPerMessageDeflateFactory()] if compressed else None
    uri = parse_uri(server.url.replace("http://", "ws://") + "/v1/realtime/ws")
    client = ClientProtocol(uri, extensions=extensions)
    request = client.connect()
    request.headers["Authorization"] = f"Bearer {server.token}"
    client.send_request(request)
    return connected(server, b"".join(client.data_to_send())), client


def ws_read_ready(sock: socket.socket, client: ClientProtocol, timeout: float = 10) -> None:
    """Read the handshake's answer and frames until the stream's `ready`; nothing after."""
    sock.settimeout(timeout)
    while True:
        chunk = sock.recv(4096)
        assert chunk, "the server ended the stream before it was ready"
        client.receive_data(chunk)
        frames = [event for event in client.events_received() if isinstance(event, Frame)]
        if any(f.opcode is Opcode.TEXT and json.loads(bytes(f.data)).get("type") == "ready" for f in frames):
            return


def ws_events(raw: bytes, client: ClientProtocol) -> tuple[list[dict[str, Any]], bool]:
    """The logged events among the complete frames of what the socket held, and whether the
    handshake answered with the extension asked for."""
    client.receive_data(raw)
    frames = [event for event in client.events_received() if isinstance(event, Frame)]
    texts = [json.loads(bytes(frame.data)) for frame in frames if frame.opcode is Opcode.TEXT]
    return [t for t in texts if "event_type" in t], bool(client.extensions)


@pytest.mark.parametrize("compressed", [False, True], ids=["parked", "compressed"])
async def test_a_websocket_client_that_stops_reading_is_dropped_and_resumes_without_loss(
    patient: Server, compressed: bool
) -> None:
    """Never behind by max_lag (the default 2,000), so never `lagged`: before, it kept its
    place for as long as it lived. A compressed WebSocket is written by its own task, which
    gives up after stall_seconds; a plain one is parked, and dropped on a heartbeat tick."""
    thread_id = await new_thread(patient)
    start = await newest_seq(patient)
    before = (await figures(patient))["stalled"]
    sock, client = ws_client(patient, compressed=compressed)
    try:
        await asyncio.to_thread(ws_read_ready, sock, client)
        expected = {"subscribers": 1, "parked_sse": 0, "parked_ws": 0 if compressed else 1, "stalled": before}
        assert await figures(patient) == expected, "parked once ready, unless compressed"
        await post(patient, thread_id, big_texts(MESSAGES), concurrency=8)
        await dropped(patient, sock, before + 1)
    finally:
        raw, ended = await asyncio.to_thread(drain, sock)
    assert ended == "reset", f"the connection {ended}: the server held it"
    got, negotiated = ws_events(raw, client)
    assert negotiated is compressed
    assert len(numbers(got, thread_id)) < MESSAGES
    rest = await asyncio.to_thread(events_after, patient, got[-1]["seq"] if got else start)
    combined = numbers(got, thread_id) + numbers(rest, thread_id)
    assert sorted(combined) == list(range(MESSAGES)), "nothing lost, nothing twice"
    seqs = [e["seq"] for e in got + rest if e.get("thread_id") == thread_id]
    assert seqs == sorted(set(seqs)), "in order"
