"""Several `spacechat serve` gateways on one Postgres and one nats-server (issue 17): fan-out
across gateways in seq order, resuming on another gateway after one is SIGKILLed, idempotency
and the two-person rule across gateways, and the agents' lease. Real servers throughout: a
Postgres cluster and a nats-server started by the fixtures, gateways as subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import aconnect_sse

from . import postgres
from .buses import NatsServer
from .buses import available as nats_available
from .listen import Listener
from .support import OWNER, PNG_BYTES, Server, invite, login, toml_config, wait_for_message, wait_until

pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.skipif(not (nats_available() and postgres.available()), reason="needs nats-server and Postgres"),
]


@dataclass
class Deployment:
    root: Path
    nats: NatsServer
    database: str
    gateways: dict[str, Server] = field(default_factory=dict)

    def config(self, gateway_id: str, bus: dict[str, Any] | None = None, **sections: Any) -> str:
        return toml_config(
            # One directory for uploads and voice audio, as a shared mount would be.
            storage={"url": self.database, "files_dir": str(self.root / "files")},
            bus={"url": self.nats.url, "poll_ms": 200, "gap_wait_ms": 25, **(bus or {})},
            gateway={"id": gateway_id, "heartbeat_seconds": 0.5, "lease_retry_seconds": 0.5},
            **sections,
        )

    def start(self, gateway_id: str, **sections: Any) -> Server:
        first = not self.gateways
        server = Server(self.root / gateway_id, self.config(gateway_id, **sections), create_owner=first)
        server.start()
        if not first:
            server.token = next(iter(self.gateways.values())).token  # tokens live in the database
        self.gateways[gateway_id] = server
        return server

    def stop(self) -> None:
        for server in self.gateways.values():
            server.stop()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    nats = NatsServer()
    nats.start()
    found = Deployment(tmp_path, nats, postgres.cluster().new_database())
    try:
        yield found
    finally:
        found.stop()
        nats.stop()


class Reader:
    """An SSE subscriber on one gateway that keeps every logged event it receives."""

    def __init__(self, server: Server, after: int | None = None) -> None:
        self.server = server
        self.after = after
        self.events: list[dict[str, Any]] = []
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Reader:
        self.task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        headers = {} if self.after is None else {"Last-Event-ID": str(self.after)}
        try:
            async with httpx.AsyncClient(base_url=self.server.url, headers=self.server.auth, timeout=60) as client:
                async with aconnect_sse(client, "GET", "/v1/realtime/sse", headers=headers) as source:
                    async for event in source.aiter_sse():
                        if event.event == "ready":
                            if self.after is None:
                                self.after = json.loads(event.data)["resume_after"]
                            self.ready.set()
                        elif event.event == "message" and event.id:
                            self.events.append(json.loads(event.data))
        except (httpx.HTTPError, httpx.StreamError):
            return  # the gateway went away

    def texts(self, prefix: str) -> list[str]:
        return [
            str(e["payload"]["message"]["text"])
            for e in self.events
            if e["event_type"] == "message.created" and str(e["payload"]["message"]["text"]).startswith(prefix)
        ]

    async def wait_for(self, prefix: str, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while len(self.texts(prefix)) < count:
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()  # it may have ended already: its gateway went away
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


async def post_burst(server: Server, thread_id: str, texts: list[str], concurrency: int = 4) -> list[str]:
    """Post these replies; return the texts acknowledged (a gateway killed mid-burst answers no more)."""
    queue = list(reversed(texts))
    acked: list[str] = []
    async with server.client() as client:

        async def worker() -> None:
            while queue:
                text = queue.pop()
                try:
                    response = await client.post(
                        f"/v1/threads/{thread_id}/messages", json={"text": text}, headers={"Idempotency-Key": text}
                    )
                except httpx.HTTPError:
                    return
                assert response.status_code == 201, response.text
                acked.append(text)

        await asyncio.gather(*[worker() for _ in range(concurrency)])
    return acked


async def new_thread(server: Server) -> str:
    async with server.client() as client:
        response = await client.post(f"/v1/channels/{server.channel_id('general')}/messages", json={"text": "root"})
        assert response.status_code == 201, response.text
    return str(response.json()["thread"]["id"])


def assert_in_seq_order_once(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "events out of seq order, or one twice"


@pytest.mark.slow
async def test_a_subscriber_on_a_receives_what_is_posted_on_b_and_c_in_seq_order(deployment: Deployment) -> None:
    a, b, c = deployment.start("a"), deployment.start("b"), deployment.start("c")
    thread_id = await new_thread(b)
    reader = Reader(a).start()
    await asyncio.wait_for(reader.ready.wait(), 15)
    sent_b = [f"from-b-{i}" for i in range(60)]
    sent_c = [f"from-c-{i}" for i in range(60)]
    await asyncio.gather(post_burst(b, thread_id, sent_b), post_burst(c, thread_id, sent_c))
    await reader.wait_for("from-", 120)
    await reader.stop()
    assert sorted(reader.texts("from-")) == sorted(sent_b + sent_c)
    assert_in_seq_order_once(reader.events)
    # B's and C's events reached A over the bus (the log filled no more than a few gaps).
    async with a.client() as client:
        metrics = (await client.get("/metrics")).text
    assert 'spacechat_relay_events_total{gateway="a",way="bus"}' in metrics
    health = await asyncio.to_thread(lambda: httpx.get(f"{a.url}/v1/system/health", headers=a.auth).json())
    assert health["gateway"] == "a"
    assert {g["id"] for g in health["gateways"]} == {"a", "b", "c"}


@pytest.mark.slow
async def test_a_killed_during_a_burst_the_subscriber_resumes_on_b_with_no_gap_and_no_duplicate(
    deployment: Deployment,
) -> None:
    a, b, c = deployment.start("a"), deployment.start("b"), deployment.start("c")
    thread_id = await new_thread(b)
    reader = Reader(a).start()
    await asyncio.wait_for(reader.ready.wait(), 15)
    texts = [f"burst-{i}" for i in range(300)]
    burst = asyncio.create_task(post_burst(c, thread_id, texts, concurrency=2))
    await reader.wait_for("burst-", 40)
    await asyncio.to_thread(a.kill)  # SIGKILL, mid-burst
    await reader.stop()
    before = list(reader.events)
    resumed = Reader(b, after=before[-1]["seq"]).start()  # what a browser sends: Last-Event-ID
    acked = await burst
    assert len(acked) == 300
    await resumed.wait_for("burst-", 300 - len(reader.texts("burst-")))
    await resumed.stop()
    together = before + resumed.events
    assert_in_seq_order_once(together)
    got = [t for t in [*reader.texts("burst-"), *resumed.texts("burst-")]]
    assert sorted(got) == sorted(texts), "a gap or a duplicate at the seam"


async def test_a_concurrent_duplicate_sent_to_two_gateways_makes_one_message_and_one_409(
    deployment: Deployment,
) -> None:
    a, b = deployment.start("a"), deployment.start("b")
    thread_id = await new_thread(a)
    statuses: list[tuple[int, int]] = []
    async with a.client() as to_a, b.client() as to_b:
        for i in range(20):
            key = f"dup-{i}"
            body = {"text": f"duplicate {i}"}
            answers = await asyncio.gather(
                to_a.post(f"/v1/threads/{thread_id}/messages", json=body, headers={"Idempotency-Key": key}),
                to_b.post(f"/v1/threads/{thread_id}/messages", json=body, headers={"Idempotency-Key": key}),
            )
            created = [r for r in answers if r.status_code == 201 and r.headers.get("idempotent-replayed") != "true"]
            assert len(created) == 1, [r.text for r in answers]
            other = next(r for r in answers if r is not created[0])
            assert other.status_code in (201, 409), other.text
            if other.status_code == 409:
                assert other.json()["error"]["code"] == "idempotency_key_in_use"
            else:
                assert other.json()["message"]["id"] == created[0].json()["message"]["id"]
            statuses.append((answers[0].status_code, answers[1].status_code))
        history = (await to_b.get(f"/v1/threads/{thread_id}/history")).json()["messages"]
    texts = [m["text"] for m in history if m["text"].startswith("duplicate ")]
    assert sorted(texts) == sorted(f"duplicate {i}" for i in range(20)), "one message per key"
    assert any(409 in pair for pair in statuses), "no send was ever concurrent: the test proved nothing"


async def test_the_two_person_rule_holds_across_gateways(deployment: Deployment) -> None:
    ops = {"require_second_approval": ["restart"]}
    a, b, c = deployment.start("a", ops=ops), deployment.start("b", ops=ops), deployment.start("c", ops=ops)
    first = invite(a, a.token, "operator")
    second = invite(a, a.token, "operator")
    # Until a gateway has heard which one holds the agents' lease it answers an operation 503
    # (Retry-After): send none before b and c agree on the holder.
    await holder_agreed(b, c)
    with httpx.Client(base_url=b.url, headers=first.auth) as client:
        asked = client.post("/v1/ops/agents/spacebot/restart", json={"reason": "stuck worker"})
        assert asked.status_code == 202, asked.text
        operation = asked.json()
    with httpx.Client(base_url=c.url, headers=first.auth) as client:
        own = client.post(f"/v1/ops/pending/{operation['id']}/approve")
        assert own.status_code == 403 and own.json()["error"]["code"] == "same_operator"
    with httpx.Client(base_url=a.url, headers=second.auth) as client:
        approved = client.post(f"/v1/ops/pending/{operation['id']}/approve")
        assert approved.status_code == 200, approved.text
    with httpx.Client(base_url=c.url, headers=second.auth) as client:
        again = client.post(f"/v1/ops/pending/{operation['id']}/approve")
        assert again.status_code == 409


@pytest.mark.slow
async def test_the_lease_holder_killed_mid_stream_another_takes_over_and_the_next_turn_runs_once(
    deployment: Deployment,
) -> None:
    slow = {"providers.scripted": {"chars_per_second": 60}}
    a = deployment.start("a", **slow)
    b = deployment.start("b", **slow)

    async with asyncio.timeout(15):
        while (await asyncio.to_thread(lease_holders, b)) != ["a"]:  # the first gateway up took the lease
            await asyncio.sleep(0.1)
    await agents_move_when_their_process_dies(b, a.kill, "a")


async def agents_move_when_their_process_dies(survivor: Server, kill: Callable[[], None], holder: str) -> None:
    """The process running the agents (`holder`, which `kill` SIGKILLs) dies mid-reply: the one
    that takes the lease over ends the cut reply `interrupted`, and the next turn runs once.
    Watched through `survivor`, whose stream and connections outlive the kill (test_workers.py
    runs it on the workers of one server)."""
    spacebot = survivor.channel_id("spacebot")

    def agent_reply(event: dict[str, Any], thread_id: str, *types: str) -> bool:
        return (
            event["event_type"] in types
            and event["thread_id"] == thread_id
            and event["payload"]["message"]["author"]["kind"] == "agent"
        )

    async with Listener(survivor, survivor.auth) as stream, survivor.client() as client:
        posted = await client.post(f"/v1/channels/{spacebot}/messages", json={"text": "tell me about yourself"})
        thread_id = posted.json()["thread"]["id"]
        created = await stream.wait_for(lambda e: agent_reply(e, thread_id, "message.created"))
        reply_id = created["payload"]["message"]["id"]
        await stream.wait_for(
            lambda e: (
                e["event_type"] == "message.stream.delta"
                and e["payload"]["message_id"] == reply_id
                and e["payload"]["offset"] >= 20
            )
        )
        await asyncio.to_thread(kill)  # mid-reply
        # The process that takes the lease (within seconds) ends the cut reply.
        ended = await stream.wait_for(
            lambda e: (
                agent_reply(e, thread_id, "message.failed", "message.completed")
                and e["payload"]["message"]["id"] == reply_id
            ),
            timeout=15,
        )
        assert ended["event_type"] == "message.failed" and ended["payload"]["reason"] == "interrupted"
        cut = (await client.get(f"/v1/messages/{reply_id}")).json()["message"]
        assert cut["state"] == "failed" and cut["failure_reason"] == "interrupted"
        async with asyncio.timeout(15):  # health's view (no event says it): one holder, not the dead one
            while (now := await asyncio.to_thread(lease_holders, survivor)) in ([], [holder]) or len(now) != 1:
                await asyncio.sleep(0.1)
        at = stream.mark()
        await client.post(f"/v1/threads/{thread_id}/messages", json={"text": "and again"})
        await stream.wait_for(lambda e: agent_reply(e, thread_id, "message.completed"), timeout=30, after=at)
        await asyncio.sleep(1)  # a second turn, were there one, would have started by now
        history = (await client.get(f"/v1/threads/{thread_id}/history")).json()["messages"]
        replies = [m for m in history if m["author"]["kind"] == "agent" and m["id"] != reply_id]
        assert len(replies) == 1 and replies[0]["state"] == "completed", replies


async def test_a_cursor_from_another_gateway_is_taken_before_its_events_reach_this_one(
    deployment: Deployment,
) -> None:
    """A client moving from A to B brings A's newest seq: B takes it (resume, read markers) even
    while the bus is down and B has not yet read those events from the log."""
    a = deployment.start("a")
    b = deployment.start("b", bus={"poll_ms": 60_000})  # B reads the log's head only once a minute
    thread_id = await new_thread(b)
    deployment.nats.pause()  # B hears nothing of A's commits now
    async with a.client() as on_a:
        for i in range(3):
            posted = await on_a.post(f"/v1/threads/{thread_id}/messages", json={"text": f"on a {i}"})
            assert posted.status_code == 201, posted.text
        newest = (await on_a.get(f"/v1/threads/{thread_id}")).json()["thread"]["last_seq"]
    async with b.client() as on_b:
        async with aconnect_sse(on_b, "GET", "/v1/realtime/sse", headers={"Last-Event-ID": str(newest)}) as source:
            assert source.response.status_code == 200, await source.response.aread()
            async with asyncio.timeout(10):
                async for event in source.aiter_sse():
                    if event.event == "ready":
                        assert json.loads(event.data)["resume_after"] == newest
                        break
        marked = await on_b.post(f"/v1/threads/{thread_id}/read", json={"seq": newest})
        assert marked.status_code == 200 and marked.json()["last_read_seq"] == newest, marked.text
    deployment.nats.start()


async def test_a_member_removed_on_one_gateway_is_refused_on_another_that_heard_nothing(
    deployment: Deployment,
) -> None:
    """The read barrier: with the bus down and B reading the log's head only once a minute, B has
    heard nothing of A's commits, yet its next request waits until it has read them from the log,
    so a member A just removed from a private channel is refused on B at once (and one A just
    added is let in)."""
    a = deployment.start("a")
    b = deployment.start("b", bus={"poll_ms": 60_000})
    member = invite(a, a.token, "member")
    async with a.client() as owner:
        made = await owner.post("/v1/channels", json={"name": "barrier", "private": True})
        channel_id = made.json()["channel"]["id"]
        async with httpx.AsyncClient(base_url=b.url, headers=member.auth, timeout=30) as on_b:
            deployment.nats.pause()  # B hears nothing of A's commits now
            added = await owner.post(f"/v1/channels/{channel_id}/members", json={"user_id": member.id})
            assert added.status_code in (200, 201), added.text
            assert (await on_b.get(f"/v1/channels/{channel_id}")).status_code == 200
            removed = await owner.delete(f"/v1/channels/{channel_id}/members/{member.id}")
            assert removed.status_code in (200, 204), removed.text
            assert (await on_b.get(f"/v1/channels/{channel_id}")).status_code == 404
            # A post refused too: writes pass the same barrier.
            refused = await on_b.post(f"/v1/channels/{channel_id}/messages", json={"text": "still here?"})
            assert refused.status_code == 404, refused.text
    deployment.nats.start()


async def test_a_credential_revoked_on_one_gateway_is_refused_on_another_that_heard_nothing(
    deployment: Deployment,
) -> None:
    """Sign-outs ride the log (`credential.revoked`) as memberships do: with the bus down and B
    reading the log's head once a minute, a session signed out on A and a token revoked there are
    refused by B's next request (B had both in its credential cache, good for 5 s), and the stream
    the session had open on B ends."""
    a = deployment.start("a")
    b = deployment.start("b", bus={"poll_ms": 60_000})
    member = invite(a, a.token, "member")
    made = await asyncio.to_thread(
        httpx.post, f"{a.url}/v1/tokens", headers=member.auth, json={"name": "ci", "scopes": ["messages:read"]}
    )
    assert made.status_code == 201, made.text
    by_token = {"Authorization": f"Bearer {made.json()['secret']}"}
    try:
        async with open_stream(b, member.auth) as ended, httpx.AsyncClient(base_url=b.url, timeout=30) as on_b:
            for headers in (member.auth, by_token):  # B caches both credentials now
                assert (await on_b.get("/v1/me", headers=headers)).status_code == 200
            deployment.nats.pause()  # B hears nothing of A's commits now
            async with httpx.AsyncClient(base_url=a.url, timeout=30) as on_a:
                revoked = await on_a.delete(f"/v1/tokens/{made.json()['token']['id']}", headers=member.auth)
                assert revoked.status_code == 204, revoked.text
                out = await on_a.post("/v1/auth/logout", headers=member.auth)
                assert out.status_code == 204, out.text
            refused = await on_b.get("/v1/me", headers=by_token)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "token_invalid", refused.text
            refused = await on_b.get("/v1/me", headers=member.auth)
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "session_invalid", refused.text
            await asyncio.wait_for(ended.wait(), 15)
    finally:
        deployment.nats.start()


@pytest.mark.slow
async def test_files_and_voice_memos_work_on_any_gateway(deployment: Deployment, voice_model: Path, clip: Any) -> None:
    """Uploads and voice audio live in the shared `storage.files_dir`; a memo posted on a gateway
    that does not run the agents is transcribed there and answered once by the lease holder."""
    a, b = deployment.start("a"), deployment.start("b")
    async with asyncio.timeout(15):
        while await asyncio.to_thread(lease_holders, b) != ["a"]:
            await asyncio.sleep(0.1)
    async with a.client() as on_a, b.client() as on_b:
        uploaded = await on_b.post(
            "/v1/uploads", params={"filename": "chart.png"}, content=PNG_BYTES, headers={"Content-Type": "image/png"}
        )
        assert uploaded.status_code == 201, uploaded.text
        fetched = await on_a.get(uploaded.json()["attachment"]["url"])
        assert fetched.status_code == 200 and fetched.content == PNG_BYTES

        posted = await on_b.post(
            "/v1/voice/memos",
            data={"channel_id": b.channel_id("spacebot")},
            files={"file": ("memo", clip.files["webm"], "audio/webm;codecs=opus")},
        )
        assert posted.status_code == 201, posted.text
        thread_id, memo_id = posted.json()["thread"]["id"], posted.json()["memo"]["id"]
        reply = await asyncio.to_thread(
            wait_for_message, a, thread_id, lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed", 90
        )
        audio = await on_a.get(f"/v1/voice/memos/{memo_id}")
        assert audio.status_code == 200 and audio.headers["content-type"].startswith("audio/")
        # The channel's turns run in order: once the next message is answered, a second turn for
        # the memo, were there one, would have run before it.
        written = (await on_b.post(f"/v1/threads/{thread_id}/messages", json={"text": "and a written one"})).json()

        def answered_after_written() -> list[dict[str, Any]] | None:
            found = httpx.get(f"{a.url}/v1/threads/{thread_id}/history", headers=a.auth).json()["messages"]
            at = next(i for i, m in enumerate(found) if m["id"] == written["message"]["id"])
            later = [m for m in found[at + 1 :] if m["author"]["kind"] == "agent" and m["state"] == "completed"]
            return found if later else None

        history = await asyncio.to_thread(wait_until, answered_after_written, 60)
        answers = [m["id"] for m in history if m["author"]["kind"] == "agent"]
        assert len(answers) == 2 and answers[0] == reply["id"], "the memo answered once"
        memo_message = next(m for m in history if m["author"]["kind"] == "user")
        assert "schedule" in memo_message["text"].lower(), memo_message["text"]


@pytest.mark.slow
async def test_an_operation_sent_to_a_gateway_without_the_agents_runs_on_the_lease_holder(
    deployment: Deployment,
) -> None:
    a, b = deployment.start("a"), deployment.start("b")
    assert await holder_agreed(b) == ["a"]
    spacebot = b.channel_id("spacebot")
    # The operator's client connects from another loopback address, so the audit can tell it
    # from the gateway that forwards the request.
    from_elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with b.client(transport=from_elsewhere) as on_b, a.client() as on_a:
        posted = await on_b.post(f"/v1/channels/{spacebot}/messages", json={"text": "hello there"})
        thread_id = posted.json()["thread"]["id"]

        def answered(m: dict[str, Any]) -> bool:
            return bool(m["author"]["kind"] == "agent" and m["state"] == "completed")

        first = await asyncio.to_thread(wait_for_message, b, thread_id, answered, 30)
        retried = await on_b.post(
            f"/v1/ops/channels/{spacebot}/retry", json={"reason": "again, elsewhere", "thread_id": thread_id}
        )
        assert retried.status_code == 200 and retried.json()["outcome"] == "ok", retried.text
        # The turn ran again, on A (B has no agents): a second reply.
        await asyncio.to_thread(wait_for_message, b, thread_id, lambda m: answered(m) and m["id"] != first["id"], 30)

        # A forged forwarding header sent straight to the holder vouches for nothing.
        forged = await on_a.post(
            f"/v1/ops/channels/{spacebot}/retry",
            json={"reason": "forged", "thread_id": thread_id},
            headers={"x-spacechat-forwarded": f"b;203.0.113.9;{time.time():.3f};{'0' * 64}"},
        )
        assert forged.status_code == 200, forged.text
        audit = (await on_a.get("/v1/audit", params={"action": "ops.retry"})).json()["entries"]
    addresses = {e["details"]["reason"]: e["ip"] for e in audit}
    assert addresses == {"again, elsewhere": "127.0.0.2", "forged": "127.0.0.1"}


async def test_presence_and_typing_are_one_picture_across_gateways(deployment: Deployment) -> None:
    a, b = deployment.start("a"), deployment.start("b")
    await heard_gateways(a, 2)
    watcher = invite(a, a.token, "member", name="Wanda Watcher")
    mover = invite(a, a.token, "member", name="Max Mover")
    general = a.channel_id("general")
    thread_id = await new_thread(a)

    def changed(status: str) -> Any:
        return lambda e: e["event_type"] == "presence.changed" and e["payload"]["users"].get(mover.id) == status

    async with Listener(a, watcher.auth) as watching:  # the watcher's stream is on A
        async with Listener(b, mover.auth):  # the mover's on B
            await watching.wait_for(changed("active"))
            async with httpx.AsyncClient(base_url=a.url, headers=watcher.auth, timeout=30) as on_a:
                assert mover.id in (await on_a.get("/v1/presence")).json()["users"]
            async with httpx.AsyncClient(base_url=b.url, headers=mover.auth, timeout=30) as on_b:
                typed = await on_b.post(f"/v1/channels/{general}/typing", json={"thread_id": thread_id})
                assert typed.status_code == 204
            typing = await watching.wait_for(lambda e: e["event_type"] == "typing.changed")
            assert typing["payload"]["users"] == [mover.id] and typing["thread_id"] == thread_id
            at = watching.mark()
        await watching.wait_for(changed("away"), after=at)  # their stream on B closed
    presence_events = watching.of_type("presence.changed")
    assert all(e["seq"] is None for e in presence_events)
    assert len([e for e in presence_events if e["payload"]["users"].get(mover.id) == "active"]) == 1, "told once"


async def test_failed_sign_ins_count_on_every_gateway(deployment: Deployment) -> None:
    a, b, c = deployment.start("a"), deployment.start("b"), deployment.start("c")
    wrong = {"email": "owner@example.com", "password": "not the password at all"}
    await heard_gateways(c, 3)
    for server in (a, b, a, b, a):  # the account's five tries, spread over two gateways
        assert (await asyncio.to_thread(httpx.post, f"{server.url}/v1/auth/login", json=wrong)).status_code == 401
    await heard_controls(c, 5)
    answer = await asyncio.to_thread(httpx.post, f"{c.url}/v1/auth/login", json=wrong)
    assert answer.status_code == 429, answer.text
    assert int(answer.headers["retry-after"]) > 0


def lease_holders(server: Server) -> list[str]:
    """The gateways that run the agents, as `server` sees them."""
    found = httpx.get(f"{server.url}/v1/system/health", headers=server.auth).json()
    return [g["id"] for g in found["gateways"] if g["alive"] and g["runs_agents"]]


async def holder_agreed(*servers: Server, timeout: float = 15) -> list[str]:
    """The lease holder, once every one of `servers` has heard of the same one (health's view)."""
    async with asyncio.timeout(timeout):
        while True:
            seen = [await asyncio.to_thread(lease_holders, server) for server in servers]
            if seen[0] and all(holders == seen[0] for holders in seen):
                return seen[0]
            await asyncio.sleep(0.1)


def health(server: Server) -> dict[str, Any]:
    return dict(httpx.get(f"{server.url}/v1/system/health", headers=server.auth).json())


@contextlib.asynccontextmanager
async def open_stream(server: Server, headers: dict[str, str]) -> AsyncIterator[asyncio.Event]:
    """An SSE stream on `server` under `headers`, open (past `ready`) when entered; yields the
    event set when the server ends it."""
    ready, ended = asyncio.Event(), asyncio.Event()

    async def read() -> None:
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=60) as client:
            async with aconnect_sse(client, "GET", "/v1/realtime/sse") as source:
                async for event in source.aiter_sse():
                    if event.event == "ready":
                        ready.set()
        ended.set()

    reader = asyncio.create_task(read())
    try:
        await asyncio.wait_for(ready.wait(), 15)
        yield ended
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await reader


