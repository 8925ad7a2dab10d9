"""The bridge host against a local stand-in for Spacebot's HTTP API: the same hooks at the same
moments as the embedded host, link health, usage, tasks and the HostAPI."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spacechat_plugin.config import load_settings
from spacechat_plugin.host.bridge.conversations import Conversation
from spacechat_plugin.host.bridge.host import BridgeHost
from spacechat_plugin.host.server import plugin_manager
from spacechat_plugin.host.sse import SSEParser

from .fake_spacebot import REPLY, THINKING, TOOL_RESULT, FakeSpacebot
from .hookrecorder import Recorder
from .support import Server, toml_config

TOKEN = "sb-bridge-secret-7c21"
CHANNEL = {"id": "ch_test", "name": "spacebot", "org_id": "org_test"}
SESSION = "portal:chat:spacebot:ch_test:th_1"
AGENTS = [
    {"id": "spacebot", "name": "Spacebot", "provider": "scripted", "channels": ["spacebot"]},
    {"id": "helper", "name": "Helper", "provider": "scripted", "channels": []},
]

Bridged = tuple[BridgeHost, Recorder, FakeSpacebot]


def make_host(
    tmp_path: Path, url: str, token: str = TOKEN, turn_timeout: float = 600
) -> tuple[BridgeHost, Recorder, dict[str, Any]]:
    raw = {
        "enabled": True,
        "data_dir": str(tmp_path),
        "runtime": {"mode": "bridge"},
        "bridge": {
            "url": url,
            "token": token,
            "poll_seconds": 0.2,
            "reconnect_max_seconds": 0.5,
            "turn_timeout_seconds": turn_timeout,
        },
        "agents": AGENTS,
    }
    recorder = Recorder()
    pm = plugin_manager()
    for name, plugin in list(pm.list_name_plugin()):
        pm.unregister(plugin, name)  # only the recorder: this tests the host, not the plugin
    pm.register(recorder)
    return BridgeHost(load_settings(environ={}, overrides=raw), pm, raw), recorder, raw


@pytest.fixture
async def fake() -> AsyncIterator[FakeSpacebot]:
    server = await FakeSpacebot(TOKEN, ping_seconds=0.1).start()
    yield server
    await server.stop()


@pytest.fixture
async def bridged(tmp_path: Path, fake: FakeSpacebot) -> AsyncIterator[Bridged]:
    host, recorder, _ = make_host(tmp_path, fake.url)
    await host.start()
    await recorder.wait_for("spacebot_connector_status")
    yield host, recorder, fake
    await host.stop()


def compress(names: list[str]) -> list[str]:
    return [name.removeprefix("spacebot_") for name, _ in itertools.groupby(names)]


def turn_hooks(recorder: Recorder) -> list[str]:
    """The hooks of conversations, leaving out the link's own (status, health, usage)."""
    link = {"spacebot_connector_status", "spacebot_health_changed", "spacebot_llm_usage"}
    return [name for name in recorder.names() if name not in link]


async def say(host: BridgeHost, text: str, *, thread: str = "th_1", message_id: str = "msg_1") -> list[str]:
    message = {"id": message_id, "text": text, "author": {"kind": "user", "id": "usr_1", "name": "Ada"}}
    return await host.deliver_message(channel=CHANNEL, thread_id=thread, message=message, mentions=[])


async def until(predicate: Any, timeout: float = 5) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def handled(fake: FakeSpacebot, recorder: Recorder) -> None:
    """Until the bridge has handled every event the fake sent so far: it handles its stream in
    order, so once a marker sent last has reached the hooks, so has everything before it. The
    marker is a worker starting in a conversation of its own (thread `th_marker`), leaving the
    tested one's state alone."""
    seen = len(recorder.of("spacebot_worker_started"))
    fake.emit(
        "worker_started",
        agent_id="spacebot",
        channel_id="portal:chat:spacebot:ch_test:th_marker",
        worker_id=f"marker-{seen}",
        task="marker",
        worker_type="builtin",
        interactive=False,
    )
    await recorder.wait_for("spacebot_worker_started", count=seen + 1)


