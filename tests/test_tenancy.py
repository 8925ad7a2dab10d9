"""Agents belong to an organisation (issue 10): from another organisation they do not exist, in
REST, health and metrics, operations and delivery; instance-wide acts need the instance role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .support import Person, Server, two_org_server, wait_until


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Person]]:
    # spacebot streams slowly, so its reply is in flight while the other organisation probes.
    server, globex = two_org_server(
        tmp_path_factory.mktemp("tenancy") / "data", providers__scripted={"chars_per_second": 60}
    )
    yield server, globex
    server.stop()


def streaming_reply(server: Server) -> tuple[str, dict[str, Any]]:
    """Ask spacebot something long; return the thread once its reply is streaming."""
    with server.sync_client() as client:
        spacebot = server.channel_id("spacebot")
        asked = client.post(f"/v1/channels/{spacebot}/messages", json={"text": "tell me about yourself"}).json()
        thread_id = asked["thread"]["id"]

        def streaming() -> dict[str, Any] | None:
            history = client.get(f"/v1/threads/{thread_id}/history").json()["messages"]
            agent = [m for m in history if m["author"]["kind"] == "agent" and m["state"] == "streaming"]
            return agent[0] if agent else None

        return thread_id, wait_until(streaming, timeout=20)


def final_reply(server: Server, thread_id: str) -> dict[str, Any]:
    with server.sync_client() as client:

        def ended() -> dict[str, Any] | None:
            history = client.get(f"/v1/threads/{thread_id}/history").json()["messages"]
            agent = [m for m in history if m["author"]["kind"] == "agent" and m["state"] != "streaming"]
            return agent[0] if agent else None

        return dict(wait_until(ended, timeout=60))


def own_ids(server: Server) -> set[str]:
    """The first organisation's channel ids and its agent's id: none may show to Globex."""
    with server.sync_client() as client:
        channels = {c["id"] for c in client.get("/v1/channels").json()["channels"]}
    return channels | {"spacebot"}


def test_another_organisation_cannot_stop_or_see_our_agent(world: tuple[Server, Person]) -> None:
    server, globex = world
    thread_id, streaming = streaming_reply(server)
    with httpx.Client(base_url=server.url, headers=globex.auth, timeout=30) as them:
        reason = {"reason": "probing"}
        assert them.post("/v1/ops/agents/spacebot/restart", json=reason).status_code == 404
        recover = them.post("/v1/ops/instance/recover", json=reason)
        assert recover.status_code == 403 and recover.json()["error"]["details"]["scope"] == "instance:operate"
        assert them.post("/v1/ops/providers/scripted/reconnect", json=reason).status_code == 404
        assert them.get("/v1/agents/spacebot/status").status_code == 404
        assert [a["id"] for a in them.get("/v1/agents").json()["agents"]] == ["globex-bot"]
        # Their own agent and provider are theirs to run.
        assert them.get("/v1/agents/globex-bot/status").status_code == 200
        assert them.post("/v1/ops/agents/globex-bot/restart", json=reason).json()["outcome"] == "ok"
        assert them.post("/v1/ops/providers/scripted-b/reconnect", json=reason).json()["outcome"] == "ok"

        health = them.get("/v1/system/health")
        assert health.status_code == 200
        text = health.text
        assert not any(found in text for found in own_ids(server) | {streaming["id"]}), "Globex sees our agent"
        assert "store" not in health.json() and "realtime" not in health.json(), "instance-wide figures"
        assert [a["id"] for a in health.json()["host"]["agents"]] == ["globex-bot"]
        assert "provider:scripted" not in text.replace("provider:scripted-b", "")

        metrics = them.get("/metrics").text
        assert 'agent="spacebot"' not in metrics
        assert "spacechat_event_log_seq" not in metrics and "spacechat_realtime_subscribers" not in metrics
    # Our reply was never touched.
    assert final_reply(server, thread_id)["state"] == "completed"

    # The instance's operator (the first owner) sees the whole instance.
    with server.sync_client() as client:
        health = client.get("/v1/system/health").json()
        assert {a["id"] for a in health["host"]["agents"]} == {"spacebot", "globex-bot"}
        assert health["store"]["last_seq"] > 0
        metrics = client.get("/metrics").text
        assert "spacechat_event_log_seq" in metrics and 'agent="globex-bot"' in metrics


def test_a_shared_provider_needs_the_instance_role(world: tuple[Server, Person]) -> None:
    server, globex = world
    # globex-bot's provider is Globex's alone, spacebot's ours: each exists only for its own
    # organisation, even for the instance's operator; one no agent uses (the bridge's link) is the
    # instance's, for its operators only.
    probe = {"reason": "probing"}
    with server.sync_client() as client:
        assert client.post("/v1/ops/providers/scripted-b/reconnect", json=probe).status_code == 404
        assert client.post("/v1/ops/providers/scripted/reconnect", json=probe).json()["outcome"] == "ok"
        assert client.post("/v1/ops/providers/nowhere/reconnect", json=probe).json()["outcome"] == "failed"
    with httpx.Client(base_url=server.url, headers=globex.auth) as them:
        assert them.post("/v1/ops/providers/nowhere/reconnect", json=probe).status_code == 404


def test_agents_hear_only_their_own_organisation(world: tuple[Server, Person]) -> None:
    server, globex = world
    with httpx.Client(base_url=server.url, headers=globex.auth, timeout=30) as them:

        def answered_by(thread_id: str) -> set[str]:
            """Who answered in a thread, once globex-bot has: our agent's reply would have started
            (and shown) by then, since both turn on the same messages."""

            def done() -> list[dict[str, Any]] | None:
                history = them.get(f"/v1/threads/{thread_id}/history").json()["messages"]
                agents = [m for m in history if m["author"]["kind"] == "agent"]
                return (
                    agents
                    if any(m["author"]["id"] == "globex-bot" and m["state"] == "completed" for m in agents)
                    else None
                )

            return {m["author"]["id"] for m in wait_until(done, timeout=30)}

        # A channel named like our agent's binding: our agent does not hear it.
        lookalike = them.post("/v1/channels", json={"name": "spacebot"}).json()["channel"]
        posted = them.post(f"/v1/channels/{lookalike['id']}/messages", json={"text": "hello spacebot"}).json()
        thread_id = posted["thread"]["id"]
        them.post(f"/v1/threads/{thread_id}/messages", json={"text": "@globex-bot are you there?"})
        assert answered_by(thread_id) == {"globex-bot"}
        # A mention of our agent by its id, in their #general: only their own agent answers.
        general = next(c for c in them.get("/v1/channels").json()["channels"] if c["name"] == "general")
        mention = them.post(f"/v1/channels/{general['id']}/messages", json={"text": "@spacebot what time is it?"})
        assert answered_by(mention.json()["thread"]["id"]) == {"globex-bot"}
        assert "spacebot" not in json.dumps(them.get(f"/v1/channels/{lookalike['id']}/metrics").json())
