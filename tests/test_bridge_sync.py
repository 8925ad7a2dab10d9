"""The bridge where Spacebot's stream alone is not enough, against the stand-in: a failed model
call, lost events (a `lagged` frame, a cut stream) and their backfill, ask-tool questions, per-thread
usage, a turn Spacebot never finishes, and bad input."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from .fake_spacebot import REPLY, FakeSpacebot
from .hookrecorder import Recorder
from .test_bridge import SESSION, TOKEN, Bridged, handled, make_host, say, turn_hooks, until

WHERE = {"agent_id": "spacebot", "channel_id": SESSION}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSpacebot]:
    server = await FakeSpacebot(TOKEN, ping_seconds=0.1).start()
    yield server
    await server.stop()


@pytest.fixture
async def bridged(tmp_path: Path, fake: FakeSpacebot) -> AsyncIterator[Bridged]:
    # No turn times out here: what ends a turn is the backfill under test, never the watchdog.
    host, recorder, _ = make_host(tmp_path, fake.url)
    await host.start()
    await recorder.wait_for("spacebot_connector_status")
    yield host, recorder, fake
    await host.stop()


def replies(recorder: Recorder) -> list[str]:
    """Every reply the plugin was given: turns that completed, and whole messages."""
    texts = [c["text"] for c in recorder.of("spacebot_turn_completed")]
    return texts + [c["text"] for c in recorder.of("spacebot_outbound_message")]


async def test_a_failed_model_call_ends_the_turn_failed(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.fail_next = "rate limited by the provider (429)"
    await say(host, "hi")
    failed = (await recorder.wait_for("spacebot_turn_failed"))[0]
    assert failed["error"] == "rate limited by the provider (429)" and failed["retryable"] is True
    await until(lambda: not fake.playing)
    await handled(fake, recorder)
    assert not recorder.of("spacebot_turn_completed"), "the error text is no reply"
    assert not recorder.of("spacebot_outbound_message")
    assert failed["turn_id"] == recorder.of("spacebot_turn_started")[0]["turn_id"]


async def test_a_lagged_stream_is_backfilled_with_no_loss_and_no_duplicate(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    await say(host, "what day is it?")
    fake.emit("typing_state", **WHERE, is_typing=True)
    await recorder.wait_for("spacebot_turn_started")
    with fake.lag():  # the reply and typing off are lost to the bridge
        fake.log(SESSION, "assistant", REPLY)
        fake.emit("outbound_message", **WHERE, text=REPLY)
        fake.emit("typing_state", **WHERE, is_typing=False)
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert completed["text"] == REPLY
    assert fake.history_requests[-1] == {"agent_id": "spacebot", "session_id": SESSION, "limit": "50"}
    # A later lag finds nothing new: the reply is not delivered twice.
    with fake.lag():
        fake.emit("typing_state", **WHERE, is_typing=True)
    await until(lambda: len(fake.history_requests) >= 3)
    fake.emit("outbound_message", **WHERE, text="sentinel")
    await until(lambda: "sentinel" in replies(recorder))
    assert replies(recorder).count(REPLY) == 1


async def test_a_reply_the_backfill_delivered_is_not_shown_again_by_the_live_stream(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    await say(host, "hi")
    fake.emit("typing_state", **WHERE, is_typing=True)
    fake.log(SESSION, "assistant", "Hi Ada.")  # logged before the live event went out
    with fake.lag():
        fake.emit("outbound_message_delta", **WHERE, text_delta="Hi", aggregated_text="Hi")
    await recorder.wait_for("spacebot_turn_completed")
    fake.emit("outbound_message", **WHERE, text="Hi Ada.")  # the stream brings it after all
    fake.emit("typing_state", **WHERE, is_typing=False)
    fake.emit("outbound_message", **WHERE, text="sentinel")
    await until(lambda: "sentinel" in replies(recorder))
    assert replies(recorder) == ["Hi Ada.", "sentinel"]


async def test_a_cut_stream_is_backfilled_after_the_reconnection(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    await say(host, "what day is it?")
    fake.emit("typing_state", **WHERE, is_typing=True)
    fake.emit("outbound_message_delta", **WHERE, text_delta="Hello", aggregated_text="Hello")
    await recorder.wait_for("spacebot_text_delta")
    fake.accepting = False  # Spacebot restarts: the stream ends and reconnecting fails for a while
    fake.drop_streams()
    await until(lambda: fake.listeners == 0)
    fake.log(SESSION, "assistant", REPLY)  # the reply goes out while nobody listens
    fake.emit("outbound_message", **WHERE, text=REPLY)
    fake.emit("typing_state", **WHERE, is_typing=False)
    assert not recorder.of("spacebot_turn_failed"), "a cut link does not fail the turn in flight"
    fake.accepting = True
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert completed["text"] == REPLY
    assert completed["turn_id"] == recorder.of("spacebot_turn_started")[0]["turn_id"]
    assert "".join(d["delta"] for d in recorder.of("spacebot_text_delta")) == REPLY
    statuses = [s["status"] for s in recorder.of("spacebot_connector_status")]
    assert statuses[:2] == ["connected", "disconnected"] and statuses[-1] == "connected"
    # replies older than this process's first send are never backfilled
    assert replies(recorder) == [REPLY]


async def test_history_from_before_the_bridge_is_not_replayed(tmp_path: Path, fake: FakeSpacebot) -> None:
    fake.log(SESSION, "user", "an old question")
    fake.log(SESSION, "assistant", "an old answer Spacechat already showed")
    host, recorder, _ = make_host(tmp_path, fake.url)
    await host.start()
    try:
        fake.replying = False
        await say(host, "hi")
        with fake.lag():
            fake.emit("typing_state", **WHERE, is_typing=True)
        await until(lambda: len(fake.history_requests) >= 2)
        fake.emit("outbound_message", **WHERE, text="sentinel")
        await until(lambda: "sentinel" in replies(recorder))
        assert replies(recorder) == ["sentinel"]
    finally:
        await host.stop()


async def test_a_turn_spacebot_never_finishes_fails_after_the_timeout(tmp_path: Path, fake: FakeSpacebot) -> None:
    host, recorder, _ = make_host(tmp_path, fake.url, turn_timeout=0.6)
    await host.start()
    try:
        fake.replying = False
        await say(host, "hi")
        fake.emit("typing_state", **WHERE, is_typing=True)
        failed = (await recorder.wait_for("spacebot_turn_failed"))[0]
        assert failed["error"] == "Spacebot did not finish the turn (no event for 0.6 s)"
        assert failed["retryable"] is True
    finally:
        await host.stop()


async def test_ask_tool_questions_become_cards_and_answers_reach_spacebot_matched(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    await say(host, "deploy it")
    question_id = fake.ask("spacebot", SESSION, "Which environment?", ["staging", "production"])
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert completed["text"] == "Which environment?\n1. staging\n2. production"
    actions = completed["blocks"][1]
    assert [e["action_id"] for e in actions["elements"]] == [f"ask:{question_id}:0", f"ask:{question_id}:1"]
    assert [e["label"] for e in actions["elements"]] == ["staging", "production"]
    assert [t["tool"] for t in recorder.of("spacebot_tool_started")] == ["ask"]
    answer = {
        "channel_id": "ch_test",
        "thread_id": "th_1",
        "message_id": "msg_card",
        "action_id": f"ask:{question_id}:1",
        "values": None,
        "user": {"kind": "user", "id": "usr_1", "name": "Ada"},
    }
    await host.deliver_interaction(agent_id="spacebot", interaction=answer)
    # the text Spacebot's enrich_ask_interaction makes of a matched answer
    assert fake.sent[-1]["message"] == 'Ada answered "Which environment?": production'
    assert fake.sent[-1]["sender_name"] == "Ada"
    # a second answer to the same question is stale, as Spacebot says of a resolved one
    await host.deliver_interaction(agent_id="spacebot", interaction={**answer, "action_id": f"ask:{question_id}:0"})
    assert fake.sent[-1]["message"] == f"[interaction: ask:{question_id}:0] (expired)"


async def test_per_thread_usage_comes_from_the_conversation_route(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    fake.conversation_usage[SESSION] = {"input_tokens": 100, "output_tokens": 10, "request_count": 1}
    await say(host, "hi")  # the baseline: usage from before this process is not Spacechat's
    fake.conversation_usage[SESSION] = {
        "input_tokens": 400,
        "output_tokens": 50,
        "request_count": 3,
        "estimated_cost_usd": 0.003,
    }
    model = {"model": "anthropic/claude-sonnet-4", "request_count": 5, "estimated_cost_usd": 0.005}
    fake.usage["spacebot"] = [{**model, "input_tokens": 1000, "output_tokens": 90}]
    await until(lambda: len(recorder.of("spacebot_llm_usage")) >= 2)
    usage = recorder.of("spacebot_llm_usage")
    thread = next(u for u in usage if u["thread_id"] == "th_1")
    rest = next(u for u in usage if u["thread_id"] is None)
    assert (thread["channel_id"], thread["input_tokens"], thread["output_tokens"]) == ("ch_test", 300, 40)
    assert thread["model"] == "anthropic/claude-sonnet-4" and thread["cost_usd"] == pytest.approx(0.003)
    # the agent's usage outside the thread, so the totals add up and nothing is counted twice
    assert (rest["input_tokens"], rest["output_tokens"]) == (700, 50)
    assert rest["cost_usd"] == pytest.approx(0.002)
    assert any(q.get("conversation_id") == SESSION for q in fake.usage_requests)
    asked = len(fake.usage_requests)
    await until(lambda: sum(q.get("conversation_id") == SESSION for q in fake.usage_requests[asked:]) >= 2)
    assert len(recorder.of("spacebot_llm_usage")) == 2, "unchanged totals are not reported again"


async def test_malformed_and_unknown_events_are_logged_and_skipped(
    bridged: Bridged, caplog: pytest.LogCaptureFixture
) -> None:
    host, recorder, fake = bridged
    caplog.set_level(logging.DEBUG, logger="spacechat.host.bridge")
    fake.replying = False
    await say(host, "hi")
    fake.emit("typing_state", **WHERE, is_typing=True)
    fake.emit_raw("outbound_message", "{not json")
    fake.emit_raw("outbound_message_delta", '["a list"]')
    fake.emit_raw(
        "worker_started", json.dumps({"type": "worker_started", "agent_id": "spacebot", "channel_id": SESSION})
    )
    fake.emit_raw("brand_new_event", '{"type": "brand_new_event"}')
    fake.emit("outbound_message", **WHERE, text="still here")
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert completed["text"] == "still here"
    assert host.link_status == "connected" and fake.connections == 1
    assert "malformed Spacebot event outbound_message skipped (not JSON)" in caplog.text
    assert "malformed Spacebot event outbound_message_delta skipped (not an object)" in caplog.text
    assert "malformed Spacebot event worker_started skipped (KeyError" in caplog.text
    assert "unknown Spacebot event brand_new_event skipped" in caplog.text
    assert "spacebot_worker_started" not in turn_hooks(recorder)


async def test_system_messages_and_foreign_messages_reach_the_plugin(bridged: Bridged) -> None:
    host, recorder, fake = bridged
    fake.replying = False
    await say(host, "hi")
    echo = {"sender_name": "Ada", "sender_id": "Ada", "text": "hi", "system": False}
    fake.emit("inbound_message", **WHERE, **echo)  # the echo of the bridge's own send
    fake.emit("inbound_message", **WHERE, sender_name="system", sender_id="system", text="Briefing.", system=True)
    fake.emit("inbound_message", **WHERE, sender_name="Bob", sender_id="bob", text="from the portal", system=False)
    await recorder.wait_for("spacebot_inbound_message", count=3)
    inbound = recorder.of("spacebot_inbound_message")
    assert inbound[0]["message_id"] == "msg_1"
    assert inbound[1]["sender"] == {"kind": "system", "id": "system", "name": "system"}
    assert (inbound[1]["text"], inbound[1]["message_id"]) == ("Briefing.", None)
    assert inbound[2]["sender"]["name"] == "Bob" and inbound[2]["thread_id"] == "th_1"


async def test_compaction_and_agent_links(bridged: Bridged) -> None:
    _, recorder, fake = bridged
    fake.emit("compaction_started", **WHERE, kind="background")
    fake.emit("compaction_completed", **WHERE, success=True)
    link = {"from_agent_id": "spacebot", "to_agent_id": "helper", "link_id": "l1", "channel_id": "link:l1"}
    fake.emit("agent_message_sent", **link)
    fake.emit("agent_message_received", **link)
    await recorder.wait_for("spacebot_agent_message", count=2)
    assert recorder.of("spacebot_compaction_started") == [
        {"agent_id": "spacebot", "channel_id": "ch_test", "thread_id": "th_1", "kind": "background"}
    ]
    assert recorder.of("spacebot_compaction_completed")[0]["success"] is True
    sent, received = recorder.of("spacebot_agent_message")
    assert (sent["direction"], received["direction"], sent["link_channel"]) == ("sent", "received", "link:l1")


async def test_a_spacebot_that_refuses_then_accepts_is_reconnected_by_itself(
    tmp_path: Path, fake: FakeSpacebot
) -> None:
    host, recorder, _ = make_host(tmp_path, fake.url, token="sb-rotated-token-11aa")
    await host.start()
    try:
        refused = (await recorder.wait_for("spacebot_connector_status"))[0]
        assert refused["status"] == "error" and "HTTP 401" in (refused["detail"] or "")
        fake.token = "sb-rotated-token-11aa"  # Spacebot's operator rotates its token to the bridge's
        await until(lambda: host.link_status == "connected", timeout=10)
        assert [s["status"] for s in recorder.of("spacebot_connector_status")][-1] == "connected"
    finally:
        await host.stop()
