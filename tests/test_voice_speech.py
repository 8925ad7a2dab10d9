"""Spoken replies and the speech engines behind them (docs/voice.md, "Spoken replies"): a reply
is spoken sentence by sentence while it streams, in the agent's own voice (Piper, or espeak-ng
by `voice = "espeak:<voice>"` and as the fallback), never with `speak = "never"`; and the
`language` setting is what whisper.cpp is asked for. Real engines throughout: the scripted
agent, Piper, espeak-ng (Debian's package) and whisper.cpp with tiny.en."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from spacechat_plugin.voice import engines, worker

from .support import Server, events_after, toml_config, wait_for_message
from .voice_support import SENTENCE, Clip, decoded_seconds, word_error_rate

pytestmark = pytest.mark.slow

AGENTS = """
[providers.slow]
kind = "scripted"
chars_per_second = 30

[[agents]]
id = "talker"
name = "Talker"
provider = "slow"
channels = ["talk"]
speak = "always"

[[agents]]
id = "robot"
name = "Robot"
provider = "scripted"
channels = ["robot"]
speak = "always"
voice = "espeak:en-us"

[[agents]]
id = "quiet"
name = "Quiet"
provider = "scripted"
channels = ["quiet"]
speak = "never"
"""


@pytest.fixture(scope="module")
def agents_server(tmp_path_factory: pytest.TempPathFactory, voice_model: Path) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("speech") / "data", toml_config(AGENTS)).start()
    with running.sync_client() as client:
        for name in ("talk", "robot", "quiet"):
            assert client.post("/v1/channels", json={"name": name}).status_code == 201
    yield running
    running.stop()


def start_turn(server: Server, channel: str, text: str) -> tuple[int, str]:
    """Say `text` in the agent's channel: the event sequence before it and the new thread."""
    with server.sync_client() as client:
        seq = int(client.get("/v1/me").json()["seq"])
        posted = client.post(f"/v1/channels/{server.channel_id(channel)}/messages", json={"text": text})
    assert posted.status_code == 201, posted.text
    return seq, str(posted.json()["thread"]["id"])


def spoken_reply(server: Server, thread_id: str, timeout: float = 90) -> dict[str, Any]:
    """The agent's reply once its speech is finished."""

    def done(message: dict[str, Any]) -> bool:
        voice = message["metadata"].get("voice") or {}
        return message["author"]["kind"] == "agent" and voice.get("status") in ("transcribed", "failed")

    return wait_for_message(server, thread_id, done, timeout)


def about(event: dict[str, Any]) -> str | None:
    """The message an event is about."""
    payload = event["payload"]
    return payload.get("message_id") or (payload.get("message") or {}).get("id")


def test_a_slow_reply_is_heard_before_it_is_complete(agents_server: Server) -> None:
    """The talker writes 30 characters a second: its reply takes about 7 s, its first sentence
    one. A first reply starts the voice workers and loads Piper (seconds, once: docs/voice.md);
    the second is the one measured."""
    spoken_reply(agents_server, start_turn(agents_server, "talk", "Good morning.")[1])
    seq, thread_id = start_turn(agents_server, "talk", "Hello there.")
    reply = spoken_reply(agents_server, thread_id)
    assert reply["metadata"]["voice"]["status"] == "transcribed", reply["metadata"]["voice"]
    mine = [e for e in events_after(agents_server, seq) if about(e) == reply["id"]]
    kinds = [e["event_type"] for e in mine]
    first_clip, completed = kinds.index("voice.memo.speech"), kinds.index("message.completed")
    # The first sentence was ready to play while the reply was still being written.
    assert first_clip < completed, kinds
    assert kinds.count("voice.memo.speech") >= 3 and "voice.memo.speech" in kinds[completed:], kinds
    clip = mine[first_clip]["payload"]["clip"]
    assert clip["index"] == 0 and clip["text"].startswith("You said: *") and clip["text"].endswith(": Hello there.*")
    with agents_server.sync_client() as client:
        first = client.get(clip["url"])
    assert first.status_code == 200
    assert 0.8 < decoded_seconds(first.content) < 4, decoded_seconds(first.content)


def test_an_agent_with_an_espeak_voice_speaks_with_espeak(agents_server: Server) -> None:
    _, thread_id = start_turn(agents_server, "robot", "Hello there.")
    reply = spoken_reply(agents_server, thread_id)
    memo_id = reply["metadata"]["voice"]["id"]
    with agents_server.sync_client() as client:
        audio = client.get(f"/v1/voice/memos/{memo_id}")
        spoken = client.get(f"/v1/voice/memos/{memo_id}/transcript").json()["transcript"]
    assert spoken["status"] == "transcribed" and spoken["model"] == "espeak-ng en-us", spoken
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/ogg"
    seconds = decoded_seconds(audio.content)
    assert len(reply["text"]) / 30 < seconds < len(reply["text"]) / 6, seconds
    assert spoken["segments"][0]["text"].endswith(": Hello there.*")


