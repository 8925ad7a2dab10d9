"""The AG-UI host against a real AG-UI server: a Pydantic AI agent served by Pydantic AI's own
AG-UI adapter on loopback (tests/agui_server.py). A streamed reply with its reasoning, a
server-side tool call, an approval interrupt answered (by people, by a policy, or refused) and
resumed, Spacechat's own tools offered to the agent, steps and shared state, a failing run, an
endpoint that is down; and end to end, an interrupt answered from a card in the thread."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from spacechat_plugin.config import load_settings
from spacechat_plugin.host.embedded.host import EmbeddedHost
from spacechat_plugin.host.server import plugin_manager

from .agui_server import GREETING, THOUGHT, WEATHER, AGUIServer
from .hookrecorder import Recorder
from .support import Server, toml_config, wait_for_message

CHANNEL = {"id": "ch_test", "name": "research", "org_id": "org_test"}
SECRET = "agui-secret-7f1d"

Hosted = tuple[EmbeddedHost, Recorder, AGUIServer]


@pytest.fixture(scope="module")
def agui() -> Iterator[AGUIServer]:
    server = AGUIServer().start()
    yield server
    server.stop()


def make_host(tmp_path: Path, url: str) -> tuple[EmbeddedHost, Recorder]:
    raw = {
        "enabled": True,
        "data_dir": str(tmp_path),
        "runtime": {"coalesce_ms": 0},
        "providers": {
            "agui": {"kind": "agui", "base_url": url, "headers": {"Authorization": f"Bearer {SECRET}"}},
        },
        "agents": [
            {"id": "researcher", "name": "Researcher", "provider": "agui", "model": "agui", "channels": ["research"]}
        ],
    }
    recorder = Recorder()
    pm = plugin_manager()
    for name, plugin in list(pm.list_name_plugin()):
        pm.unregister(plugin, name)
    pm.register(recorder)
    return EmbeddedHost(load_settings(environ={}, overrides=raw), pm, raw), recorder


@pytest.fixture
async def hosted(tmp_path: Path, agui: AGUIServer) -> AsyncIterator[Hosted]:
    host, recorder = make_host(tmp_path, agui.url)
    await host.start()
    yield host, recorder, agui
    await host.stop()


async def say(host: EmbeddedHost, text: str, message_id: str = "msg_1") -> None:
    message = {"id": message_id, "text": text, "author": {"kind": "user", "id": "usr_1", "name": "Ada"}}
    assert await host.deliver_message(channel=CHANNEL, thread_id="th_1", message=message, mentions=[]) == ["researcher"]


def text_of(recorder: Recorder) -> str:
    return "".join(d["delta"] for d in recorder.of("spacebot_text_delta"))


async def test_a_streamed_reply_with_its_reasoning(hosted: Hosted) -> None:
    host, recorder, agui = hosted
    before = len(agui.requests)
    await say(host, "hello there")
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert completed["text"] == GREETING == text_of(recorder)
    assert len(recorder.of("spacebot_text_delta")) > 3, "the reply streams in pieces"
    assert "".join(r["delta"] for r in recorder.of("spacebot_reasoning_delta")) == THOUGHT
    assert completed["ttft_ms"] is not None
    sent = agui.requests[before]
    assert sent["threadId"] == "th_1" and sent["protocolVersion"] == "1.0"
    assert sent["messages"] == [{"id": "msg_1", "role": "user", "content": "hello there", "name": "Ada"}]
    assert "current_time" in {tool["name"] for tool in sent["tools"]}
    assert agui.headers[before]["authorization"] == f"Bearer {SECRET}"
    # the next turn sends the conversation so far (AG-UI servers keep nothing between runs)
    await say(host, "hello again", message_id="msg_2")
    await recorder.wait_for("spacebot_turn_completed", count=2)
    history = agui.requests[-1]["messages"]
    assert [m["role"] for m in history] == ["user", "assistant", "user"]
    assert history[1]["content"] == GREETING


async def test_a_tool_call_on_the_agents_side(hosted: Hosted) -> None:
    host, recorder, _ = hosted
    await say(host, "what is the weather?")
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    started, done = recorder.of("spacebot_tool_started")[0], recorder.of("spacebot_tool_completed")[0]
    assert (started["tool"], started["arguments"], started["worker_id"]) == ("get_weather", {"city": "Paris"}, None)
    assert done["call_id"] == started["call_id"] == "call_get_weather" and done["result"] == WEATHER
    assert completed["text"] == f"The weather in Paris: {WEATHER}."
    names = recorder.names()
    assert names.index("spacebot_tool_completed") < names.index("spacebot_turn_completed")


async def test_an_interrupt_is_asked_of_people_and_resumes_the_run(hosted: Hosted) -> None:
    host, recorder, agui = hosted
    await say(host, "deploy the release")
    asked = (await recorder.wait_for("spacebot_worker_permission_asked"))[0]
    assert asked["permission_id"] == "int-call_deploy" and asked["patterns"] == ["deploy"]
    assert asked["description"] == 'Approve deploy({"env":"production"})?'
    worker = recorder.of("spacebot_worker_started")[0]
    assert (worker["interactive"], worker["task"]) == (True, "approve deploy")
    assert (await recorder.wait_for("spacebot_worker_status"))[0]["state"] == "waiting_for_input"
    assert not recorder.of("spacebot_turn_completed"), "the turn waits for the answer"
    runs = len(agui.requests)
    interaction = {"permission_id": asked["permission_id"], "allow": True, "channel_id": "ch_test", "thread_id": "th_1"}
    await host.deliver_interaction(agent_id="researcher", interaction=interaction)
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert completed["text"] == "Done: deployed to production."
    resumed = agui.requests[runs]
    assert resumed["resume"] == [
        {"interruptId": "int-call_deploy", "status": "resolved", "payload": {"approved": True}}
    ]
    assert any(m.get("toolCalls") for m in resumed["messages"]), "the resumed run sees the call it approves"
    assert recorder.of("spacebot_tool_completed")[0]["result"] == "deployed to production"
    assert recorder.of("spacebot_worker_completed")[0]["outcome"] == "succeeded"
    assert len(recorder.of("spacebot_turn_started")) == 1, "one turn, two runs"


async def test_an_interrupt_refused_by_people_denies_the_tool(hosted: Hosted) -> None:
    host, recorder, agui = hosted
    await say(host, "deploy now")
    asked = (await recorder.wait_for("spacebot_worker_permission_asked"))[0]
    await host.deliver_interaction(
        agent_id="researcher", interaction={"permission_id": asked["permission_id"], "allow": False}
    )
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert completed["text"] == "I did not deploy: it was denied."
    assert agui.requests[-1]["resume"][0]["payload"] == {"approved": False, "reason": "refused by people"}
    failed = recorder.of("spacebot_tool_failed")[0]
    assert failed["tool"] == "deploy" and failed["error"] == "Tool denied: refused by people"
    assert recorder.of("spacebot_worker_completed")[0]["outcome"] == "blocked"


async def test_an_approval_policy_answers_the_interrupt(hosted: Hosted) -> None:
    host, recorder, _ = hosted
    recorder.answers["spacebot_before_tool_call"] = {"decision": "allow", "reason": "deploys are pre-approved"}
    await say(host, "deploy please")
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert completed["text"] == "Done: deployed to production."
    asked = recorder.of("spacebot_before_tool_call")[0]
    assert (asked["tool"], asked["arguments"], asked["call_id"]) == ("deploy", {"env": "production"}, "call_deploy")
    assert not recorder.of("spacebot_worker_permission_asked"), "the policy decided: nobody was asked"


async def test_spacechats_own_tools_run_in_workers_for_the_agent(hosted: Hosted) -> None:
    host, recorder, agui = hosted
    await say(host, "what time is it?")
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    done = recorder.of("spacebot_tool_completed")[0]
    assert done["tool"] == "current_time" and done["worker_id"] is not None and "UTC" in done["result"]
    assert recorder.of("spacebot_before_tool_call")[0]["tool"] == "current_time"
    assert completed["text"] == f"Your clock says {done['result']}."
    tool_message = next(m for m in agui.requests[-1]["messages"] if m["role"] == "tool")
    assert tool_message["toolCallId"] == "call_current_time" and tool_message["content"] == done["result"]


async def test_steps_and_shared_state(hosted: Hosted) -> None:
    host, recorder, agui = hosted
    await say(host, "plan the work")
    await recorder.wait_for("spacebot_turn_completed")
    assert [s["status"] for s in recorder.of("spacebot_status_update")] == ["planning", ""]
    assert host.status()["agents"][0]["state"] == {"th_1": {"plan": ["draft"], "progress": 50}}
    await say(host, "hello", message_id="msg_2")
    await recorder.wait_for("spacebot_turn_completed", count=2)
    assert agui.requests[-1]["state"] == {"plan": ["draft"], "progress": 50}, "the state goes back to the agent"


async def test_a_failed_run_fails_the_turn(hosted: Hosted) -> None:
    host, recorder, _ = hosted
    await say(host, "fail now")
    failed = (await recorder.wait_for("spacebot_turn_failed"))[0]
    assert failed["error"] == "the model is overloaded" and failed["retryable"] is True
    assert not recorder.of("spacebot_health_changed"), "the agent's error is not an outage of its endpoint"


async def test_an_endpoint_that_is_down(tmp_path: Path) -> None:
    host, recorder = make_host(tmp_path, "http://127.0.0.1:9/agent")
    await host.start()
    try:
        await say(host, "hello")
        failed = (await recorder.wait_for("spacebot_turn_failed"))[0]
        assert failed["error"].startswith("the AG-UI agent is unreachable") and failed["retryable"] is True
        health = recorder.of("spacebot_health_changed")[0]
        assert (health["component"], health["status"]) == ("provider:agui", "down")
        # spacebot_startup's `config` is the whole [config] table, secrets and all, for every host
        calls = [call for call in recorder.calls if call[0] != "spacebot_startup"]
        assert SECRET not in repr(calls) + repr(host.agents()) + repr(host.status()) + repr(host.settings)
    finally:
        await host.stop()


# -- end to end -----------------------------------------------------------------------------


@pytest.mark.slow
async def test_an_interrupt_answered_from_a_card_resumes_the_run(tmp_path: Path, agui: AGUIServer) -> None:
    agent = '[[agents]]\nid = "researcher"\nname = "Researcher"\nprovider = "agui"\nmodel = "agui"\n'
    agent += 'channels = ["spacebot"]\n'
    config = toml_config(agent, providers__agui={"kind": "agui", "base_url": agui.url})
    server = Server(tmp_path / "data", config)
    await asyncio.to_thread(server.start)
    try:
        async with server.client() as client:
            channel = server.channel_id("spacebot")
            posted = await client.post(f"/v1/channels/{channel}/messages", json={"text": "deploy the release"})
            assert posted.status_code == 201, posted.text
            thread_id = posted.json()["thread"]["id"]

            def card(message: dict[str, Any]) -> bool:
                return bool((message.get("metadata") or {}).get("worker_permission"))

            asked = await asyncio.to_thread(wait_for_message, server, thread_id, card)
            assert asked["author"]["id"] == "researcher" and "Approve deploy" in asked["text"]
            clicked = await client.post(
                "/v1/interactions", json={"message_id": asked["id"], "action_id": "permission.allow"}
            )
            assert clicked.status_code == 201, clicked.text

            def replied(message: dict[str, Any]) -> bool:
                # The card came mid-turn, so the reply goes on in a message below it (issue 13).
                continued = (message.get("metadata") or {}).get("continued_in")
                return (
                    message["author"]["kind"] == "agent"
                    and message["state"] == "completed"
                    and not card(message)
                    and not continued
                )

            reply = await asyncio.to_thread(wait_for_message, server, thread_id, replied)
            assert reply["text"] == "Done: deployed to production."
            status = (await client.get("/v1/agents/researcher/status")).json()
            assert status["agent"]["provider"] == "agui"
            again = await client.post(
                "/v1/interactions", json={"message_id": asked["id"], "action_id": "permission.allow"}
            )
            assert again.status_code == 409, "a decided card takes no second answer"
    finally:
        await asyncio.to_thread(server.stop)


def test_the_agui_provider_is_checked_at_start() -> None:
    from spacechat_plugin.config import ConfigError

    with pytest.raises(ConfigError, match="an agui provider needs base_url"):
        load_settings(environ={}, overrides={"providers": {"a": {"kind": "agui"}}})
    with pytest.raises(ConfigError, match="base_url must start with http"):
        load_settings(environ={}, overrides={"providers": {"a": {"kind": "agui", "base_url": "ftp://x"}}})
    assert httpx  # the module's HTTP client for the end-to-end test