async def heard_gateways(server: Server, count: int) -> None:
    """Until `server`'s health lists `count` gateways: it hears the others over the bus (their
    heartbeats there are the only sign of it)."""
    async with asyncio.timeout(10):
        while len((await asyncio.to_thread(health, server))["gateways"]) < count:
            await asyncio.sleep(0.1)


async def heard_controls(server: Server, count: float) -> None:
    """Until `server` has taken `count` control messages from the bus (its relay's counter)."""
    async with asyncio.timeout(10):
        while await asyncio.to_thread(control_messages, server) < count:
            await asyncio.sleep(0.05)


def control_messages(server: Server) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    metrics = httpx.get(f"{server.url}/metrics", headers=server.auth).text
    return next(
        sample.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "spacechat_relay_events"
        for sample in family.samples
        if sample.labels.get("way") == "control" and sample.name.endswith("_total")
    )


async def test_a_session_made_on_one_gateway_works_on_another_and_signing_out_ends_it_everywhere(
    deployment: Deployment,
) -> None:
    """Sessions are signed with one secret kept in the database: the cookie a browser got from
    gateway A is good on B, and a session signed out on A is refused on B at once, its open
    stream there ended (the bus carries the revocation)."""
    a, b = deployment.start("a"), deployment.start("b")
    await heard_gateways(b, 2)
    signed_in = await asyncio.to_thread(
        httpx.post, f"{a.url}/v1/auth/login", json={"email": OWNER["email"], "password": OWNER["password"]}
    )
    assert signed_in.status_code == 200, signed_in.text
    cookie = signed_in.cookies["spacechat_session"]
    async with httpx.AsyncClient(base_url=b.url, cookies={"spacechat_session": cookie}, timeout=30) as browser:
        assert (await browser.get("/v1/me")).json()["user"]["email"] == OWNER["email"]

    reference = login(a, OWNER["email"], OWNER["password"], device_name="phone").json()["session_token"]
    bearer = {"Authorization": f"Bearer {reference}"}
    async with open_stream(b, bearer) as ended:
        out = await asyncio.to_thread(httpx.post, f"{a.url}/v1/auth/logout", headers=bearer)
        assert out.status_code == 204, out.text
        refused = await asyncio.to_thread(httpx.get, f"{b.url}/v1/me", headers=bearer)
        assert refused.status_code == 401 and refused.json()["error"]["code"].startswith("session")
        await asyncio.wait_for(ended.wait(), 15)