# -- pieces ---------------------------------------------------------------------------------


def test_conversation_ids_map_both_ways() -> None:
    conversation = Conversation("spacebot", "ch_test", "th_1")
    assert conversation.session_id == SESSION
    assert Conversation.parse(SESSION) == conversation
    assert Conversation.parse("portal:chat:team:ops:ch_1:th_2") == Conversation("team:ops", "ch_1", "th_2")
    for foreign in ("discord:123:456", "portal:chat:spacebot:8f14e45f", "portal:chat::ch_1:th_1", "slack:T1:C1:1.2"):
        assert Conversation.parse(foreign) is None


def test_sse_parser_follows_the_field_rules() -> None:
    parser = SSEParser()
    assert parser.feed(b': ping\n\nevent: typing_state\r\ndata: {"a":') == []
    assert parser.feed(b" 1}\n\ndata: one\ndata: two\n\n") == [("typing_state", '{"a": 1}'), ("message", "one\ntwo")]


# -- a turn ---------------------------------------------------------------------------------


async def test_hook_startup_connects_and_shutdown(tmp_path: Path, fake: FakeSpacebot) -> None:
    host, recorder, raw = make_host(tmp_path, fake.url)
    await host.start()
    assert recorder.of("spacebot_startup") == [{"host": host, "config": raw}]
    status = (await recorder.wait_for("spacebot_connector_status"))[0]
    assert status == {"connector": "spacebot", "status": "connected", "detail": None}
    assert host.routes() == [] and recorder.names()[-1] == "spacebot_register_routes"
    assert host.name == "bridge" and [a["id"] for a in host.agents()] == ["spacebot", "helper"]
    assert host.agents()[0]["health"] == "ok"
    await host.stop()
    assert recorder.of("spacebot_connector_status")[-1]["status"] == "disconnected"
    assert recorder.names()[-1] == "spacebot_shutdown"


