"""The realtime gateway over real SSE and WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from .support import Server, parse_sse, post_messages, realtime_gauges, toml_config
from .test_realtime_stalled import read_until, sse_client

pytestmark = pytest.mark.asyncio


async def read_sse(
    server: Server,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    until: Any = None,
    timeout: float = 20,
    live: asyncio.Event | None = None,
) -> list[Any]:
    """Read SSE events until `until(events)` is true; return (event, id, data) objects. `live` is
    set at the `ready` event: from then on, every new event reaches this reader."""
    got: list[Any] = []
    async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=timeout) as client:
        async with aconnect_sse(client, "GET", "/v1/realtime/sse", headers=headers or {}, params=params) as source:
            assert source.response.status_code == 200
            async with asyncio.timeout(timeout):
                async for event in source.aiter_sse():
                    got.append(event)
                    if live is not None and event.event == "ready":
                        live.set()
                    if until is not None and until(got):
                        break
    return got


def logged(events: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in events if e.event == "message" and e.id]


async def new_thread(server: Server, channel: str = "general") -> str:
    async with server.client() as client:
        response = await client.post(f"/v1/channels/{server.channel_id(channel)}/messages", json={"text": "root"})
    return str(response.json()["thread"]["id"])


async def test_sse_resume_after_1000_missed_events(server: Server) -> None:
    """A server of its own: on the module's shared one, another test's late work (an agent's reply
    finishing) may log events between the posts and the resume, and the replay rightly carries
    them; here the replay must be exactly the 1,000 messages."""
    thread_id = await new_thread(server)
    first = await read_sse(server, params={}, until=lambda got: any(e.event == "ready" for e in got))
    resume_after = json.loads(first[-1].data)["resume_after"]
    await post_messages(server, "", 1000, thread_id=thread_id)
    events = await read_sse(
        server,
        headers={"Last-Event-ID": str(resume_after)},
        until=lambda got: any(e.event == "ready" for e in got),
    )
    replayed = logged(events)
    assert len(replayed) == 1000
    assert [e["seq"] for e in replayed] == list(range(resume_after + 1, resume_after + 1001))
    assert all(e["event_type"] == "message.created" for e in replayed)
    assert sorted(int(e["payload"]["message"]["text"][1:]) for e in replayed) == list(range(1000))
    assert [e.id for e in events if e.event == "message"] == [str(e["seq"]) for e in replayed]


async def test_websocket_resume_after_1000_missed_events(server: Server) -> None:
    """A server of its own, as the SSE resume above."""
    thread_id = await new_thread(server)
    ws_url = server.url.replace("http://", "ws://") + "/v1/realtime/ws"
    async with ws_connect(ws_url, additional_headers=server.auth) as ws:
        ready = json.loads(await ws.recv())
        assert ready["type"] == "ready"
        resume_after = ready["resume_after"]
    await post_messages(server, "", 1000, thread_id=thread_id)
    received: list[dict[str, Any]] = []
    async with ws_connect(f"{ws_url}?after={resume_after}", additional_headers=server.auth) as ws:
        async with asyncio.timeout(20):
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "ready":
                    break
                received.append(frame)
    assert [e["seq"] for e in received] == list(range(resume_after + 1, resume_after + 1001))
    assert sorted(int(e["payload"]["message"]["text"][1:]) for e in received) == list(range(1000))


async def test_no_gap_and_no_duplicate_at_the_seam(shared_server: Server) -> None:
    """Reconnect while messages are being posted: the stream is contiguous across replay and live."""
    thread_id = await new_thread(shared_server)
    first = await read_sse(shared_server, until=lambda got: any(e.event == "ready" for e in got))
    start = json.loads(first[-1].data)["resume_after"]
    poster = asyncio.create_task(post_messages(shared_server, "", 600, thread_id=thread_id, concurrency=8))
    # some events are in the log before we reconnect, more arrive while replaying
    await read_sse(shared_server, headers={"Last-Event-ID": str(start)}, until=lambda got: len(logged(got)) >= 50)
    events = await read_sse(
        shared_server,
        headers={"Last-Event-ID": str(start)},
        until=lambda got: len(logged(got)) >= 600,
    )
    acked = await poster
    seqs = [e["seq"] for e in logged(events)]
    assert seqs == list(range(start + 1, start + 601))
    assert {e["payload"]["message"]["id"] for e in logged(events)} == {m["id"] for m in acked}


async def test_websocket_and_sse_deliver_the_same_live_events(shared_server: Server) -> None:
    general = shared_server.channel_id("general")
    ws_url = shared_server.url.replace("http://", "ws://") + "/v1/realtime/ws"
    async with ws_connect(ws_url, additional_headers=shared_server.auth) as ws:
        assert json.loads(await ws.recv())["type"] == "ready"
        live = asyncio.Event()
        sse_task = asyncio.create_task(read_sse(shared_server, until=lambda got: len(logged(got)) >= 10, live=live))
        await asyncio.wait_for(live.wait(), 20)
        await post_messages(shared_server, general, 5, concurrency=1)
        ws_events: list[dict[str, Any]] = []
        async with asyncio.timeout(10):
            while len(ws_events) < 10:
                frame = json.loads(await ws.recv())
                if "event_type" in frame:
                    ws_events.append(frame)
        sse_events = logged(await sse_task)
    assert [e["seq"] for e in ws_events] == [e["seq"] for e in sse_events]
    assert [e["event_type"] for e in ws_events].count("thread.created") == 5


async def test_unauthenticated_and_bad_cursors_are_refused(shared_server: Server) -> None:
    async with httpx.AsyncClient(base_url=shared_server.url) as client:
        response = await client.get("/v1/realtime/sse")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
        authed = {"Authorization": f"Bearer {shared_server.token}"}
        future = await client.get("/v1/realtime/sse", params={"after": "999999999"}, headers=authed)
        assert future.status_code == 400
        assert future.json()["error"]["code"] == "cursor_in_future"
        bad = await client.get("/v1/realtime/sse", headers={**authed, "Last-Event-ID": "abc"})
        assert bad.status_code == 400
    ws_url = shared_server.url.replace("http://", "ws://") + "/v1/realtime/ws"
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(ws_url):
            pass
    assert refused.value.response.status_code == 401


async def test_stream_deltas_are_live_only_and_add_up(shared_server: Server) -> None:
    spacebot = shared_server.channel_id("spacebot")

    def done(got: list[Any]) -> bool:
        return any(json.loads(e.data).get("event_type") == "message.completed" for e in got if e.event == "message")

    live = asyncio.Event()
    reader = asyncio.create_task(read_sse(shared_server, until=done, live=live))
    await asyncio.wait_for(live.wait(), 20)
    async with shared_server.client() as client:
        await client.post(f"/v1/channels/{spacebot}/messages", json={"text": "hello agent"})
    events = [json.loads(e.data) for e in await reader if e.event == "message"]
    created = next(e for e in events if e["event_type"] == "message.created" and e["actor"]["kind"] == "agent")
    reply_id = created["payload"]["message"]["id"]
    deltas = [e for e in events if e["event_type"] == "message.stream.delta"]
    assert deltas and all(e["seq"] is None for e in deltas)
    text = ""
    for delta in deltas:
        assert delta["payload"]["message_id"] == reply_id
        assert delta["payload"]["offset"] == len(text)
        text += delta["payload"]["text"]
    completed = next(e for e in events if e["event_type"] == "message.completed")
    assert completed["payload"]["message"]["text"] == text
    replay = await read_sse(
        shared_server, params={"after": created["seq"] - 1}, until=lambda got: any(e.event == "ready" for e in got)
    )
    replay_types = [json.loads(e.data)["event_type"] for e in replay if e.event == "message"]
    assert "message.stream.delta" not in replay_types
    assert "message.completed" in replay_types


async def test_heartbeat_on_an_idle_stream(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", toml_config(realtime={"heartbeat_seconds": 0.3})).start()
    try:
        started = time.monotonic()
        events = await read_sse(server, until=lambda got: sum(e.event == "heartbeat" for e in got) >= 2, timeout=5)
        assert time.monotonic() - started < 3
        assert [e.event for e in events][:1] == ["ready"]
    finally:
        server.stop()


async def test_a_busy_stream_is_sent_no_heartbeat_and_an_idle_one_is(tmp_path: Path) -> None:
    """A heartbeat proves an idle connection alive; a stream that events keep busy is sent none
    (at thousands of streams they were thousands of writes per tick beside the fan-out, #16),
    and it is sent one again once idle."""
    server = Server(tmp_path / "data", toml_config(realtime={"heartbeat_seconds": 2})).start()
    try:
        thread = await new_thread(server)
        live = asyncio.Event()

        def done(got: list[Any]) -> bool:
            if got[-1].event == "ready":
                live.set()
            texts = [json.loads(e.data)["payload"].get("message", {}).get("text") for e in got if e.event == "message"]
            return "busy 19" in texts and got[-1].event == "heartbeat"

        async def post_while_reading() -> None:
            await live.wait()
            async with server.client() as client:
                for i in range(20):  # a message every ~0.1 s: never a tick (every 1 s) without one
                    response = await client.post(f"/v1/threads/{thread}/messages", json={"text": f"busy {i}"})
                    assert response.status_code == 201
                    await asyncio.sleep(0.1)

        events, _ = await asyncio.gather(read_sse(server, until=done, timeout=30), post_while_reading())
        kinds = [
            e.event if e.event != "message" else json.loads(e.data)["payload"].get("message", {}).get("text")
            for e in events
        ]
        busy = kinds[kinds.index("busy 0") : kinds.index("busy 19") + 1]
        assert len(busy) >= 20 and "heartbeat" not in busy, kinds
        assert kinds[-1] == "heartbeat", "idle again: heartbeats again"
    finally:
        server.stop()


async def test_client_older_than_retention_gets_reset(tmp_path: Path) -> None:
    # 0.00002 days is under two seconds: everything posted before the restart is pruned.
    server = Server(tmp_path / "data", toml_config(storage={"retention_days": 0.00002})).start()
    try:
        await post_messages(server, server.channel_id("general"), 5)
        await asyncio.sleep(2.0)
        server.restart()
        events = await read_sse(server, params={"after": 1}, until=lambda got: any(e.event == "ready" for e in got))
        assert events[0].event == "reset"
        reset = json.loads(events[0].data)
        assert reset["reason"] == "retention"
        assert events[0].id == str(reset["resume_after"])
        assert not logged(events)
    finally:
        server.stop()


def _slow_reader(server: Server) -> tuple[socket.socket, bytes]:
    """A raw SSE client with a tiny receive window that, once its stream is live (the `ready`
    event, returned with what came before it), reads no more for now."""
    sock = sse_client(server)
    return sock, read_until(sock, lambda got: b"event: ready" in got, timeout=20)


def _read_all(sock: socket.socket, first: bytes, timeout: float = 30) -> str:
    sock.settimeout(timeout)
    chunks = [first]
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        if b"event: lagged" in b"".join(chunks[-2:]):
            sock.settimeout(1)
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    # undo chunked transfer encoding
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out).decode()


async def test_slow_subscriber_is_cut_and_resumes_without_loss(tmp_path: Path) -> None:
    server = Server(tmp_path / "data", toml_config(realtime={"max_lag": 20, "ring_size": 64})).start()
    try:
        general = server.channel_id("general")
        slow, slow_first = await asyncio.to_thread(_slow_reader, server)
        latencies: list[float] = []
        posted_at: dict[str, float] = {}

        fast_live = asyncio.Event()

        async def fast() -> list[dict[str, Any]]:
            seen: list[dict[str, Any]] = []
            async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=60) as client:
                async with aconnect_sse(client, "GET", "/v1/realtime/sse") as source:
                    async for event in source.aiter_sse():
                        if event.event == "ready":
                            fast_live.set()
                        if event.event != "message":
                            continue
                        data = json.loads(event.data)
                        if data["event_type"] == "message.created":
                            text = data["payload"]["message"]["text"]
                            latencies.append(time.monotonic() - posted_at.get(text, time.monotonic()))
                            seen.append(data)
                            if len(seen) == 250:
                                return seen
            return seen

        fast_task = asyncio.create_task(fast())
        await asyncio.wait_for(fast_live.wait(), 20)
        big = "x" * 30_000  # 250 events of ~30 KB overflow the kernel's socket buffers
        async with server.client() as client:
            for i in range(250):
                posted_at[f"{i}-{big}"] = time.monotonic()
                response = await client.post(f"/v1/channels/{general}/messages", json={"text": f"{i}-{big}"})
                assert response.status_code == 201
        fast_seen = await asyncio.wait_for(fast_task, 30)
        assert len(fast_seen) == 250
        latencies.sort()
        assert latencies[int(len(latencies) * 0.99) - 1] < 1.0, f"fast subscriber slowed: {latencies[-5:]}"

        raw = await asyncio.to_thread(_read_all, slow, slow_first)
        slow.close()
        events = parse_sse(raw)
        names = [e.event for e in events]
        assert "lagged" in names, names[-5:]
        lagged = json.loads(events[names.index("lagged")].data)
        got = [e.json() for e in events if e.event == "message"]
        assert got and got[-1]["seq"] == lagged["resume_after"]
        assert len([e for e in got if e["event_type"] == "message.created"]) < 250
        rest = await read_sse(
            server,
            headers={"Last-Event-ID": str(lagged["resume_after"])},
            until=lambda seen: any(e.event == "ready" for e in seen),
        )
        combined = got + logged(rest)
        created = [
            e["payload"]["message"]["text"].split("-")[0] for e in combined if e["event_type"] == "message.created"
        ]
        assert sorted(int(n) for n in created) == list(range(250))
        seqs = [e["seq"] for e in combined]
        assert seqs == sorted(set(seqs))
    finally:
        server.stop()


async def test_live_events_are_written_by_the_fan_out_itself_exactly_once(tmp_path: Path) -> None:
    """Under `spacechat serve` a caught-up SSE stream is written to straight from the fan-out
    (no task wake); /metrics counts which path delivered. If a uvicorn upgrade took the fast
    path away, streams would still work, and this test would say so."""
    from prometheus_client.parser import text_string_to_metric_families

    server = Server(tmp_path / "data", toml_config(runtime={"mode": "none"})).start()
    try:
        thread_id = await new_thread(server)
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=20) as client:
            async with aconnect_sse(client, "GET", "/v1/realtime/sse") as source:
                events = source.aiter_sse()
                async with asyncio.timeout(20):
                    assert (await anext(events)).event == "ready"
                    for i in range(20):
                        posted = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": f"live {i}"})
                        assert posted.status_code == 201
                    got: list[Any] = []
                    async for event in events:
                        if event.event == "message" and event.id:
                            got.append(json.loads(event.data))
                        if len(got) == 20:
                            break
            texts = [e["payload"]["message"]["text"] for e in got]
            assert texts == [f"live {i}" for i in range(20)], "in order, each once"
            metrics = (await client.get("/metrics")).text
        deliveries: dict[str, float] = {}  # by path, over every process's series (--workers: one each)
        for family in text_string_to_metric_families(metrics):
            if family.name == "spacechat_realtime_deliveries":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        path = sample.labels["path"]
                        deliveries[path] = deliveries.get(path, 0) + sample.value
        assert deliveries["direct"] >= 1, deliveries
    finally:
        server.stop()


async def test_a_caught_up_stream_is_parked_delivers_beats_and_is_unregistered_when_the_client_leaves(
    tmp_path: Path,
) -> None:
    """#16: under `spacechat serve` a stream that has sent `ready` hands its connection to the
    host and keeps no task (the cost of an idle connection). Parked, it still gets every event in
    order and its heartbeats, and when the client goes it is unregistered."""
    server = Server(tmp_path / "data", toml_config(runtime={"mode": "none"}, realtime={"heartbeat_seconds": 0.3}))
    server.start()
    try:
        thread_id = await new_thread(server)
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=20) as client:
            async with aconnect_sse(client, "GET", "/v1/realtime/sse") as source:
                events = source.aiter_sse()
                async with asyncio.timeout(20):
                    assert (await anext(events)).event == "ready"
                    gauges = realtime_gauges((await client.get("/metrics")).text)
                    assert gauges == {"subscribers": 1, "parked_sse": 1, "parked_ws": 0}
                    for i in range(5):
                        posted = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": f"parked {i}"})
                        assert posted.status_code == 201
                    got: list[str] = []
                    beats = 0
                    async for event in events:
                        if event.event == "message" and event.id:
                            got.append(json.loads(event.data)["payload"]["message"]["text"])
                        beats += event.event == "heartbeat"
                        if len(got) == 5 and beats >= 1:
                            break
            assert got == [f"parked {i}" for i in range(5)]
            async with asyncio.timeout(10):  # the client has gone: wait for the server to notice
                while realtime_gauges((await client.get("/metrics")).text) != {
                    "subscribers": 0,
                    "parked_sse": 0,
                    "parked_ws": 0,
                }:
                    await asyncio.sleep(0.05)
    finally:
        server.stop()
