"""`spacebot_transcribe_audio`: where a voice memo's transcript becomes a turn's input, in both
hosts. The embedded host's turn reads the text the hook returns; the bridge sends it to
Spacebot as the message text of /api/portal/send."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from spacechat_plugin.config import load_settings
from spacechat_plugin.host.embedded.host import EmbeddedHost
from spacechat_plugin.host.server import plugin_manager

from .fake_spacebot import FakeSpacebot
from .hookrecorder import Recorder
from .test_bridge import TOKEN, make_host

CHANNEL = {"id": "ch_test", "name": "spacebot", "org_id": "org_test"}
VOICE = {"id": "vm_1", "kind": "memo", "content_type": "audio/webm", "duration_ms": 4200, "url": "/v1/voice/memos/vm_1"}
SAID = "Please schedule the design review for Tuesday afternoon."


def memo_message(text: str = "") -> dict[str, Any]:
    return {"id": "msg_9", "text": text, "author": {"kind": "user", "id": "usr_1", "name": "Ada"}, "voice": VOICE}


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedHost, Recorder]]:
    raw = {
        "enabled": True,
        "data_dir": str(tmp_path),
        "runtime": {"coalesce_ms": 20},
        "providers": {"scripted": {"kind": "scripted", "chars_per_second": 20000}},
    }
    recorder = Recorder()
    pm = plugin_manager()
    for name, plugin in list(pm.list_name_plugin()):
        pm.unregister(plugin, name)
    pm.register(recorder)
    host = EmbeddedHost(load_settings(environ={}, overrides=raw), pm, raw)
    await host.start()
    yield host, recorder
    await host.stop()


async def test_the_embedded_turn_reads_the_transcript(embedded: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = embedded
    recorder.answers["spacebot_transcribe_audio"] = lambda **kwargs: SAID
    await host.deliver_message(channel=CHANNEL, thread_id="th_1", message=memo_message(), mentions=[])
    asked = (await recorder.wait_for("spacebot_transcribe_audio"))[0]
    assert asked["message_id"] == "msg_9" and asked["audio"]["id"] == "vm_1" and asked["agent_id"] == "spacebot"
    inbound = (await recorder.wait_for("spacebot_inbound_message"))[0]
    assert inbound["text"] == SAID
    completed = (await recorder.wait_for("spacebot_turn_completed"))[0]
    assert SAID in completed["text"]  # the scripted agent repeats what it was told
    names = recorder.names()
    assert names.index("spacebot_transcribe_audio") < names.index("spacebot_inbound_message")


async def test_without_an_answer_the_message_text_is_used(embedded: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = embedded
    await host.deliver_message(channel=CHANNEL, thread_id="th_1", message=memo_message("typed too"), mentions=[])
    assert (await recorder.wait_for("spacebot_inbound_message"))[0]["text"] == "typed too"


async def test_a_typed_message_does_not_ask_for_a_transcript(embedded: tuple[EmbeddedHost, Recorder]) -> None:
    host, recorder = embedded
    message = {"id": "msg_1", "text": "hello", "author": {"kind": "user", "id": "usr_1"}}
    await host.deliver_message(channel=CHANNEL, thread_id="th_1", message=message, mentions=[])
    await recorder.wait_for("spacebot_turn_completed")
    assert "spacebot_transcribe_audio" not in recorder.names()


async def test_the_bridge_sends_the_transcript_as_text(tmp_path: Path) -> None:
    fake = await FakeSpacebot(TOKEN, ping_seconds=0.1).start()
    host, recorder, _ = make_host(tmp_path, fake.url)
    recorder.answers["spacebot_transcribe_audio"] = lambda **kwargs: SAID
    await host.start()
    try:
        await host.deliver_message(channel=CHANNEL, thread_id="th_1", message=memo_message(), mentions=[])
        assert fake.sent and fake.sent[-1]["message"] == SAID
        assert (await recorder.wait_for("spacebot_inbound_message"))[0]["text"] == SAID
    finally:
        await host.stop()
        await fake.stop()
