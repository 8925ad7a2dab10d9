"""The embedded host, in process: every hook fires at its point, in the documented order."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spacechat_plugin.config import load_settings
from spacechat_plugin.host.embedded.host import EmbeddedHost
from spacechat_plugin.host.server import plugin_manager

from .hookrecorder import Recorder

pytestmark = pytest.mark.asyncio

CHANNEL = {"id": "ch_test", "name": "spacebot", "org_id": "org_test"}


@pytest.fixture
async def hosted(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedHost, Recorder]]:
    raw = {
        "enabled": True,
        "data_dir": str(tmp_path),
        "runtime": {"coalesce_ms": 50},
        "providers": {"scripted": {"kind": "scripted", "chars_per_second": 20000}},
    }
    settings = load_settings(environ={}, overrides=raw)
    recorder = Recorder()
    pm = plugin_manager()
    for name, plugin in list(pm.list_name_plugin()):
        pm.unregister(plugin, name)  # only the recorder: this tests the host, not the plugin
    pm.register(recorder)
    host = EmbeddedHost(settings, pm, raw)
    await host.start()
    yield host, recorder
    await host.stop()


def compress(names: list[str]) -> list[str]:
    return [name.removeprefix("spacebot_") for name, _ in itertools.groupby(names)]


async def say(host: EmbeddedHost, text: str, *, thread: str = "th_1", message_id: str = "msg_1") -> list[str]:
    message = {"id": message_id, "text": text, "author": {"kind": "user", "id": "usr_1"}}
    return await host.deliver_message(channel=CHANNEL, thread_id=thread, message=message, mentions=[])


async def test_hook_startup_register_routes_and_shutdown(tmp_path: Path) -> None:
    raw = {"enabled": True, "data_dir": str(tmp_path)}
    recorder = Recorder()
    pm = plugin_manager()
    for name, plugin in list(pm.list_name_plugin()):
        pm.unregister(plugin, name)
    pm.register(recorder)
    host = EmbeddedHost(load_settings(environ={}, overrides=raw), pm, raw)
    await host.start()
    assert recorder.of("spacebot_startup") == [{"host": host, "config": raw}]
    assert host.routes() == []
    assert recorder.names()[-1] == "spacebot_register_routes"
    pm.hook.spacebot_server_started(url="http://127.0.0.1:9999")
    assert recorder.of("spacebot_server_started") == [{"url": "http://127.0.0.1:9999"}]
    pm.hook.spacebot_server_stopping()
    await host.stop()
    assert recorder.names()[-2:] == ["spacebot_server_stopping", "spacebot_shutdown"]


async def test_hook_order_of_a_turn_with_a_tool(hosted: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = hosted
    assert await say(host, "what time is it?") == ["spacebot"]
    await recorder.wait_for("spacebot_turn_completed")
    assert compress(recorder.names()[recorder.names().index("spacebot_inbound_message") :]) == [
        "inbound_message",
        "turn_started",
        "completion_call",
        "llm_usage",
        "completion_response",
        "worker_started",
        "before_tool_call",
        "tool_started",
        "tool_completed",
        "worker_completed",
        "completion_call",
        "text_delta",
        "llm_usage",
        "completion_response",
        "turn_completed",
    ]
    started = recorder.of("spacebot_turn_started")[0]
    assert started["message_ids"] == ["msg_1"] and started["channel_id"] == "ch_test"
    completed = recorder.of("spacebot_turn_completed")[0]
    deltas = recorder.of("spacebot_text_delta")
    assert "".join(d["delta"] for d in deltas) == completed["text"] == deltas[-1]["aggregated_text"]
    assert "current_time" in completed["text"]
    assert completed["ttft_ms"] is not None and completed["duration_ms"] >= completed["ttft_ms"]
    worker = recorder.of("spacebot_worker_completed")[0]
    assert worker["outcome"] == "succeeded" and worker["success"] is True
    assert recorder.of("spacebot_worker_started")[0]["worker_id"] == worker["worker_id"]
    tool = recorder.of("spacebot_tool_completed")[0]
    assert tool["tool"] == "current_time" and "UTC" in tool["result"]
    assert all(u["process_type"] == "channel" for u in recorder.of("spacebot_llm_usage"))
    calls, responses = recorder.of("spacebot_completion_call"), recorder.of("spacebot_completion_response")
    assert len(calls) == len(responses) == 2 and all(r["error"] is None for r in responses)
    assert calls[0]["turn_id"] == started["turn_id"] and calls[0]["model"] == responses[0]["model"]
    assert all(r["duration_ms"] >= 0 and r["process_type"] == "channel" for r in responses)


async def test_hook_branch_and_reasoning(hosted: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = hosted
    await say(host, "please plan the launch")
    await recorder.wait_for("spacebot_turn_completed")
    order = recorder.names()
    assert order.index("spacebot_branch_started") < order.index("spacebot_reasoning_delta")
    assert order.index("spacebot_reasoning_delta") < order.index("spacebot_branch_completed")
    assert order.index("spacebot_branch_completed") < order.index("spacebot_text_delta")
    assert recorder.of("spacebot_branch_started")[0]["description"].startswith("Think through")
    conclusion = recorder.of("spacebot_branch_completed")[0]["conclusion"]
    assert conclusion.startswith("Conclusion")
    assert conclusion in recorder.of("spacebot_turn_completed")[0]["text"]
    assert "branch" in {u["process_type"] for u in recorder.of("spacebot_llm_usage")}


async def test_hook_before_tool_call_can_wait_for_a_human(hosted: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = hosted
    decided = asyncio.Event()

    async def approve_later(**kwargs: Any) -> None:
        await decided.wait()
        return None

    recorder.answers["spacebot_before_tool_call"] = approve_later
    await say(host, "what time is it?")
    await recorder.wait_for("spacebot_worker_idle")
    waiting = recorder.of("spacebot_worker_status")[0]
    assert waiting["state"] == "waiting_for_input"
    assert host.workers[waiting["worker_id"]].state == "waiting_for_input"
    await asyncio.sleep(0.2)
    assert not recorder.of("spacebot_tool_started"), "the tool must not run before the decision"
    decided.set()
    await recorder.wait_for("spacebot_turn_completed")
    order = compress(recorder.names())
    assert order.index("worker_idle") < order.index("tool_started")
    statuses = [s["state"] for s in recorder.of("spacebot_worker_status")]
    assert statuses == ["waiting_for_input", "running"]
    assert recorder.of("spacebot_worker_completed")[0]["outcome"] == "succeeded"


async def test_hook_tool_failed_when_denied(hosted: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = hosted
    recorder.answers["spacebot_before_tool_call"] = {"decision": "deny", "reason": "not now"}
    await say(host, "what time is it?")
    await recorder.wait_for("spacebot_turn_completed")
    assert not recorder.of("spacebot_tool_started")
    failed = recorder.of("spacebot_tool_failed")[0]
    assert failed["error"] == "Tool denied: not now"
    worker = recorder.of("spacebot_worker_completed")[0]
    assert worker["outcome"] == "blocked" and worker["success"] is False
    assert "not now" in recorder.of("spacebot_turn_completed")[0]["text"]


async def test_messages_in_a_burst_become_one_turn(hosted: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = hosted
    for i in range(3):
        await say(host, f"part {i}", message_id=f"msg_{i}")
    await say(host, "other thread", thread="th_2", message_id="msg_x")
    await recorder.wait_for("spacebot_turn_completed", count=2)
    turns = recorder.of("spacebot_turn_started")
    assert [t["message_ids"] for t in turns] == [["msg_0", "msg_1", "msg_2"], ["msg_x"]]
    assert [t["thread_id"] for t in turns] == ["th_1", "th_2"]
    assert len(recorder.of("spacebot_inbound_message")) == 4


async def test_hook_turn_failed_and_health_changed(hosted: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = hosted
    provider = host.providers["scripted"]
    provider.failing = "upstream returned 503"  # type: ignore[attr-defined]
    await say(host, "hello")
    failed = (await recorder.wait_for("spacebot_turn_failed"))[0]
    assert failed["error"] == "upstream returned 503" and failed["retryable"] is True
    assert recorder.of("spacebot_completion_response")[0]["error"] == "upstream returned 503"
    health = recorder.of("spacebot_health_changed")
    assert health == [{"component": "provider:scripted", "status": "down", "detail": "upstream returned 503"}]
    assert host.agents()[0]["health"] == "down"
    assert await host.reconnect_provider(name="scripted") == {"provider": "scripted", "status": "reconnected"}
    await recorder.wait_for("spacebot_health_changed", count=2)
    assert recorder.of("spacebot_health_changed")[-1]["status"] == "ok"
    retried = await host.retry_turn(channel_id="ch_test")
    assert retried["message_ids"] == ["msg_1"]
    await recorder.wait_for("spacebot_turn_completed")
    assert recorder.of("spacebot_turn_started")[-1]["turn_id"] == retried["turn_id"]


async def test_hook_memory_save_and_recall(hosted: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = hosted
    await say(host, "remember that the launch review happens on Friday")
    await recorder.wait_for("spacebot_turn_completed")
    asked = recorder.of("spacebot_before_memory_save")[0]
    assert asked["memory"]["content"] == "the launch review happens on Friday"
    saved = recorder.of("spacebot_memory_saved")[0]
    assert saved["content_summary"] == "the launch review happens on Friday"
    await say(host, "when is the launch review?", message_id="msg_2")
    await recorder.wait_for("spacebot_turn_completed", count=2)
    recalled = recorder.of("spacebot_memory_recalled")[0]
    assert recalled["memory_ids"] == [saved["memory_id"]]
    # a plugin may route a save into review: the host then does not save it
    recorder.answers["spacebot_before_memory_save"] = {"action": "review", "candidate_id": "cand_1"}
    await say(host, "remember that budgets are reviewed monthly", message_id="msg_3")
    await recorder.wait_for("spacebot_turn_completed", count=3)
    assert len(recorder.of("spacebot_memory_saved")) == 1
    assert "cand_1" in recorder.of("spacebot_turn_completed")[-1]["text"]


async def test_restart_worker_and_recover(hosted: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = hosted
    host.providers["scripted"].chars_per_second = 50  # type: ignore[attr-defined]
    await say(host, "a long answer please")
    await recorder.wait_for("spacebot_text_delta")
    result = await host.restart_worker(channel_id="ch_test")
    assert result == {"channel_id": "ch_test", "agents": ["spacebot"]}
    failed = (await recorder.wait_for("spacebot_turn_failed"))[0]
    assert failed["error"] == "the turn was cancelled"
    host.providers["scripted"].chars_per_second = 20000  # type: ignore[attr-defined]
    await say(host, "still there?", message_id="msg_2")
    await recorder.wait_for("spacebot_turn_completed")
    summary = await host.recover_instance()
    assert summary["channels_restarted"] == 1
    with pytest.raises(LookupError):
        await host.restart_worker(channel_id="ch_nope")


async def test_hook_worker_question_asked_waits_for_the_answer(hosted: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = hosted
    await say(host, "ask me where to deploy")
    asked = (await recorder.wait_for("spacebot_worker_question_asked"))[0]
    assert asked["questions"][0]["options"] == [{"label": "staging"}, {"label": "production"}]
    started = recorder.of("spacebot_worker_started")[0]
    assert started["interactive"] is True
    await asyncio.sleep(0.3)
    assert host.workers[asked["worker_id"]].state == "waiting_for_input"
    assert not recorder.of("spacebot_turn_completed"), "the turn waits for the answer"
    await host.deliver_interaction(
        agent_id="spacebot",
        interaction={
            "question_id": asked["question_id"],
            "answer": "staging",
            "channel_id": "ch_test",
            "thread_id": "th_1",
        },
    )
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert "The answer was: staging" in completed["text"]
    assert recorder.of("spacebot_worker_completed")[0]["outcome"] == "succeeded"


async def test_hook_worker_permission_asked_gates_the_tool(tmp_path: Path) -> None:
    raw = {
        "enabled": True,
        "data_dir": str(tmp_path),
        "runtime": {"coalesce_ms": 20},
        "providers": {"scripted": {"kind": "scripted", "chars_per_second": 20000}},
        "agents": [
            {
                "id": "ops",
                "name": "Ops",
                "provider": "scripted",
                "channels": ["spacebot"],
                "permission_tools": ["restart_service"],
            }
        ],
    }
    recorder = Recorder()
    pm = plugin_manager()
    for name, plugin in list(pm.list_name_plugin()):
        pm.unregister(plugin, name)
    pm.register(recorder)
    host = EmbeddedHost(load_settings(environ={}, overrides=raw), pm, raw)
    await host.start()
    try:
        await say(host, "please restart billing")
        asked = (await recorder.wait_for("spacebot_worker_permission_asked"))[0]
        assert asked["patterns"] == ["restart_service"]
        assert "restart_service" in asked["description"]
        assert not recorder.of("spacebot_tool_started")
        await host.deliver_interaction(
            agent_id="ops", interaction={"permission_id": asked["permission_id"], "allow": False}
        )
        await recorder.wait_for("spacebot_turn_completed")
        assert recorder.of("spacebot_worker_completed")[0]["outcome"] == "blocked"
        assert not recorder.of("spacebot_tool_started")
        await say(host, "please restart billing", message_id="msg_2")
        asked = (await recorder.wait_for("spacebot_worker_permission_asked", count=2))[1]
        await host.deliver_interaction(
            agent_id="ops", interaction={"permission_id": asked["permission_id"], "allow": True}
        )
        await recorder.wait_for("spacebot_turn_completed", count=2)
        assert recorder.of("spacebot_tool_completed")[0]["result"] == "restart of billing requested"
    finally:
        await host.stop()
