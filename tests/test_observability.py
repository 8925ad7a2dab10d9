"""Observability and operations over HTTP: usage against hand-computed totals, budgets, every
operation by every role, the two-person rule, incidents, a failure drill, and /metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from .fake_openai import FakeOpenAI, priced_agent_config
from .support import Person, Server, events_after, invite, wait_for_message, wait_until

pytestmark = pytest.mark.asyncio

# The fake model answers every plain prompt with: prompt 120 (100 of them cached), completion 12,
# reasoning 3. So each turn costs input 20 x $1 + output 12 x $2 + cache read 100 x $0.50 per
# million tokens = $0.000094.
TURN_COST = (20 * 1.0 + 12 * 2.0 + 100 * 0.5) / 1_000_000


@pytest.fixture
async def model() -> AsyncIterator[FakeOpenAI]:
    fake = await FakeOpenAI().start()
    yield fake
    await fake.stop()


def ask(server: Server, text: str, thread_id: str | None = None, headers: dict[str, str] | None = None) -> str:
    spacebot = server.channel_id("spacebot")
    url = f"/v1/threads/{thread_id}/messages" if thread_id else f"/v1/channels/{spacebot}/messages"
    with httpx.Client(base_url=server.url, headers=headers or server.auth) as client:
        response = client.post(url, json={"text": text})
        assert response.status_code == 201, response.text
        return str(response.json()["thread"]["id"])


def replies(server: Server, thread_id: str, count: int) -> list[dict[str, Any]]:
    def done(m: dict[str, Any]) -> bool:
        return m["author"]["kind"] == "agent" and m["state"] in ("completed", "failed")

    wait_for_message(server, thread_id, lambda m: done(m) and _count(server, thread_id, done) >= count)
    with httpx.Client(base_url=server.url, headers=server.auth) as client:
        return [m for m in client.get(f"/v1/threads/{thread_id}/history").json()["messages"] if done(m)]


def _count(server: Server, thread_id: str, predicate: Any) -> int:
    with httpx.Client(base_url=server.url, headers=server.auth) as client:
        return sum(1 for m in client.get(f"/v1/threads/{thread_id}/history").json()["messages"] if predicate(m))


async def test_usage_rolls_up_to_hand_computed_totals(tmp_path: Path, model: FakeOpenAI) -> None:
    server = Server(tmp_path / "data", priced_agent_config(model)).start()
    try:
        first = ask(server, "hello")
        await asyncio.to_thread(replies, server, first, 1)
        ask(server, "and again", thread_id=first)
        await asyncio.to_thread(replies, server, first, 2)
        second = ask(server, "another thread")
        await asyncio.to_thread(replies, server, second, 1)
        with httpx.Client(base_url=server.url, headers=server.auth) as client:
            report = client.get("/v1/usage", params={"group_by": "thread"}).json()
            by_thread = {row["thread"]: row for row in report["rows"]}
            assert by_thread[first]["requests"] == 2 and by_thread[second]["requests"] == 1
            assert by_thread[first]["input_tokens"] == 40 and by_thread[first]["cache_read_tokens"] == 200
            assert by_thread[first]["output_tokens"] == 24 and by_thread[first]["reasoning_tokens"] == 6
            assert by_thread[first]["cost_usd"] == pytest.approx(2 * TURN_COST)
            assert report["total"]["cost_usd"] == pytest.approx(3 * TURN_COST)
            assert report["total"]["unpriced_requests"] == 0
            by_model = client.get("/v1/usage", params={"group_by": "agent,model"}).json()["rows"]
            assert by_model == [
                {
                    "agent": "llama",
                    "model": "local-model-7b",
                    **{k: by_model[0][k] for k in by_model[0] if k not in ("agent", "model")},
                }
            ]
            assert by_model[0]["requests"] == 3
            thread = client.get(f"/v1/threads/{first}/metrics").json()
            assert thread["usage"]["requests"] == 2 and thread["usage"]["cost_usd"] == pytest.approx(2 * TURN_COST)
            assert thread["latency"]["turns"] == 2 and thread["latency"]["turn_ms"]["p50"] is not None
            assert thread["serving"] == {"model": "local-model-7b", "provider": "local", "agent_id": "llama"}
            agent = client.get("/v1/agents/llama/status").json()
            assert agent["usage"]["hour"]["requests"] == 3 and agent["usage"]["30d"]["requests"] == 3
            assert agent["usage"]["day"]["cost_usd"] == pytest.approx(3 * TURN_COST)
            assert agent["latency"]["ttft_ms"]["count"] == 3
            channel = client.get(f"/v1/channels/{server.channel_id('spacebot')}/metrics").json()
            assert channel["usage"]["hour"]["output_tokens"] == 36
            assert client.get("/v1/usage", params={"group_by": "colour"}).status_code == 400
    finally:
        server.stop()


async def test_budget_warns_once_then_stops_with_a_clear_message(tmp_path: Path, model: FakeOpenAI) -> None:
    # The limit sits between two and three turns: warn after two, stop after three.
    budget = {"limit_usd": 2.5 * TURN_COST, "warn_at": 0.75, "hard_stop": True}
    server = Server(tmp_path / "data", priced_agent_config(model, budgets__agents__llama=budget)).start()
    try:
        thread_id = ask(server, "one")
        await asyncio.to_thread(replies, server, thread_id, 1)
        for n, text in enumerate(("two", "three"), start=2):
            ask(server, text, thread_id=thread_id)
            await asyncio.to_thread(replies, server, thread_id, n)
        await asyncio.sleep(0.5)
        with httpx.Client(base_url=server.url, headers=server.auth) as client:
            spacebot = server.channel_id("spacebot")
            warnings = [
                t
                for t in client.get(f"/v1/channels/{spacebot}/threads").json()["threads"]
                if t["title"].startswith("Budget warning")
            ]
            assert len(warnings) == 1, "the warning card is posted once"
            status = client.get("/v1/agents/llama/status").json()["budgets"][0]
            assert status["stopped"] is True and status["spent_usd"] == pytest.approx(3 * TURN_COST)
            before = len(model.requests)
            ask(server, "four", thread_id=thread_id)
            paused = await asyncio.to_thread(wait_for_message, server, thread_id, lambda m: "is paused" in m["text"])
            assert "budget of $" in paused["text"] and "resets at" in paused["text"]
            assert paused["blocks"][0]["type"] == "status"
            await asyncio.sleep(1.0)
            assert len(model.requests) == before, "no turn ran"
            incidents = client.get("/v1/incidents").json()["incidents"]
            assert [i["kind"] for i in incidents] == ["budget_stop"]
    finally:
        server.stop()


async def test_failure_drill(tmp_path: Path, model: FakeOpenAI) -> None:
    model.fail_with = 503
    server = Server(tmp_path / "data", priced_agent_config(model)).start()
    try:
        operator = invite(server, server.token, "operator")
        seq = 0
        thread_id = ask(server, "hello?")
        failed = (await asyncio.to_thread(replies, server, thread_id, 1))[0]
        assert failed["state"] == "failed" and "HTTP 503" in failed["error"]
        with httpx.Client(base_url=server.url, headers=operator.auth) as client:
            health = client.get("/v1/system/health").json()
            assert health["status"] == "down"
            assert {"component": "provider:local", "status": "down"}.items() <= health["components"][0].items()
            incident = client.get("/v1/incidents", params={"status": "triage"}).json()["incidents"][0]
            assert incident["kind"] == "provider_outage" and incident["source"] == "provider:local"
            errors = client.get("/v1/agents/llama/status").json()["errors"]
            assert any(e["source"] == "turn" and e["hint"] and "failing on its side" in e["hint"] for e in errors)
            model.fail_with = None
            reconnected = client.post("/v1/ops/providers/local/reconnect", json={"reason": "provider is back"})
            assert reconnected.status_code == 200 and reconnected.json()["outcome"] == "ok"
            assert client.get("/v1/system/health").json()["status"] == "ok"
            resolved = client.get(f"/v1/incidents/{incident['id']}").json()["incident"]
            assert resolved["status"] == "resolved"
            retried = client.post(
                f"/v1/ops/channels/{server.channel_id('spacebot')}/retry", json={"reason": "provider recovered"}
            )
            assert retried.status_code == 200 and retried.json()["outcome"] == "ok"
        done = await asyncio.to_thread(replies, server, thread_id, 2)
        assert done[-1]["state"] == "completed"
        with httpx.Client(base_url=server.url, headers=server.auth) as client:
            old = client.get(f"/v1/messages/{failed['id']}").json()["message"]
            assert old["metadata"]["superseded_by_turn"] == retried.json()["result"]["turn_id"]
            audit = client.get("/v1/audit", params={"action": "ops."}).json()["entries"]
        assert [(e["action"], e["actor"]["id"], e["details"]["reason"]) for e in reversed(audit)] == [
            ("ops.reconnect", operator.id, "provider is back"),
            ("ops.retry", operator.id, "provider recovered"),
        ]
        kinds = [e["event_type"] for e in events_after(server, seq)]
        assert "system.health.changed" in kinds and "incident.opened" in kinds and "incident.resolved" in kinds
        assert kinds.count("system.recovery.invoked") == 2
    finally:
        server.stop()


def _people(server: Server) -> dict[str, Person]:
    return {role: invite(server, server.token, role) for role in ("admin", "operator", "member", "guest")}


async def test_every_operation_by_every_role(tmp_path: Path, model: FakeOpenAI) -> None:
    server = Server(tmp_path / "data", priced_agent_config(model)).start()
    try:
        people = _people(server)
        thread_id = ask(server, "hi")
        await asyncio.to_thread(replies, server, thread_id, 1)
        spacebot = server.channel_id("spacebot")
        ops = {
            "retry": (f"/v1/ops/channels/{spacebot}/retry", {"admin", "operator"}),
            "restart": ("/v1/ops/agents/llama/restart", {"admin", "operator"}),
            "reconnect": ("/v1/ops/providers/local/reconnect", {"admin", "operator"}),
            # Recovering the instance is instance-wide: no organisation role is enough (issue 10).
            "recover": ("/v1/ops/instance/recover", set()),
        }
        for action, (url, allowed) in ops.items():
            for role, person in people.items():
                audit_before = audit_count(server)
                with httpx.Client(base_url=server.url, headers=person.auth) as client:
                    response = client.post(url, json={"reason": f"{role} tries {action}"})
                if role in allowed:
                    assert response.status_code == 200, (action, role, response.text)
                    assert response.json()["outcome"] == "ok", (action, role, response.json())
                    assert audit_count(server) == audit_before + 1
                else:
                    assert response.status_code in (403, 404), (action, role, response.status_code)
                    assert audit_count(server) == audit_before, "a refused operation leaves no trace but this"
        # Once the instance's operator grants the admin the instance role, the admin may recover.
        granted = await asyncio.to_thread(server.cli, "instance", "grant", people["admin"].user["email"])
        assert granted.returncode == 0, granted.stderr
        with httpx.Client(base_url=server.url, headers=people["admin"].auth) as client:
            # The server reads a credential's row again within seconds (identity/auth.py).
            recovered = wait_until(
                lambda: (
                    (r := client.post("/v1/ops/instance/recover", json={"reason": "granted"})).status_code == 200 and r
                )
            )
            assert recovered.json()["outcome"] == "ok", recovered.text
        with httpx.Client(base_url=server.url, headers=people["operator"].auth) as client:
            assert client.post("/v1/ops/agents/nobody/restart", json={"reason": "typo"}).status_code == 404
            short = client.post("/v1/ops/agents/llama/restart", json={"reason": ""})
            assert short.status_code == 400, "a reason is required"
    finally:
        server.stop()


def audit_count(server: Server) -> int:
    return int(server.query("SELECT COUNT(*) FROM audit_log WHERE action LIKE 'ops.%'")[0][0])


async def test_two_person_rule(tmp_path: Path, model: FakeOpenAI) -> None:
    server = Server(tmp_path / "data", priced_agent_config(model, ops={"require_second_approval": ["restart"]})).start()
    try:
        first = invite(server, server.token, "operator")
        second = invite(server, server.token, "operator")
        member = invite(server, server.token, "member")
        with httpx.Client(base_url=server.url, headers=first.auth) as client:
            asked = client.post("/v1/ops/agents/llama/restart", json={"reason": "stuck worker"})
            assert asked.status_code == 202
            operation = asked.json()
            assert operation["status"] == "pending" and operation["message_id"]
            own = client.post(f"/v1/ops/pending/{operation['id']}/approve")
            assert own.status_code == 403 and own.json()["error"]["code"] == "same_operator"
            own_click = client.post(
                "/v1/interactions", json={"message_id": operation["message_id"], "action_id": "ops.approve"}
            )
            assert own_click.status_code == 403
        with httpx.Client(base_url=server.url, headers=member.auth) as client:
            assert client.post(f"/v1/ops/pending/{operation['id']}/approve").status_code == 403
        assert audit_actions(server) == [("ops.restart", "pending")], "nothing ran yet"
        with httpx.Client(base_url=server.url, headers=second.auth) as client:
            approved = client.post(f"/v1/ops/pending/{operation['id']}/approve")
            assert approved.status_code == 200 and approved.json()["outcome"] == "ok"
            again = client.post(f"/v1/ops/pending/{operation['id']}/approve")
            assert again.status_code == 409
            pending = client.get("/v1/ops/pending").json()["operations"][0]
            assert pending["status"] == "done" and pending["decided_by"] == second.id
            card = client.get(f"/v1/messages/{operation['message_id']}").json()["message"]
            assert card["card_state"]["decided"]["second"]["label"].startswith("Approved by")
        assert audit_actions(server) == [("ops.restart", "pending"), ("ops.restart", "ok")]
    finally:
        server.stop()


def audit_actions(server: Server) -> list[tuple[str, str]]:
    rows = server.query("SELECT action, outcome FROM audit_log WHERE action LIKE 'ops.%' ORDER BY id")
    return [(row[0], row[1]) for row in rows]


async def test_incidents_move_through_their_states(shared_server: Server) -> None:
    operator = invite(shared_server, shared_server.token, "operator")
    member = invite(shared_server, shared_server.token, "member")
    with httpx.Client(base_url=shared_server.url, headers=operator.auth) as client:
        opened = client.post("/v1/incidents", json={"title": "Slow replies", "severity": "minor", "details": "p95 9s"})
        assert opened.status_code == 201
        incident = opened.json()["incident"]
        with httpx.Client(base_url=shared_server.url, headers=member.auth) as mem:
            assert mem.get(f"/v1/incidents/{incident['id']}").status_code == 200
            assert mem.post(f"/v1/incidents/{incident['id']}/actions/acknowledge").status_code == 403
        said = client.post(
            f"/v1/channels/{shared_server.channel_id('general')}/messages", json={"text": "p95 is 9 s since 10:02"}
        ).json()["message"]
        pins = f"/v1/incidents/{incident['id']}/pins"
        pinned = client.post(pins, json={"message_id": said["id"]})
        assert pinned.status_code == 201, pinned.text
        assert client.post(pins, json={"message_id": said["id"]}).json()["error"]["code"] == "already_pinned"
        assert client.post(pins, json={"message_id": "msg_nope"}).status_code == 404
        timeline = client.get(f"/v1/incidents/{incident['id']}/timeline").json()["timeline"]
        assert [(e["kind"], e["message_id"]) for e in timeline] == [("opened", None), ("pin", said["id"])]
        assert timeline[1]["text"] == f"pinned a message of {operator.user['name']}: p95 is 9 s since 10:02"
        acked = client.post(f"/v1/incidents/{incident['id']}/actions/acknowledge").json()["incident"]
        assert acked["status"] == "investigating" and acked["acknowledged_by"] == operator.id
        assert acked["severity"] == "sev3", "the old severity names still work: minor is sev3"
        assert client.post(f"/v1/incidents/{incident['id']}/actions/acknowledge").status_code == 409
        bad = client.post(f"/v1/incidents/{incident['id']}/actions/escalate", json={"to": "role:janitor"})
        assert bad.status_code == 400
        escalated = client.post(f"/v1/incidents/{incident['id']}/actions/escalate", json={"to": "role:admin"})
        assert escalated.json()["incident"]["escalated_to"] == "role:admin"
        resolved = client.post(f"/v1/incidents/{incident['id']}/actions/resolve", json={"note": "cache warmed"})
        assert resolved.json()["incident"]["status"] == "resolved"
        card = client.get(f"/v1/messages/{incident['message_id']}").json()["message"]
        assert card["card_state"]["incident"]["status"] == "resolved"
        actions = [e["action_id"] for b in card["blocks"] if b["type"] == "actions" for e in b["elements"]]
        assert actions == ["incident.close"], "a resolved incident offers only Close"
        thread = client.get(f"/v1/threads/{card['thread_id']}/history").json()["messages"]
        name = operator.user["name"]
        assert [m["text"] for m in thread[1:]] == [
            f"Incident #{incident['number']} pinned a message of {name}: p95 is 9 s since 10:02",
            f"Incident #{incident['number']} acknowledged by {name}",
            f"Incident #{incident['number']} escalated to admins by {name}",
            f"Incident #{incident['number']} resolved by {name}: cache warmed",
        ]
    with httpx.Client(base_url=shared_server.url, headers=shared_server.auth) as owner:
        steps = [
            e["action"]
            for e in owner.get("/v1/audit", params={"action": "incident."}).json()["entries"]
            if e["target"]["id"] == incident["id"]
        ]
    assert steps == [
        "incident.resolved",
        "incident.escalated",
        "incident.acknowledged",
        "incident.message_pinned",
        "incident.opened",
    ]


async def test_metrics_parse_and_match_the_database(tmp_path: Path, model: FakeOpenAI) -> None:
    server = Server(tmp_path / "data", priced_agent_config(model)).start()
    try:
        thread_id = ask(server, "count me")
        await asyncio.to_thread(replies, server, thread_id, 1)
        async with httpx.AsyncClient(base_url=server.url) as client:
            assert (await client.get("/metrics")).status_code == 401
            member = invite(server, server.token, "member")
            assert (await client.get("/metrics", headers=member.auth)).status_code == 403
            response = await client.get("/metrics", headers=server.auth)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(response.text)}
        stored = server.query("SELECT COUNT(*) FROM messages")[0][0]
        tokens = server.query("SELECT SUM(output_tokens), COUNT(*) FROM usage_records")[0]
        turns = server.query("SELECT COUNT(*) FROM turns WHERE outcome = 'completed'")[0][0]
        assert sum(s.value for s in families["spacechat_messages"].samples) == stored
        output = [s for s in families["spacechat_llm_tokens"].samples if s.labels["kind"] == "output"]
        assert sum(s.value for s in output) == tokens[0]
        assert sum(s.value for s in families["spacechat_llm_requests"].samples) == tokens[1]
        completed = [s for s in families["spacechat_turns"].samples if s.labels["outcome"] == "completed"]
        assert sum(s.value for s in completed) == turns == 1
        assert families["spacechat_event_log_seq"].samples[0].value > 0
        # The event loop's lag: a histogram per process, sampled while the server ran.
        samples = families["spacechat_event_loop_lag_seconds"].samples
        lag = {(s.name.rsplit("_", 1)[1], s.labels.get("le")): s.value for s in samples}
        assert lag[("count", None)] == lag[("bucket", "+Inf")] > 0
        assert all("gateway" in s.labels for s in samples)
    finally:
        server.stop()


async def _commits(client: httpx.AsyncClient) -> float:
    response = await client.get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    return sum(sample.value for sample in families["spacechat_store_commits"].samples)


async def test_a_steady_stream_of_messages_costs_about_one_commit_each(tmp_path: Path) -> None:
    """`spacechat_store_commits_total` counts group commits (each an fsync). Messages sent one
    after another cost one each, and the memory ingestion that follows the log adds at most one
    per coalescing window (50 ms), not one every few messages as when it chased the log's tail
    step after step (#16)."""
    # No embeddings: a step that embeds messages is slow enough to gather many of them anyway.
    server = Server(tmp_path / "data", '[runtime]\nmode = "none"\n\n[memory]\nembeddings = false\n').start()
    try:
        channel_id = server.channel_id("general")
        async with httpx.AsyncClient(base_url=server.url, headers=server.auth, timeout=30) as client:
            before = await _commits(client)
            started = time.monotonic()
            for i in range(300):
                posted = await client.post(f"/v1/channels/{channel_id}/messages", json={"text": f"steady {i}"})
                assert posted.status_code == 201, posted.text
            elapsed = time.monotonic() - started
            # The ingestion's last step comes within 50 ms of the last message: wait for it on
            # the counter, so that it is counted too.
            after = before
            while after <= before + 300:
                await asyncio.sleep(0.02)
                after = await _commits(client)
                assert time.monotonic() - started < elapsed + 10, "no commit of the ingestion came"
        extra = after - before - 300
        assert extra <= elapsed / 0.05 + 10, f"{extra:.0f} commits beyond the messages' in {elapsed:.2f} s"
    finally:
        server.stop()


async def test_metrics_and_usage_count_unpriced_requests_apart_from_the_cost(tmp_path: Path, model: FakeOpenAI) -> None:
    # `local-model*` has no cache-read price, so of the turn that asks the time, the first request
    # (50 in, 7 out, no cache) is priced and the second (100 of its 120 prompt tokens cached) is
    # not; `other-model` has no price at all.
    config = priced_agent_config(
        model,
        extra="""
[[agents]]
id = "mistral"
name = "Mistral"
provider = "local"
model = "other-model"
channels = ["general"]
""",
        pricing="""
[[prices]]
match = "local-model*"
input = 1.0
output = 2.0
""",
        budgets__agents__mistral={"limit_usd": 1.0},
    )
    server = Server(tmp_path / "data", config).start()
    try:
        thread_id = ask(server, "what time is it")
        await asyncio.to_thread(replies, server, thread_id, 1)
        with httpx.Client(base_url=server.url, headers=server.auth) as client:
            general = client.post(f"/v1/channels/{server.channel_id('general')}/messages", json={"text": "hello"})
            assert general.status_code == 201
            await asyncio.to_thread(replies, server, general.json()["thread"]["id"], 1)
            response = client.get("/metrics")
            report = client.get("/v1/usage", params={"group_by": "agent,model"}).json()
        priced = (50 * 1.0 + 7 * 2.0) / 1_000_000
        families = {f.name: f for f in text_string_to_metric_families(response.text)}

        def by_agent(family: str) -> dict[str, float]:
            return {s.labels["agent"]: s.value for s in families[family].samples}

        assert by_agent("spacechat_llm_requests") == {"llama": 2, "mistral": 1}
        assert by_agent("spacechat_llm_cost_usd") == {"llama": pytest.approx(priced)}, "no $0 for mistral"
        assert by_agent("spacechat_llm_unpriced_requests") == {"llama": 1, "mistral": 1}
        rows = {row["agent"]: row for row in report["rows"]}
        assert (rows["llama"]["cost_usd"], rows["llama"]["unpriced_requests"]) == (pytest.approx(priced), 1)
        assert (rows["mistral"]["cost_usd"], rows["mistral"]["unpriced_requests"]) == (None, 1)
        assert report["total"]["cost_usd"] == pytest.approx(priced) and report["total"]["unpriced_requests"] == 2
        with server.sync_client() as client:
            budget = client.get("/v1/agents/mistral/status").json()["budgets"][0]
        assert (budget["spent_usd"], budget["unpriced_requests"]) == (0, 1), "the budget says what it could not count"
    finally:
        server.stop()
