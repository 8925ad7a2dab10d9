"""Approval policies end to end over HTTP with the embedded host's scripted agent: each policy x
each decision, "approve for this thread" staying in its thread, a remembered denial applied to
the next call, a policy for one agent over the one for every agent, the inbox, audit rows
naming the rule; and the provenance timeline of a thread with a tool, an approval and a retry,
and of a priced turn that made a memory candidate."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .memory_support import agent_reply, candidates, make_channel, person
from .support import Server, invite, toml_config, wait_until

CONFIG = toml_config(top='hook_plugins = ["tool_approval"]')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("approvals") / "data", CONFIG).start()
    yield running
    running.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.sync_client() as http:
        yield http
        # Each test starts from no policy and no rule.
        for policy in http.get("/v1/approvals/policies").json()["policies"]:
            http.delete(f"/v1/approvals/policies/{policy['agent_id']}/{policy['tool']}")
        for rule in http.get("/v1/approvals/rules").json()["rules"]:
            assert http.delete(f"/v1/approvals/rules/{rule['id']}").status_code == 204


def set_policy(client: httpx.Client, tool: str, policy: str, risk: str = "high") -> None:
    answer = client.post("/v1/approvals/policies", json={"tool": tool, "policy": policy, "risk": risk})
    assert answer.status_code == 200, answer.text


def ask(server: Server, client: httpx.Client, text: str, thread_id: str | None = None) -> str:
    url = f"/v1/threads/{thread_id}/messages" if thread_id else f"/v1/channels/{server.channel_id('spacebot')}/messages"
    answer = client.post(url, json={"text": text})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["thread"]["id"])


def replies(client: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    history = client.get(f"/v1/threads/{thread_id}/history", params={"limit": 200}).json()["messages"]
    # An approval card posted mid-turn moves the reply on below it (issue 13): the message above
    # the card, closed and `continued_in` the one below, is not a reply of its own.
    return [
        m
        for m in history
        if m["author"]["kind"] == "agent" and not m["blocks"] and not (m["metadata"] or {}).get("continued_in")
    ]


def reply_done(server: Server, client: httpx.Client, thread_id: str, count: int) -> dict[str, Any]:
    """The `count`th agent reply of the thread, once it has ended."""

    def done() -> Any:
        found = replies(client, thread_id)
        return len(found) >= count and found[count - 1]["state"] in ("completed", "failed") and found[count - 1]

    return dict(wait_until(done, timeout=20))


def cards(client: httpx.Client, thread_id: str) -> list[dict[str, Any]]:
    history = client.get(f"/v1/threads/{thread_id}/history", params={"limit": 200}).json()["messages"]
    return [m for m in history if (m["metadata"] or {}).get("approval_id")]


def card(server: Server, thread_id: str, count: int = 1) -> dict[str, Any]:
    with server.sync_client() as http:
        return dict(wait_until(lambda: len(cards(http, thread_id)) >= count and cards(http, thread_id)[count - 1]))


def click(client: httpx.Client, message: dict[str, Any], action_id: str) -> httpx.Response:
    return client.post("/v1/interactions", json={"message_id": message["id"], "action_id": action_id})


def decisions(client: httpx.Client) -> list[dict[str, Any]]:
    return list(client.get("/v1/audit", params={"action": "approval.decided"}).json()["entries"])


def test_always_asks_every_time_and_shows_the_risk(server: Server, client: httpx.Client) -> None:
    set_policy(client, "restart_service", "always", "critical")
    thread_id = ask(server, client, "restart billing")
    first = card(server, thread_id)
    assert "Risk: **critical**" in str(first["blocks"]) and "policy: always" in str(first["blocks"])
    labels = [e["label"] for b in first["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert labels == ["Approve", "Approve for this thread", "Deny", "Deny and remember"]
    assert click(client, first, "tool.approve").status_code == 201
    assert "restart of billing requested" in reply_done(server, client, thread_id, 1)["text"]
    ask(server, client, "restart billing again", thread_id)
    second = card(server, thread_id, 2)
    assert click(client, second, "tool.deny").status_code == 201
    assert "Tool denied" in reply_done(server, client, thread_id, 2)["text"]
    audit = decisions(client)[:2]
    assert [(e["outcome"], e["details"]["decision"]) for e in audit] == [("denied", "deny"), ("approved", "approve")]
    assert all("under policy always" in e["details"]["rule"] for e in audit)


def test_approve_for_this_thread_stays_in_its_thread(server: Server, client: httpx.Client) -> None:
    set_policy(client, "restart_service", "always")
    thread_id = ask(server, client, "restart search")
    assert click(client, card(server, thread_id), "tool.approve_thread").status_code == 201
    assert "restart of search requested" in reply_done(server, client, thread_id, 1)["text"]
    ask(server, client, "once more, restart search", thread_id)
    again = reply_done(server, client, thread_id, 2)
    assert "restart of search requested" in again["text"]
    assert len(cards(client, thread_id)) == 1, "no second card in the same thread"
    assert "allowed in this thread" in decisions(client)[1]["details"]["rule"]
    assert "approved for this thread" in decisions(client)[0]["details"]["rule"]
    other = ask(server, client, "restart search")
    asked = card(server, other)
    assert asked["thread_id"] == other, "another thread is asked again"
    assert click(client, asked, "tool.deny").status_code == 201
    reply_done(server, client, other, 1)


def test_deny_and_remember_refuses_the_next_call_everywhere(server: Server, client: httpx.Client) -> None:
    set_policy(client, "restart_service", "always")
    thread_id = ask(server, client, "restart payments")
    assert click(client, card(server, thread_id), "tool.deny_remember").status_code == 201
    assert "Tool denied" in reply_done(server, client, thread_id, 1)["text"]
    rules = client.get("/v1/approvals/rules").json()["rules"]
    assert [(r["tool"], r["decision"], r["thread_id"]) for r in rules] == [("restart_service", "deny", None)]
    other = ask(server, client, "restart payments")
    denied = reply_done(server, client, other, 1)
    assert "Tool denied" in denied["text"] and "remembered denial" in denied["text"]
    assert cards(client, other) == [], "a remembered denial asks nobody"
    latest = decisions(client)[0]
    assert latest["actor"]["kind"] == "system" and latest["details"]["rule"].startswith("remembered denial")


def test_once_per_thread_asks_once_in_each_thread(server: Server, client: httpx.Client) -> None:
    set_policy(client, "calculate", "once_per_thread", "low")
    thread_id = ask(server, client, "calculate 2 + 3")
    assert click(client, card(server, thread_id), "tool.approve").status_code == 201
    assert "5" in reply_done(server, client, thread_id, 1)["text"]
    ask(server, client, "calculate 4 + 4", thread_id)
    assert "8" in reply_done(server, client, thread_id, 2)["text"]
    assert len(cards(client, thread_id)) == 1
    other = ask(server, client, "calculate 1 + 1")
    assert click(client, card(server, other), "tool.deny").status_code == 201
    assert "Tool denied" in reply_done(server, client, other, 1)["text"]


def test_once_per_thread_and_approve_for_this_thread_runs_on_in_that_thread_only(
    server: Server, client: httpx.Client
) -> None:
    set_policy(client, "calculate", "once_per_thread", "low")
    thread_id = ask(server, client, "calculate 6 + 1")
    assert click(client, card(server, thread_id), "tool.approve_thread").status_code == 201
    assert "7" in reply_done(server, client, thread_id, 1)["text"]
    rules = client.get("/v1/approvals/rules").json()["rules"]
    assert [(r["tool"], r["decision"], r["thread_id"]) for r in rules] == [("calculate", "allow", thread_id)]
    ask(server, client, "calculate 6 + 2", thread_id)
    assert "8" in reply_done(server, client, thread_id, 2)["text"]
    assert len(cards(client, thread_id)) == 1, "not asked again in this thread"
    latest = decisions(client)[0]
    assert latest["actor"]["kind"] == "system" and latest["details"]["rule"].startswith("approved for this thread")
    other = ask(server, client, "calculate 6 + 3")
    assert click(client, card(server, other), "tool.deny").status_code == 201, "another thread is asked"
    assert "Tool denied" in reply_done(server, client, other, 1)["text"]


def test_once_per_thread_and_deny_and_remember_refuses_everywhere_unasked(server: Server, client: httpx.Client) -> None:
    set_policy(client, "calculate", "once_per_thread", "low")
    thread_id = ask(server, client, "calculate 5 + 5")
    assert click(client, card(server, thread_id), "tool.deny_remember").status_code == 201
    assert "Tool denied" in reply_done(server, client, thread_id, 1)["text"]
    assert "deny_remember by" in decisions(client)[0]["details"]["rule"]
    rules = client.get("/v1/approvals/rules").json()["rules"]
    assert [(r["tool"], r["decision"], r["thread_id"]) for r in rules] == [("calculate", "deny", None)]
    ask(server, client, "calculate 5 + 6", thread_id)
    assert "remembered denial" in reply_done(server, client, thread_id, 2)["text"]
    other = ask(server, client, "calculate 5 + 7")
    assert "remembered denial" in reply_done(server, client, other, 1)["text"]
    assert len(cards(client, thread_id)) == 1 and cards(client, other) == [], "nobody is asked again"
    assert all(e["details"]["rule"].startswith("remembered denial") for e in decisions(client)[:2])


def test_a_policy_for_the_agent_beats_the_policy_for_every_agent(server: Server, client: httpx.Client) -> None:
    set_policy(client, "calculate", "never")
    mine = {"agent_id": "spacebot", "tool": "calculate", "policy": "auto", "risk": "low"}
    assert client.post("/v1/approvals/policies", json=mine).status_code == 200
    thread_id = ask(server, client, "calculate 20 + 22")
    assert "42" in reply_done(server, client, thread_id, 1)["text"], "spacebot's own policy: auto"
    assert cards(client, thread_id) == []
    assert client.delete("/v1/approvals/policies/spacebot/calculate").status_code == 204
    ask(server, client, "calculate 20 + 23", thread_id)
    assert "policy never" in reply_done(server, client, thread_id, 2)["text"], "then the policy for every agent"
    assert decisions(client)[0]["details"]["rule"].startswith("policy never for spacebot/calculate")
    mine["policy"] = "always"
    assert client.post("/v1/approvals/policies", json=mine).status_code == 200
    ask(server, client, "calculate 20 + 24", thread_id)
    asked = card(server, thread_id)
    assert "policy: always" in str(asked["blocks"]) and "Risk: **low**" in str(asked["blocks"])
    assert click(client, asked, "tool.approve").status_code == 201
    assert "44" in reply_done(server, client, thread_id, 3)["text"]
    assert "under policy always" in decisions(client)[0]["details"]["rule"]


def test_auto_runs_and_never_refuses_without_asking(server: Server, client: httpx.Client) -> None:
    set_policy(client, "current_time", "auto")
    before = len(decisions(client))
    thread_id = ask(server, client, "what time is it")
    assert "I used `current_time`" in reply_done(server, client, thread_id, 1)["text"]
    assert len(decisions(client)) == before, "auto is not a decision"
    set_policy(client, "current_time", "never")
    ask(server, client, "what time is it now", thread_id)
    assert "policy never" in reply_done(server, client, thread_id, 2)["text"]
    assert cards(client, thread_id) == []
    assert decisions(client)[0]["details"]["rule"].startswith("policy never for spacebot/current_time")


def test_inbox_oldest_first_and_who_may_decide(server: Server, client: httpx.Client) -> None:
    set_policy(client, "restart_service", "always")
    first = ask(server, client, "restart alpha")
    card(server, first)
    second = ask(server, client, "restart beta")
    card(server, second)
    inbox = client.get("/v1/approvals").json()["approvals"]
    mine = [a for a in inbox if a["thread_id"] in (first, second)]
    assert [a["thread_id"] for a in mine] == [first, second], "oldest first"
    assert all(a["age_seconds"] >= 0 and a["status"] == "pending" for a in mine)
    member = invite(server, server.token, "member")
    with httpx.Client(base_url=server.url, headers=member.auth) as other:
        assert other.get("/v1/approvals").status_code == 403
        refused = other.post(f"/v1/approvals/{mine[0]['id']}/decide", json={"decision": "approve"})
        assert refused.status_code == 403
        assert other.post("/v1/approvals/policies", json={"tool": "x", "policy": "auto"}).status_code == 403
    bad = client.post(f"/v1/approvals/{mine[0]['id']}/decide", json={"decision": "maybe"})
    assert bad.status_code == 400
    for approval in mine:
        decided = client.post(f"/v1/approvals/{approval['id']}/decide", json={"decision": "deny"})
        assert decided.status_code == 200 and decided.json()["approval"]["status"] == "denied"
    again = client.post(f"/v1/approvals/{mine[0]['id']}/decide", json={"decision": "approve"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"
    assert client.post("/v1/approvals/apv_nope/decide", json={"decision": "deny"}).status_code == 404
    reply_done(server, client, first, 1)
    reply_done(server, client, second, 1)


def test_stopping_a_turn_that_waits_settles_its_approval(server: Server, client: httpx.Client) -> None:
    set_policy(client, "restart_service", "always")
    thread_id = ask(server, client, "restart archive")
    asked = card(server, thread_id)
    reply = wait_until(lambda: replies(client, thread_id))[0]
    assert reply["state"] in ("created", "streaming")
    stopped = client.post(f"/v1/messages/{reply['id']}/stop")
    assert stopped.status_code == 200 and stopped.json()["message"]["metadata"]["stop_reason"] == "stopped"
    settled = client.get(f"/v1/messages/{asked['id']}").json()["message"]
    assert settled["card_state"]["decided"]["decision"]["label"].startswith("Not run:")
    assert client.get("/v1/approvals").json()["approvals"] == []
    latest = decisions(client)[0]
    assert latest["details"]["decision"] == "stopped" and latest["details"]["rule"].startswith("the turn that asked")
    assert click(client, settled, "tool.approve").status_code == 409, "nothing left to approve"


def kinds(steps: list[dict[str, Any]]) -> list[str]:
    return [step["kind"] for step in steps]


def test_timeline_of_a_thread_with_a_tool_an_approval_and_a_retry(server: Server, client: httpx.Client) -> None:
    set_policy(client, "restart_service", "once_per_thread")
    thread_id = ask(server, client, "restart ledger")
    assert click(client, card(server, thread_id), "tool.approve").status_code == 201
    first = reply_done(server, client, thread_id, 1)
    retried = client.post(
        f"/v1/ops/channels/{server.channel_id('spacebot')}/retry", json={"reason": "again", "thread_id": thread_id}
    )
    assert retried.status_code == 200, retried.text
    second = reply_done(server, client, thread_id, 2)
    steps = client.get(f"/v1/threads/{thread_id}/timeline").json()["steps"]
    assert kinds(steps) == [
        "message",
        "turn_started",
        "model_call",
        "message",
        "approval_requested",
        "interaction",
        "approval_decided",
        "tool_call",
        "model_call",
        "turn_completed",
        "retry",
        "turn_started",
        "model_call",
        "approval_decided",
        "tool_call",
        "model_call",
        "turn_completed",
    ]
    by_kind = {step["kind"]: step for step in steps}
    assert steps[0]["text"] == "restart ledger"
    assert by_kind["approval_requested"]["policy"] == "once_per_thread"
    assert "approve by" in steps[6]["rule"] and "approved for this thread" in steps[13]["rule"]
    tool = steps[7]
    assert tool["tool"] == "restart_service" and '"service": "ledger"' in tool["arguments"]
    assert tool["outcome"] == "completed" and "restart of ledger requested" in tool["result"]
    call = steps[2]
    assert call["model"] == "scripted-1" and call["tokens"]["input_tokens"] > 0 and call["unpriced"] is True
    assert call["latency_ms"] is not None and call["latency_ms"] >= 0
    assert steps[10]["retry_of"] == first["metadata"]["turn_id"] == steps[1]["turn_id"]
    assert steps[11]["turn_id"] == second["metadata"]["turn_id"] == retried.json()["result"]["turn_id"]
    assert [s["seq"] for s in steps] == sorted(s["seq"] for s in steps)
    member = invite(server, server.token, "member")
    with httpx.Client(base_url=server.url, headers=member.auth) as other:
        assert other.get(f"/v1/threads/{thread_id}/timeline").status_code == 200
    assert client.get("/v1/threads/thr_nope/timeline").status_code == 404


def test_timeline_shows_a_priced_model_call_and_the_memory_candidate_a_turn_made(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The scripted model priced (USD per million tokens), and a channel whose agent memories
    # wait for review: the turn that saves a memory makes a candidate.
    prices = '\n[[prices]]\nmatch = "scripted-*"\ninput = 3.0\noutput = 15.0\n'
    server = Server(tmp_path_factory.mktemp("provenance") / "data", toml_config(prices)).start()
    try:
        with server.sync_client() as owner:
            channel_id = make_channel(owner, "decisions", ingestion="review", sources=["agent"])
        ina = person(server, "Ina Inwell", consent="in")
        with httpx.Client(base_url=server.url, headers=ina.auth) as client:
            posted = client.post(
                f"/v1/channels/{channel_id}/messages", json={"text": "@spacebot remember that deploys wait for Friday"}
            )
            assert posted.status_code == 201, posted.text
            thread_id = posted.json()["thread"]["id"]
            assert "Queued for review" in agent_reply(client, thread_id)
        with server.sync_client() as owner:
            steps = owner.get(f"/v1/threads/{thread_id}/timeline").json()["steps"]
            candidate = next(c for c in candidates(owner) if c["thread_id"] == thread_id)
        # memory_save is the agent's own tool, not a worker's (as in Spacebot): the candidate it
        # made is its step, between the request that asked for it and the one that answered.
        assert kinds(steps) == [
            "message",
            "turn_started",
            "model_call",
            "memory_candidate",
            "model_call",
            "turn_completed",
        ]
        made = steps[3]
        assert made["candidate"]["id"] == candidate["id"] and made["candidate"]["content"] == "deploys wait for Friday"
        assert made["candidate"]["source"] == "agent" and made["candidate"]["source_user_id"] == ina.id
        for call in (steps[2], steps[4]):
            tokens = call["tokens"]
            assert tokens["input_tokens"] > 0 and tokens["output_tokens"] > 0
            expected = (tokens["input_tokens"] * 3.0 + tokens["output_tokens"] * 15.0) / 1_000_000
            assert call["unpriced"] is False and call["cost_usd"] == pytest.approx(expected)
    finally:
        server.stop()


def test_policies_are_validated_and_listed(client: httpx.Client) -> None:
    assert client.post("/v1/approvals/policies", json={"tool": "x", "policy": "sometimes"}).status_code == 400
    assert client.post("/v1/approvals/policies", json={"tool": "x", "policy": "auto", "extra": 1}).status_code == 400
    set_policy(client, "restart_service", "never", "critical")
    listed = client.get("/v1/approvals/policies").json()
    assert [(p["agent_id"], p["tool"], p["policy"], p["risk"]) for p in listed["policies"]] == [
        ("*", "restart_service", "never", "critical")
    ]
    assert listed["default"] == "auto"
    assert client.delete("/v1/approvals/policies/*/nothing").status_code == 404
    audit = client.get("/v1/audit", params={"action": "approval.policy_set"}).json()["entries"]
    assert audit[0]["action"] == "approval.policy_set" and audit[0]["details"]["policy"] == "never"