async def test_hook_order_of_a_turn(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    assert await say(host, "what day is it?") == ["spacebot"]
    await recorder.wait_for("spacebot_turn_completed")
    await until(lambda: not fake.playing)
    assert compress(turn_hooks(recorder)) == [
        "startup",
        "inbound_message",
        "turn_started",
        "reasoning_delta",
        "worker_started",
        "worker_status",
        "tool_started",
        "tool_output",
        "tool_completed",
        "process_text",
        "worker_completed",
        "branch_started",
        "branch_completed",
        "text_delta",
        "turn_completed",
    ]
    inbound = recorder.of("spacebot_inbound_message")[0]
    assert inbound["sender"] == {"kind": "user", "id": "usr_1", "name": "Ada"} and inbound["message_id"] == "msg_1"
    started = recorder.of("spacebot_turn_started")[0]
    assert started["message_ids"] == ["msg_1"]
    assert (started["channel_id"], started["thread_id"]) == ("ch_test", "th_1")
    assert (started["model"], started["provider"]) == ("spacebot", "spacebot")
    deltas = recorder.of("spacebot_text_delta")
    completed = recorder.of("spacebot_turn_completed")[0]
    assert len(deltas) > 3
    assert "".join(d["delta"] for d in deltas) == completed["text"] == deltas[-1]["aggregated_text"] == REPLY
    assert completed["turn_id"] == started["turn_id"] and completed["blocks"] is None
    assert completed["ttft_ms"] is not None and completed["duration_ms"] >= completed["ttft_ms"]
    worker = recorder.of("spacebot_worker_started")[0]
    assert worker["thread_id"] == "th_1" and worker["task"] == "look up the date" and worker["interactive"] is False
    assert recorder.of("spacebot_worker_status")[0]["state"] == "running"
    tool_started, tool_done = recorder.of("spacebot_tool_started")[0], recorder.of("spacebot_tool_completed")[0]
    assert tool_started["arguments"] == {"command": "date -u"} and tool_started["worker_id"] == worker["worker_id"]
    assert tool_done["call_id"] == tool_started["call_id"] and tool_done["result"] == TOOL_RESULT
    assert tool_done["turn_id"] == started["turn_id"] and tool_done["duration_ms"] >= 0
    finished = recorder.of("spacebot_worker_completed")[0]
    assert (finished["outcome"], finished["success"]) == ("succeeded", True)
    assert recorder.of("spacebot_branch_completed")[0]["conclusion"] == "Greet, then give the day."
    assert not recorder.of("spacebot_outbound_message"), "the reply ends the turn, it is not a second message"
    # Spacebot's reasoning_delta carries `reasoning_delta` / `aggregated_reasoning`: all of it arrives
    assert "".join(r["delta"] for r in recorder.of("spacebot_reasoning_delta")) == THINKING
    # the channel's routing tools (spawn_worker, branch, reply) are not tool runs; the echo is no message
    assert [t["tool"] for t in recorder.of("spacebot_tool_started")] == ["shell"]
    assert len(recorder.of("spacebot_inbound_message")) == 1
    assert recorder.of("spacebot_tool_output")[0]["line"] == TOOL_RESULT
    text = recorder.of("spacebot_process_text")[0]
    assert (text["process_type"], text["text"], text["thread_id"]) == ("worker", "Ran date.", "th_1")
    # what Spacebot received
    assert fake.sent == [
        {
            "agent_id": "spacebot",
            "session_id": SESSION,
            "sender_name": "Ada",
            "message": "what day is it?",
            "attachment_ids": [],
        }
    ]
    assert fake.send_auth == [f"Bearer {TOKEN}"]


async def test_deliver_message_goes_to_bound_and_mentioned_agents(bridged: Bridged) -> None:
    host, _, fake = bridged
    fake.replying = False
    general = {"id": "ch_gen", "name": "general", "org_id": "org_test"}
    message = {"id": "msg_9", "text": "@helper hi", "author": {"kind": "user", "id": "usr_1"}}
    assert await host.deliver_message(channel=general, thread_id="th_9", message=message, mentions=["helper"]) == [
        "helper"
    ]
    assert [s["session_id"] for s in fake.sent] == ["portal:chat:helper:ch_gen:th_9"]
    assert fake.sent[0]["sender_name"] == "usr_1"  # no display name on the message: its author id
    own = {"id": "msg_10", "text": "note", "author": {"kind": "agent", "id": "helper"}}
    assert await host.deliver_message(channel=general, thread_id="th_9", message=own, mentions=["helper"]) == []


async def test_typing_off_completes_a_streamed_turn_without_a_reply(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    await say(host, "hi")
    fake.emit(
        "outbound_message_delta", agent_id="spacebot", channel_id=SESSION, text_delta="Hel", aggregated_text="Hel"
    )
    fake.emit(
        "outbound_message_delta", agent_id="spacebot", channel_id=SESSION, text_delta="lo", aggregated_text="Hello"
    )
    fake.emit("typing_state", agent_id="spacebot", channel_id=SESSION, is_typing=False)
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert completed["text"] == "Hello"
    assert [d["delta"] for d in recorder.of("spacebot_text_delta")] == ["Hel", "lo"]
    assert recorder.of("spacebot_turn_started")[0]["message_ids"] == ["msg_1"], "a delta opens the turn"


async def test_reasoning_tool_failure_idle_and_cancelled_worker(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    await say(host, "hi")
    where = {"agent_id": "spacebot", "channel_id": SESSION}
    fake.emit("typing_state", **where, is_typing=True)
    fake.emit("reasoning_delta", **where, reasoning_delta="thinking...", aggregated_reasoning="thinking...")
    fake.emit("worker_started", **where, worker_id="w1", task="edit", worker_type="opencode", interactive=True)
    # workers outlive their channel's events: these name no channel and are known by their worker
    fake.emit("worker_idle", agent_id="spacebot", channel_id=None, worker_id="w1")
    tool = {"process_type": "worker", "process_id": "w1", "call_id": "c1", "tool_name": "file"}
    fake.emit("tool_started", agent_id="spacebot", channel_id=None, **tool, args='{"path": "a.txt", "content": "tr')
    fake.emit("tool_completed", agent_id="spacebot", channel_id=None, **tool, result="Toolset error: permission denied")
    fake.emit(
        "worker_completed",
        agent_id="spacebot",
        channel_id=None,
        worker_id="w1",
        result="Worker cancelled: stop",
        success=False,
    )
    fake.emit("outbound_message", **where, text="Stopped.")
    await recorder.wait_for("spacebot_turn_completed")
    assert recorder.of("spacebot_reasoning_delta")[0]["delta"] == "thinking..."
    assert recorder.of("spacebot_worker_idle") == [{"agent_id": "spacebot", "worker_id": "w1"}]
    started_worker = recorder.of("spacebot_worker_started")[0]
    assert (started_worker["worker_type"], started_worker["interactive"]) == ("opencode", True)
    started, failed = recorder.of("spacebot_tool_started")[0], recorder.of("spacebot_tool_failed")[0]
    assert started["arguments"] == {"raw": '{"path": "a.txt", "content": "tr'}
    assert failed["call_id"] == started["call_id"] == "c1" and failed["error"] == "Toolset error: permission denied"
    assert failed["worker_id"] == "w1" and failed["thread_id"] == "th_1"
    assert not recorder.of("spacebot_tool_completed")
    worker = recorder.of("spacebot_worker_completed")[0]
    assert (worker["outcome"], worker["success"]) == ("cancelled", False)
    text = recorder.of("spacebot_turn_completed")[0]["text"]
    assert text == "Stopped." == "".join(d["delta"] for d in recorder.of("spacebot_text_delta"))


async def test_outbound_message_outside_a_turn(bridged: Bridged) -> None:
    _, recorder, fake = bridged
    fake.emit("outbound_message", agent_id="spacebot", channel_id=SESSION, text="The deploy finished.")
    posted = (await recorder.wait_for("spacebot_outbound_message"))[0]
    assert posted == {
        "agent_id": "spacebot",
        "channel_id": "ch_test",
        "thread_id": "th_1",
        "text": "The deploy finished.",
        "blocks": None,
    }
    assert not recorder.of("spacebot_turn_started")


async def test_unknown_conversations_are_ignored(bridged: Bridged) -> None:
    _, recorder, fake = bridged
    for channel_id, agent_id in [
        ("discord:123:456", "spacebot"),
        ("portal:chat:spacebot:8f14e45f-uuid", "spacebot"),
        ("portal:chat:stranger:ch_test:th_1", "stranger"),
    ]:
        where = {"agent_id": agent_id, "channel_id": channel_id}
        fake.emit("typing_state", **where, is_typing=True)
        fake.emit("outbound_message_delta", **where, text_delta="x", aggregated_text="x")
        fake.emit("worker_started", **where, worker_id="w9", task="t", worker_type="builtin", interactive=False)
        fake.emit("outbound_message", **where, text="not for us")
    fake.emit("worker_completed", agent_id="spacebot", channel_id=None, worker_id="w9", result="done", success=True)
    fake.emit("notification_created", notification={"id": "n1", "kind": "task_approval"})
    fake.emit("config_reloaded")
    fake.emit("outbound_message", agent_id="spacebot", channel_id=SESSION, text="sentinel")
    await recorder.wait_for("spacebot_outbound_message")
    assert turn_hooks(recorder) == ["spacebot_startup", "spacebot_outbound_message"]
    assert recorder.of("spacebot_outbound_message")[0]["text"] == "sentinel"


# -- tasks, link health and usage -----------------------------------------------------------


async def test_hook_connector_status_follows_the_stream(bridged: Bridged) -> None:
    _, recorder, fake = bridged
    fake.drop_streams()
    await recorder.wait_for("spacebot_connector_status", count=3)
    statuses = recorder.of("spacebot_connector_status")
    assert [s["status"] for s in statuses] == ["connected", "disconnected", "connected"]
    assert statuses[1]["detail"] == "Spacebot ended the event stream"
    assert fake.connections == 2


async def test_wrong_token_is_a_connector_error_and_never_shown(
    tmp_path: Path, fake: FakeSpacebot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "sb-wrong-token-0d4e"
    host, recorder, _ = make_host(tmp_path, fake.url, token=wrong)
    await host.start()
    try:
        status = (await recorder.wait_for("spacebot_connector_status"))[0]
        assert status == {
            "connector": "spacebot",
            "status": "error",
            "detail": "Spacebot refused the bridge's token (HTTP 401)",
        }
        assert await say(host, "hi") == ["spacebot"]
        failed = (await recorder.wait_for("spacebot_turn_failed"))[0]
        assert failed["error"] == "Spacebot refused the message (HTTP 401)" and failed["retryable"] is True
    finally:
        await host.stop()
    # spacebot_startup's `config` is the whole [config] table, secrets and all, for every host
    calls = [call for call in recorder.calls if call[0] != "spacebot_startup"]
    everything = caplog.text + repr(calls) + repr(host.settings) + repr(host.agents())
    assert wrong not in everything and TOKEN not in everything


async def test_hook_health_changed_when_spacebot_is_down(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.healthy = False
    down = (await recorder.wait_for("spacebot_health_changed"))[0]
    assert down == {"component": "connector:spacebot", "status": "down", "detail": "/api/health answered HTTP 503"}
    assert host.agents()[0]["health"] == "down"
    fake.healthy = True
    up = (await recorder.wait_for("spacebot_health_changed", count=2))[1]
    assert up == {"component": "connector:spacebot", "status": "ok", "detail": None}


async def test_hook_llm_usage_from_usage_increases(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    row = {
        "model": "anthropic/claude-sonnet-4",
        "input_tokens": 1200,
        "output_tokens": 80,
        "cache_read_tokens": 300,
        "cache_write_tokens": 0,
        "reasoning_tokens": 5,
        "request_count": 2,
        "estimated_cost_usd": 0.0125,
    }
    fake.usage["spacebot"] = [row]
    first = (await recorder.wait_for("spacebot_llm_usage"))[0]
    assert first == {
        "agent_id": "spacebot",
        "channel_id": None,
        "thread_id": None,
        "turn_id": None,
        "process_type": "channel",
        "model": "anthropic/claude-sonnet-4",
        "provider": "anthropic",
        "input_tokens": 1200,
        "output_tokens": 80,
        "cache_read_tokens": 300,
        "cache_write_tokens": 0,
        "reasoning_tokens": 5,
        "cost_usd": 0.0125,
    }
    fake.usage["spacebot"] = [{**row, "input_tokens": 1500, "output_tokens": 100, "estimated_cost_usd": 0.02}]
    second = (await recorder.wait_for("spacebot_llm_usage", count=2))[1]
    assert (second["input_tokens"], second["output_tokens"], second["cache_read_tokens"]) == (300, 20, 0)
    assert second["cost_usd"] == pytest.approx(0.0075)
    asked = len(fake.usage_requests)
    await until(lambda: len(fake.usage_requests) >= asked + 4)  # two more rounds, each agent asked in each
    assert len(recorder.of("spacebot_llm_usage")) == 2, "unchanged counters are not reported again"
    query = fake.usage_requests[-1]
    assert query["group_by"] == "agent,model" and query["since"] == host.started_at
    assert {q["agent_id"] for q in fake.usage_requests} == {"spacebot", "helper"}


async def test_unpriced_usage_has_no_cost_and_a_missing_route_stops_polling(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.cost_status = "unknown"
    fake.usage["helper"] = [{"model": "local-7b", "input_tokens": 10, "output_tokens": 2, "request_count": 1}]
    usage = (await recorder.wait_for("spacebot_llm_usage"))[0]
    assert (usage["agent_id"], usage["provider"], usage["cost_usd"]) == ("helper", "spacebot", None)
    fake.usage_status = 404
    await until(lambda: not host.usage_enabled)
    asked, rounds = len(fake.usage_requests), fake.health_checks
    await until(lambda: fake.health_checks >= rounds + 2)  # a whole poll round after the 404, and the next begun
    assert len(fake.usage_requests) == asked


# -- the HostAPI ----------------------------------------------------------------------------


async def test_retry_turn_sends_the_last_message_again(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    await say(host, "what day is it?")
    first = (await recorder.wait_for("spacebot_turn_completed"))[0]
    retried = await host.retry_turn(channel_id="ch_test")
    assert retried["agent_id"] == "spacebot" and retried["thread_id"] == "th_1"
    assert retried["retried_turn_id"] == first["turn_id"] and retried["message_ids"] == ["msg_1"]
    assert len(fake.sent) == 2 and fake.sent[1] == fake.sent[0]
    await recorder.wait_for("spacebot_turn_completed", count=2)
    again = recorder.of("spacebot_turn_started")[1]
    assert again["turn_id"] == retried["turn_id"] and again["message_ids"] == ["msg_1"]
    with pytest.raises(LookupError):
        await host.retry_turn(channel_id="ch_test", thread_id="th_nope")


async def test_restart_worker_cancels_the_channel_workers(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    await say(host, "build it")
    where = {"agent_id": "spacebot", "channel_id": SESSION}
    fake.emit("typing_state", **where, is_typing=True)
    fake.emit("worker_started", **where, worker_id="w-long", task="build", worker_type="builtin", interactive=False)
    await recorder.wait_for("spacebot_worker_started")
    summary = await host.restart_worker(channel_id="ch_test")
    assert summary == {"channel_id": "ch_test", "agents": ["spacebot"], "workers_cancelled": ["w-long"]}
    assert fake.cancels == [{"channel_id": SESSION, "process_type": "worker", "process_id": "w-long"}]
    failed = (await recorder.wait_for("spacebot_turn_failed"))[0]
    assert failed["error"] == "the turn was cancelled"
    worker = (await recorder.wait_for("spacebot_worker_completed"))[0]
    assert worker["outcome"] == "cancelled"
    with pytest.raises(LookupError):
        await host.restart_worker(channel_id="ch_nope")


async def test_reconnect_recover_memory_and_interactions(bridged: Bridged) -> None:
    host, _, fake = bridged
    assert await host.reconnect_provider(name="spacebot") == {"provider": "spacebot", "status": "connected"}
    await until(lambda: fake.connections == 2)
    with pytest.raises(LookupError):
        await host.reconnect_provider(name="openai")
    fake.replying = False
    await say(host, "hi")
    summary = await host.recover_instance()
    assert summary == {
        "channels_restarted": 1,
        "workers_cancelled": 0,
        "providers_reconnected": ["spacebot"],
        "link": "connected",
    }
    with pytest.raises(RuntimeError, match="cannot save memories yet"):
        await host.save_memory(agent_id="spacebot", memory={"content": "x"})
    with pytest.raises(LookupError):
        await host.save_memory(agent_id="nobody", memory={"content": "x"})
    interaction = {
        "channel_id": "ch_test",
        "thread_id": "th_1",
        "message_id": "msg_card",
        "action_id": "approve",
        "values": ["yes"],
        "label": "Approve",
        "user_name": "Ada",
    }
    await host.deliver_interaction(agent_id="spacebot", interaction=interaction)
    sent = fake.sent[-1]
    assert sent["session_id"] == SESSION and sent["sender_name"] == "Ada"
    # an interaction that is no ask-tool answer: the form Spacebot shows one it cannot match (src/lib.rs)
    assert sent["message"] == "[interaction: approve → yes]"
    with pytest.raises(LookupError):
        await host.deliver_interaction(agent_id="nobody", interaction=interaction)


# -- end to end -----------------------------------------------------------------------------


async def test_serve_in_bridge_mode_streams_the_reply_into_the_thread(tmp_path: Path, fake: FakeSpacebot) -> None:
    config = toml_config(runtime={"mode": "bridge"}, bridge={"url": fake.url, "token": TOKEN})
    server = Server(tmp_path / "data", config)
    await asyncio.to_thread(server.start)
    try:
        async with server.client() as client:
            channels = (await client.get("/v1/channels")).json()["channels"]
            spacebot = next(c["id"] for c in channels if c["name"] == "spacebot")
            agents = (await client.get("/v1/agents")).json()
            assert agents["host"] == "bridge"
            posted = await client.post(f"/v1/channels/{spacebot}/messages", json={"text": "what day is it?"})
            assert posted.status_code == 201, posted.text
            thread_id, message_id = posted.json()["thread"]["id"], posted.json()["message"]["id"]
            async with asyncio.timeout(15):
                while True:
                    history = (await client.get(f"/v1/threads/{thread_id}/history")).json()["messages"]
                    replies = [m for m in history if m["author"]["kind"] == "agent" and m["state"] == "completed"]
                    if replies:
                        break
                    await asyncio.sleep(0.05)
        reply = replies[0]
        assert reply["text"] == REPLY and reply["thread_id"] == thread_id
        assert reply["author"]["id"] == "spacebot" and reply["metadata"]["in_reply_to"] == [message_id]
        assert fake.sent[0]["session_id"] == f"portal:chat:spacebot:{spacebot}:{thread_id}"
        assert fake.send_auth == [f"Bearer {TOKEN}"]
    finally:
        await asyncio.to_thread(server.stop)
    assert TOKEN not in "".join(server.output)


async def test_the_bridge_stops_through_spacebots_cancel_route(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    await say(host, "build and explain")
    where = {"agent_id": "spacebot", "channel_id": SESSION}
    fake.emit("typing_state", **where, is_typing=True)
    fake.emit("worker_started", **where, worker_id="w-1", task="build", worker_type="builtin", interactive=False)
    fake.emit("branch_started", **where, branch_id="b-1", description="think")
    fake.emit("outbound_message_delta", **where, text_delta="Half of ", aggregated_text="Half of ")
    await recorder.wait_for("spacebot_text_delta")
    await recorder.wait_for("spacebot_branch_started")
    turn = recorder.of("spacebot_turn_started")[0]["turn_id"]
    result = await host.stop_turn(turn_id=turn, agent_id="spacebot", channel_id="ch_test", thread_id="th_1")
    assert result["stopped"] is True and sorted(result["cancelled"]) == ["b-1", "w-1"]
    assert fake.cancels == [
        {"channel_id": SESSION, "process_type": "worker", "process_id": "w-1"},
        {"channel_id": SESSION, "process_type": "branch", "process_id": "b-1"},
    ]
    done = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert done["turn_id"] == turn and done["text"] == "Half of "
    # What Spacebot still streams for the stopped reply is dropped.
    fake.emit("outbound_message_delta", **where, text_delta="the rest", aggregated_text="Half of the rest")
    fake.emit("outbound_message", **where, text="Half of the rest")
    fake.emit("typing_state", **where, is_typing=False)
    await recorder.wait_for("spacebot_worker_completed")
    await handled(fake, recorder)
    assert recorder.of("spacebot_outbound_message") == [] and len(recorder.of("spacebot_turn_started")) == 1
    with pytest.raises(LookupError):
        await host.stop_turn(turn_id=turn, agent_id="spacebot", channel_id="ch_test", thread_id="th_1")