@pytest.mark.slow
async def test_the_bus_stopped_for_ten_seconds_during_a_burst_delivers_everything_once(
    deployment: Deployment,
) -> None:
    """nats-server stopped for 10 s while B and C take posts, then started again: the subscriber
    on A gets every message once, in seq order (from the log while the bus is gone, from the
    bus again once it is back)."""
    a, b, c = deployment.start("a"), deployment.start("b"), deployment.start("c")
    thread_id = await new_thread(b)
    reader = Reader(a).start()
    await asyncio.wait_for(reader.ready.wait(), 15)
    sent: list[str] = []

    async def paced(seconds: float) -> None:
        """A post every 50 ms, on B and C by turns, for `seconds`."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        async with b.client() as on_b, c.client() as on_c:
            while loop.time() < end:
                text = f"outage-{len(sent)}"
                client = (on_b, on_c)[len(sent) % 2]
                answer = await client.post(f"/v1/threads/{thread_id}/messages", json={"text": text})
                assert answer.status_code == 201, answer.text
                sent.append(text)
                await asyncio.sleep(0.05)

    burst = asyncio.create_task(paced(14))
    await reader.wait_for("outage-", 10)  # flowing over the bus before it goes
    await asyncio.to_thread(deployment.nats.pause)
    await asyncio.sleep(10)
    await asyncio.to_thread(deployment.nats.start)
    await burst
    await reader.wait_for("outage-", len(sent), timeout=60)
    await reader.stop()
    assert sorted(reader.texts("outage-")) == sorted(sent), "a message missing or twice"
    assert_in_seq_order_once(reader.events)


async def test_single_sign_on_starts_count_on_every_gateway(deployment: Deployment) -> None:
    """Starting a single sign-on is limited per address (60 a minute): the starts made on A and
    B count on C too, so three gateways do not allow three times as many."""
    a, b, c = deployment.start("a"), deployment.start("b"), deployment.start("c")
    await heard_gateways(c, 3)
    me = await asyncio.to_thread(httpx.get, f"{a.url}/v1/me", headers=a.auth)
    org_id = me.json()["org_id"]
    before = await asyncio.to_thread(control_messages, c)

    def start(server: Server) -> int:
        return httpx.get(f"{server.url}/v1/auth/sso/{org_id}/login", follow_redirects=False).status_code

    for server in [a, b] * 30:
        assert await asyncio.to_thread(start, server) != 429
    await heard_controls(c, before + 60)
    assert await asyncio.to_thread(start, c) == 429
