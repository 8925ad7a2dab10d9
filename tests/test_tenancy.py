"""Agents belong to an organisation (issue 10): from another organisation they do not exist, in
REST, health and metrics, operations and delivery; instance-wide acts need the instance role."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

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


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Person]]:
    """Globex's agent on the provider our spacebot uses: one provider, two organisations."""
    server, globex = two_org_server(tmp_path_factory.mktemp("shared") / "data", globex_provider="scripted")
    yield server, globex
    server.stop()


def test_a_provider_two_organisations_share_is_the_instance_operators(shared: tuple[Server, Person]) -> None:
    server, globex = shared
    probe = {"reason": "provider flapping"}
    with httpx.Client(base_url=server.url, headers=globex.auth, timeout=30) as them:
        # Their owner may reconnect what is theirs alone, not what also carries our agent.
        assert them.get("/v1/agents/globex-bot/status").json()["agent"]["provider"] == "scripted"
        refused = them.post("/v1/ops/providers/scripted/reconnect", json=probe)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["details"]["scope"] == "instance:operate"
    with server.sync_client() as client:
        # Our first owner holds the instance role: the reconnect runs, and is audited.
        assert client.post("/v1/ops/providers/scripted/reconnect", json=probe).json()["outcome"] == "ok"
        audited = client.get("/v1/audit", params={"action": "ops."}).json()["entries"]
        assert any(e["target"]["id"] == "scripted" for e in audited), audited


def scrape(server: Server, headers: dict[str, str]) -> dict[str, Any]:
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def messages_by_org(families: dict[str, Any]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for sample in families["spacechat_messages"].samples:
        totals[sample.labels["org"]] = totals.get(sample.labels["org"], 0) + sample.value
    return totals


def stored_messages(server: Server) -> dict[str, int]:
    return {org: count for org, count in server.query("SELECT org_id, COUNT(*) FROM messages GROUP BY org_id")}


def post_in_a_quiet_channel(client: httpx.Client, name: str, count: int) -> None:
    """`count` messages in a new channel no agent is bound to (so no reply adds to them)."""
    channel = client.post("/v1/channels", json={"name": name}).json()["channel"]
    for n in range(count):
        posted = client.post(f"/v1/channels/{channel['id']}/messages", json={"text": f"note {n}"})
        assert posted.status_code == 201, posted.text


def test_metrics_totals_are_the_callers_organisation_or_labelled_by_organisation(
    shared: tuple[Server, Person],
) -> None:
    server, globex = shared
    with server.sync_client() as ours, httpx.Client(base_url=server.url, headers=globex.auth, timeout=30) as them:
        post_in_a_quiet_channel(ours, "quiet-ours", 5)
        post_in_a_quiet_channel(them, "quiet-theirs", 2)
        token = ours.post("/v1/tokens", json={"name": "prometheus", "scopes": ["diagnostics:read", "instance:read"]})
        assert token.status_code == 201, token.text
        ours_id, theirs_id = ours.get("/v1/me").json()["org_id"], them.get("/v1/me").json()["org_id"]
    stored = stored_messages(server)
    assert stored[ours_id] > stored[theirs_id] >= 2

    # Globex's owner: Globex's messages only, however many more we post.
    theirs = scrape(server, globex.auth)
    assert messages_by_org(theirs) == {theirs_id: stored[theirs_id]}
    assert [s.labels for s in theirs["spacechat_org_info"].samples] == [{"org": theirs_id, "name": "Globex"}]
    # The instance's scraper (instance:read): every organisation's, each labelled with it.
    instance = scrape(server, {"Authorization": f"Bearer {token.json()['secret']}"})
    assert messages_by_org(instance) == stored
    assert {s.labels["org"]: s.labels["name"] for s in instance["spacechat_org_info"].samples}[theirs_id] == "Globex"
    agents = {s.labels["agent"]: s.labels["org"] for s in instance["spacechat_agent_queue_depth"].samples}
    assert agents == {"spacebot": ours_id, "globex-bot": theirs_id}
