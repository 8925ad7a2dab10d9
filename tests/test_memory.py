"""Memory under policy and consent (issue 12) over HTTP against a real server: the policy x
consent x source matrix, the review lifecycle with its events, audit rows and exactly-once
delivery to the agent, merge and rollback, and the bad-input rules."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .memory_support import (
    World,
    agent_reply,
    candidates,
    make_channel,
    memories,
    person,
    sentinel,
    trigger,
)
from .support import Server, events_after, toml_config

SOURCES = ("agent", "message", "interaction", "task")
ALL_SOURCES = list(SOURCES)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    server = Server(tmp_path_factory.mktemp("memory") / "data", toml_config()).start()
    owner = httpx.Client(base_url=server.url, headers=server.auth, timeout=30)
    built = World(server, owner)
    built.channels["sentinel"] = make_channel(owner, "sentinel", ingestion="review", sources=["message"])
    for mode in ("off", "review", "auto"):
        built.channels[mode] = make_channel(owner, f"mem-{mode}", ingestion=mode, sources=ALL_SOURCES)
    built.people["in"] = person(server, "Ina Inwell", consent="in")
    built.people["out"] = person(server, "Otto Outlaw", consent="out")
    yield built
    owner.close()
    server.stop()


def _made(world: World, source: str, channel_id: str, user_id: str, tag: str) -> tuple[list[Any], list[Any]]:
    def mine(item: dict[str, Any]) -> bool:
        # A message case's own text names its tag (the agent case's message is a message too).
        about = source != "message" or tag in item["content"]
        return (
            item["source"] == source
            and item["channel_id"] == channel_id
            and item["source_user_id"] == user_id
            and about
        )

    return [c for c in candidates(world.owner) if mine(c)], [m for m in memories(world.owner) if mine(m)]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("mode", "consent", "source"), list(itertools.product(("off", "review", "auto"), ("in", "out"), SOURCES))
)
def test_policy_and_consent_decide_what_becomes_memory(world: World, mode: str, consent: str, source: str) -> None:
    someone, channel = world.people[consent], world.channels[mode]
    tag = f"{mode}-{consent}-{source}"
    answer = trigger(world, source, someone, channel, tag)
    found, saved = _made(world, source, channel, someone.id, tag)
    if consent == "out" or mode == "off":
        assert found == [] and saved == []
        if source == "agent":
            why = "turned off here by policy" if mode == "off" else "opted out of memory"
            assert "Not saved" in answer and why in answer, answer
        return
    if mode == "review":
        assert len(found) == 1 and saved == []
        assert found[0]["subject_id"] == someone.id and found[0]["status"] == "pending"
        if source == "agent":
            assert "Queued for review" in answer and found[0]["agent_id"] == "spacebot"
            assert found[0]["content"] == f"the {tag} code word is heron"
        return
    assert found == [] and len(saved) == 1 and saved[0]["status"] == "valid"
    if source == "agent":
        assert "Saved memory" in answer
        held = [m for m in world.host_memories() if m.get("key") == saved[0]["id"]]
        assert len(held) == 1 and held[0]["content"] == f"the {tag} code word is heron"


@pytest.mark.slow
def test_opted_out_people_never_appear(world: World) -> None:
    """After the matrix (same module), and after every source was tried by them in every mode."""
    for mode, source in itertools.product(("review", "auto"), SOURCES):
        trigger(world, source, world.people["out"], world.channels[mode], f"again-{mode}-{source}")
    out = world.people["out"]
    everything = [*memories(world.owner)]
    for status in ("pending", "approved", "rejected", "merged", "withdrawn"):
        everything.extend(candidates(world.owner, status))
    assert everything, "the matrix made candidates and memories"
    for item in everything:
        assert out.id not in (item["subject_id"], item["source_user_id"]), item
        assert "Otto" not in item["content"], item


@pytest.mark.slow
def test_opting_out_withdraws_pending_candidates(world: World) -> None:
    late = person(world.server, "Lena Later")
    trigger(world, "message", late, world.channels["review"], "withdraw")
    mine = [c for c in candidates(world.owner) if c["source_user_id"] == late.id]
    assert len(mine) == 1
    with world.client(late) as client:
        out = client.put("/v1/me/memory/consent", json={"consent": "out"})
        assert out.status_code == 200 and out.json()["withdrawn"] == [mine[0]["id"]]
        assert client.get("/v1/me/memory").json()["pending"] == []
    assert all(c["source_user_id"] != late.id for c in candidates(world.owner))
    withdrawn = [c for c in candidates(world.owner, "withdrawn") if c["id"] == mine[0]["id"]]
    assert withdrawn and withdrawn[0]["reason"] == "the person opted out of memory"


def _pending_from(world: World, someone_key: str, tag: str) -> dict[str, Any]:
    someone = world.people[someone_key]
    trigger(world, "message", someone, world.channels["review"], tag)
    return next(c for c in candidates(world.owner) if f"the {tag} plan is ready" == c["content"])


@pytest.mark.slow
def test_review_lifecycle_events_audit_and_exactly_once_delivery(world: World) -> None:
    owner = world.owner
    start = owner.get("/v1/me").json()["seq"]
    with world.client(world.people["in"]) as ina:
        posted = ina.post(
            f"/v1/channels/{world.channels['review']}/messages",
            json={"text": "@spacebot remember that the standup moved to 9:30"},
        )
        assert "Queued for review" in agent_reply(ina, posted.json()["thread"]["id"])
    candidate = next(c for c in candidates(owner) if c["content"] == "the standup moved to 9:30")

    # Edit, then approve: the diff is kept; the agent gets the edited text, once.
    approved = owner.post(
        f"/v1/memory/candidates/{candidate['id']}/approve", json={"content": "The daily standup is at 9:30."}
    )
    assert approved.status_code == 200, approved.text
    memory = approved.json()["memory"]
    decided = approved.json()["candidate"]
    assert decided["status"] == "approved" and decided["original_content"] == "the standup moved to 9:30"
    assert "+The daily standup is at 9:30." in decided["diff"] and "-the standup moved to 9:30" in decided["diff"]
    assert memory["content"] == "The daily standup is at 9:30." and memory["delivery"] == "delivered"

    def held() -> list[dict[str, Any]]:
        return [m for m in world.host_memories() if m.get("key") == memory["id"]]

    assert [m["content"] for m in held()] == ["The daily standup is at 9:30."]
    again = owner.post(f"/v1/memory/candidates/{candidate['id']}/approve", json={})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_decided"
    redelivered = owner.post(f"/v1/memories/{memory['id']}/deliver")
    assert redelivered.status_code == 200 and redelivered.json()["memory"]["delivery"] == "delivered"
    assert len(held()) == 1, "a retried delivery saves nothing new"

    # Reject with a reason; merge another into the memory; roll the merge back.
    rejected_one = _pending_from(world, "in", "lunch")
    refused = owner.post(f"/v1/memory/candidates/{rejected_one['id']}/reject", json={"reason": "  "})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "reason_required"
    rejected = owner.post(f"/v1/memory/candidates/{rejected_one['id']}/reject", json={"reason": "not useful"})
    assert rejected.status_code == 200 and rejected.json()["candidate"]["reason"] == "not useful"
    merging = _pending_from(world, "in", "standup-room")
    merged = owner.post(
        f"/v1/memory/candidates/{merging['id']}/merge",
        json={"memory_id": memory["id"], "content": "The daily standup is at 9:30 in room 4."},
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["memory"]["revision"] == 2 and merged.json()["candidate"]["status"] == "merged"
    assert [m["content"] for m in held()][-1] == "The daily standup is at 9:30 in room 4."
    rolled = owner.post(f"/v1/memories/{memory['id']}/rollback", json={"revision": 1})
    assert rolled.status_code == 200 and rolled.json()["memory"]["content"] == "The daily standup is at 9:30."
    detail = owner.get(f"/v1/memories/{memory['id']}").json()
    assert [r["action"] for r in detail["revisions"]] == ["created", "merged", "rolled_back"]
    assert detail["revisions"][1]["actor"]["id"] == world.server.owner["id"]
    assert [m["content"] for m in held()][-1] == "The daily standup is at 9:30."

    # Every decision is an event and an audit row.
    kinds = [e["event_type"] for e in events_after(world.server, start) if e["event_type"].startswith("memory.")]
    assert {"memory.candidate.created", "memory.saved", "memory.rejected"} <= set(kinds)
    audited = owner.get("/v1/audit", params={"action": "memory."}).json()["entries"]
    actions = {(row["action"], row["target"]["id"]) for row in audited}
    assert ("memory.candidate.approve", candidate["id"]) in actions
    assert ("memory.candidate.reject", rejected_one["id"]) in actions
    assert ("memory.candidate.merge", merging["id"]) in actions
    assert ("memory.rollback", memory["id"]) in actions
    assert all("standup" not in str(row["details"]) for row in audited), "audit rows keep ids, never content"


@pytest.mark.slow
def test_supersede_invalidates_and_delete_leaves_a_tombstone(world: World) -> None:
    owner = world.owner
    first = _pending_from(world, "in", "office-berlin")
    old = owner.post(f"/v1/memory/candidates/{first['id']}/approve", json={}).json()["memory"]
    second = _pending_from(world, "in", "office-lisbon")
    new = owner.post(f"/v1/memory/candidates/{second['id']}/approve", json={"supersedes": [old["id"]]})
    assert new.status_code == 200, new.text
    older = owner.get(f"/v1/memories/{old['id']}").json()["memory"]
    assert older["status"] == "invalid" and older["superseded_by"] == new.json()["memory"]["id"]
    assert older["valid_until"] and older["content"] == "the office-berlin plan is ready"
    with world.client(world.people["in"]) as ina:
        mine = ina.get("/v1/me/memory").json()["memories"]
        assert {m["id"] for m in mine} >= {old["id"], new.json()["memory"]["id"]}
        assert ina.delete(f"/v1/me/memories/{old['id']}").status_code == 204
        assert ina.delete(f"/v1/me/memories/{old['id']}").status_code == 404
    gone = owner.get(f"/v1/memories/{old['id']}").json()
    assert gone["memory"]["status"] == "deleted" and gone["memory"]["content"] == ""
    assert gone["memory"]["deleted_by"] == world.people["in"].id
    assert all(r["content"] == "" for r in gone["revisions"]), "no revision keeps the text"
    became = owner.get(f"/v1/memory/candidates/{first['id']}").json()["candidate"]
    assert became["content"] == "" and became["original_content"] is None, "nor the candidate it came from"
    assert owner.delete(f"/v1/memories/{old['id']}").status_code == 409
    with world.client(world.people["out"]) as otto:
        assert otto.delete(f"/v1/me/memories/{new.json()['memory']['id']}").status_code == 404


def test_bad_input_is_refused_and_changes_nothing(world: World) -> None:
    owner = world.owner
    channel = world.channels["review"]
    before = owner.get("/v1/memory/policies", params={"channel_id": channel}).json()
    for body in (
        {"ingestion": "sometimes"},
        {"retention": 30},
        {"retention_days": 0},
        {"retention_days": 5000},
        {"sources": ["gossip"]},
    ):
        answer = owner.put(f"/v1/memory/policies/channel/{channel}", json=body)
        assert answer.status_code == 400, (body, answer.text)
        assert set(answer.json()) == {"error"} and answer.json()["error"]["details"]
    assert owner.get("/v1/memory/policies", params={"channel_id": channel}).json() == before
    assert owner.put("/v1/memory/policies/planet/earth", json={}).status_code == 404

    candidate = _pending_from(world, "in", "empty-edit")
    emptied = owner.post(f"/v1/memory/candidates/{candidate['id']}/approve", json={"content": "   "})
    assert emptied.status_code == 400 and emptied.json()["error"]["code"] == "empty_content"
    still = owner.get(f"/v1/memory/candidates/{candidate['id']}").json()["candidate"]
    assert still["status"] == "pending" and still["content"] == candidate["content"]
    assert owner.post(f"/v1/memory/candidates/{candidate['id']}/ponder", json={}).status_code == 404
    approved = owner.post(f"/v1/memory/candidates/{candidate['id']}/approve", json={}).json()["memory"]
    emptied_memory = owner.patch(f"/v1/memories/{approved['id']}", json={"content": ""})
    assert emptied_memory.status_code == 400
    assert owner.get(f"/v1/memories/{approved['id']}").json()["memory"]["content"] == candidate["content"]
    decided = owner.post(f"/v1/memory/candidates/{candidate['id']}/reject", json={"reason": "late"})
    assert decided.status_code == 409
    assert owner.get(f"/v1/memory/candidates/{candidate['id']}").json()["candidate"]["status"] == "approved"
    assert owner.post(f"/v1/memories/{approved['id']}/rollback", json={"revision": 7}).status_code == 400


def test_people_without_memory_review_cannot_see_the_queue(world: World) -> None:
    with world.client(world.people["in"]) as ina:
        refused = ina.get("/v1/memory/candidates")
        assert refused.status_code == 403 and refused.json()["error"]["details"]["scope"] == "memory:review"
        assert ina.put(f"/v1/memory/policies/channel/{world.channels['review']}", json={}).status_code == 403
    sentinel(world)


def test_a_policy_level_inherits_what_it_does_not_set(world: World) -> None:
    owner = world.owner
    org_id = owner.get("/v1/me").json()["org_id"]
    channel = make_channel(owner, "inherit", sources=["message"])
    assert owner.put(f"/v1/memory/policies/org/{org_id}", json={"retention_days": 400}).status_code == 200
    shown = owner.get("/v1/memory/policies", params={"channel_id": channel}).json()
    assert shown["effective"]["retention_days"] == 400 and shown["origin"]["retention_days"] == "org"
    assert shown["effective"]["sources"] == ["message"] and shown["origin"]["sources"] == "channel"
    assert shown["effective"]["ingestion"] == "review" and shown["origin"]["ingestion"] == "default"
    assert owner.put(f"/v1/memory/policies/org/{org_id}", json={}).status_code == 200


@pytest.mark.slow
def test_near_duplicate_candidates_are_grouped(world: World) -> None:
    owner = world.owner
    said = []
    with world.client(world.people["in"]) as ina:
        for text in (
            "the release train leaves every second Tuesday",
            "the release train departs every other Tuesday",
            "Ina's cat is called Pixel",
        ):
            posted = ina.post(
                f"/v1/channels/{world.channels['review']}/messages", json={"text": f"@spacebot remember that {text}"}
            )
            assert "Queued for review" in agent_reply(ina, posted.json()["thread"]["id"])
            said.append(text)
    found = {c["content"]: c for c in candidates(owner) if c["content"] in said}
    first, second, other = (found[text] for text in said)
    assert first["group_id"] is not None and first["group_id"] == second["group_id"]
    assert other["group_id"] != first["group_id"]
    listed = owner.get("/v1/memory/candidates", params={"limit": 200}).json()
    assert listed["groups"][first["group_id"]] == 2
    detail = owner.get(f"/v1/memory/candidates/{second['id']}").json()
    assert set(detail["group"]) == {first["id"], second["id"]}