def test_an_agent_that_never_speaks_answers_a_memo_in_text(agents_server: Server, clip: Clip) -> None:
    """`speak = "never"`: not even a voice memo gets a spoken reply. The robot's spoken reply,
    asked for after the quiet one was complete, shows the voice workers got that far."""
    channel = agents_server.channel_id("quiet")
    with agents_server.sync_client() as client:
        seq = int(client.get("/v1/me").json()["seq"])
        posted = client.post(
            "/v1/voice/memos",
            data={"channel_id": channel},
            files={"file": ("memo.ogg", clip.files["ogg"], "audio/ogg")},
        )
    assert posted.status_code == 201, posted.text
    thread_id = posted.json()["thread"]["id"]
    reply = wait_for_message(
        agents_server, thread_id, lambda m: m["author"]["kind"] == "agent" and m["state"] == "completed", 90
    )
    heard = reply["text"].split("*")[1].split(":", 1)[1]  # "You said: *<person>: <what it heard>*"
    assert word_error_rate(clip.text, heard) <= 0.10, reply["text"]
    _, later = start_turn(agents_server, "robot", "Hello again.")
    spoken_reply(agents_server, later)
    with agents_server.sync_client() as client:
        shown = client.get(f"/v1/messages/{reply['id']}").json()["message"]
    assert "voice" not in shown["metadata"]
    voice_events = [
        (e["event_type"], e["payload"]["memo"]["kind"] if "memo" in e["payload"] else None)
        for e in events_after(agents_server, seq)
        if e["event_type"].startswith("voice.") and e["thread_id"] == thread_id
    ]
    assert voice_events == [("voice.memo.created", "memo"), ("voice.memo.transcribed", "memo")], voice_events


# --- the engines ------------------------------------------------------------------------------


def _heard(voice_model: Path, pcm: np.ndarray[Any, Any], rate: int, tmp_path: Path) -> str:
    """What whisper.cpp makes of synthesized speech."""
    from spacechat_plugin.voice.audio import encode_ogg

    path = tmp_path / "spoken.ogg"
    path.write_bytes(encode_ogg(pcm, rate))
    return str(worker.transcribe(str(path), worker.STTSettings(str(voice_model), 1, "en"))["text"])


@pytest.mark.parametrize(
    ("kind", "voice", "piper"),
    [
        ("piper", "", False),  # Piper is not installed
        ("piper", "/nowhere/en_US-missing-medium.onnx", True),  # its voice is not
        ("espeak", "", True),  # voice.tts = "espeak"
        ("piper", "espeak:en-us", True),  # an agent's voice = "espeak:en-us"
    ],
)
def test_espeak_speaks_when_piper_cannot(
    monkeypatch: pytest.MonkeyPatch, voice_model: Path, tmp_path: Path, kind: str, voice: str, piper: bool
) -> None:
    if not piper:
        monkeypatch.setattr(engines, "piper_installed", lambda: False)
    engine = engines.text_to_speech(kind, voice, "en-us")
    assert (engine.name, engine.voice) == ("espeak-ng", "en-us")
    pcm, rate = engine.synthesize(SENTENCE)
    assert 1.5 < len(pcm) / rate < 8 and float(np.abs(pcm).max()) > 0.1
    assert word_error_rate(SENTENCE, _heard(voice_model, pcm, rate, tmp_path)) <= 0.2


def test_piper_speaks_when_it_is_installed() -> None:
    engine = engines.text_to_speech("piper", "", "en-us")
    assert engine.name == "piper" and engine.voice == "en_US-joe-medium"


def test_the_language_setting_is_what_whisper_is_asked_for(
    monkeypatch: pytest.MonkeyPatch, voice_model: Path, clip: Clip, tmp_path: Path
) -> None:
    """`voice.language` reaches whisper.cpp's decoding parameters. An English-only model (tiny.en,
    the default) is always asked for English, whatever the setting; a multilingual model is asked
    for the setting. No package ships a multilingual ggml model, so the real tiny.en is told it is
    one for the second half: whisper.cpp then receives the language (and, English-only, still
    hears English)."""
    path = tmp_path / "memo.ogg"
    path.write_bytes(clip.files["ogg"])
    german = worker.STTSettings(str(voice_model), 1, "de")
    english = worker.transcribe(str(path), german)
    engine = worker._stt(german)

    def asked() -> str:
        return str(engine._model._params.language)  # whisper.cpp's own decoding parameters

    assert asked() == "en" and english["language"] == "en" and not engine.multilingual
    assert word_error_rate(clip.text, english["text"]) <= 0.10
    monkeypatch.setattr(engine, "multilingual", True)
    worker.transcribe(str(path), german)
    assert asked() == "de"
    worker.transcribe(str(path), worker.STTSettings(str(voice_model), 1, "auto"))
    assert asked() in ("auto", "")  # whisper.cpp reads both as "detect the language"


def test_a_live_partial_is_decoded_once_and_bounded_and_a_memo_after_it_is_not(voice_model: Path, clip: Clip) -> None:
    """A live partial of a short window could loop ("Good morning. Good morning. ...") and be
    decoded again by whisper's temperature fallback, seconds for half a second of speech: live
    partials are decoded greedily once, with a token bound for their length. The parameters
    persist on the model, so a memo transcribed by the same worker afterwards must get
    whisper.cpp's defaults back and the whole of what was said."""
    settings = worker.STTSettings(str(voice_model), 1, "en")
    data = clip.files["webm"]
    engine = worker._stt(settings)
    params = engine._model._params  # whisper.cpp's own decoding parameters
    for fraction in (0.05, 0.1, 0.5):
        partial = worker.transcribe_live(data[: int(len(data) * fraction)], settings, 0.0)
        seconds = partial["audio_seconds"]
        if not partial["segments"]:
            continue
        bound = engines.LIVE_TOKENS_BASE + int(seconds * engines.LIVE_TOKENS_PER_SECOND)
        assert params.temperature_inc == 0.0 and 0 < params.max_tokens <= bound
        for segment in partial["segments"]:
            assert len(segment["words"]) <= bound, segment["text"]
    whole = worker.transcribe_live(data, settings, 0.0)
    assert word_error_rate(clip.text, whole["text"]) <= 0.10, whole["text"]

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "memo.webm"
        path.write_bytes(data)
        memo = worker.transcribe(str(path), settings)
    assert params.temperature_inc == pytest.approx(engines.DEFAULT_TEMPERATURE_INC) and params.max_tokens == 0
    assert word_error_rate(clip.text, memo["text"]) <= 0.10, memo["text"]
