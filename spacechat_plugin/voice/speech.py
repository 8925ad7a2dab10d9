"""Spoken replies: an agent's reply is synthesized sentence by sentence while it streams, so its
first sentence plays before the reply is complete; when the reply ends, the sentences are joined
into one recording whose transcript is the reply's text, played from the same player as a memo.

A reply is spoken when the person sent a voice memo (agents' `speak = "voice"`, the default), or
always (`speak = "always"`), never with `speak = "never"`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..agents.replies import ReplyStreams
from ..config import AgentConfig, VoiceConfig
from ..events import new_id
from ..identity.permissions import Access
from ..store import messages as message_store
from ..store import voice as voice_store
from ..store.db import Database
from . import worker
from .pool import Busy, VoicePool


class VoiceParts(Protocol):
    """What spoken replies use of the voice service (service.py), so neither imports the other."""

    config: VoiceConfig
    db: Database
    access: Access
    pool: VoicePool

    @property
    def reason(self) -> str | None: ...

    def audio_path(self, memo: Mapping[str, Any]) -> Path: ...

    def clip_path(self, memo_id: str, index: int) -> Path: ...


log = logging.getLogger("spacechat.voice.speech")

# A sentence ends at . ! ? or … (with closing quotes or brackets) before white space, or at a
# blank line; a very long run without one is cut at a comma or space so speech can start.
_END = re.compile(r"[.!?…]+[\"')\]]*\s+|\n\s*\n")
MAX_SENTENCE = 300


def sentences(text: str, final: bool) -> tuple[list[str], int]:
    """The complete sentences at the start of `text` and how many characters they used; with
    `final`, the rest is a sentence too."""
    found, used = [], 0
    while True:
        match = _END.search(text, used)
        if match is None:
            break
        found.append(text[used : match.end()].strip())
        used = match.end()
    rest = text[used:]
    while len(rest) > MAX_SENTENCE:
        cut = max(rest.rfind(", ", 0, MAX_SENTENCE), rest.rfind(" ", 0, MAX_SENTENCE))
        cut = cut + 1 if cut > 0 else MAX_SENTENCE
        found.append(rest[:cut].strip())
        used += cut
        rest = text[used:]
    if final and rest.strip():
        found.append(rest.strip())
        used = len(text)
    return [s for s in found if _speakable(s)], used


def _speakable(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def speakable(text: str) -> list[str]:
    """The sentences of a finished text that have something to say."""
    return sentences(text, final=True)[0]


def _plain(text: str) -> str:
    """What to say of Markdown: no code fences, marks or link targets."""
    text = re.sub(r"```.*?```", " ", text, flags=re.S)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[*_`#>~|]", "", text)


def words_for(text: str, start: float, end: float) -> list[dict[str, Any]]:
    """Word times inside a spoken sentence, shared out by length (the engine gives none)."""
    words = text.split()
    weights = [len(word) + 1 for word in words]
    total, at, found = sum(weights) or 1, start, []
    for word, weight in zip(words, weights, strict=True):
        span = (end - start) * weight / total
        found.append({"text": word, "start": round(at, 2), "end": round(at + span, 2)})
        at += span
    return found


@dataclass
class Speaking:
    agent_id: str
    channel_id: str
    turn_id: str
    voice: str
    memo_id: str = field(default_factory=lambda: new_id("vm"))
    message_id: str | None = None
    used: int = 0
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    spoken: list[tuple[int, str, int]] = field(default_factory=list)  # (index, text, duration_ms)
    worker: asyncio.Task[None] | None = None
    started: bool = False
    label: str = ""  # the engine and voice that spoke, e.g. "piper en_US-joe-medium"


class SpokenReplies:
    def __init__(self, service: VoiceParts, replies: ReplyStreams, agents: Mapping[str, AgentConfig]) -> None:
        self.service, self.replies, self.agents = service, replies, agents
        self.turns: dict[str, Speaking] = {}
        self.workers: set[asyncio.Task[None]] = set()
        self.asking = asyncio.Lock()  # one spoken copy per reply, however many ask at once

    async def turn_started(
        self, agent_id: str, channel_id: str, thread_id: str, turn_id: str, message_ids: Sequence[str]
    ) -> None:
        agent = self.agents.get(agent_id)
        if agent is None or agent.speak == "never" or self.service.reason is not None:
            return
        if agent.speak == "voice":
            memos = [await voice_store.memo_of_message(self.service.db, mid) for mid in message_ids]
            if not any(memos):
                return
        speaking = Speaking(agent_id, channel_id, turn_id, self.voice_of(agent_id))
        self._start(speaking)
        self.turns[turn_id] = speaking

    def voice_of(self, agent_id: str) -> str:
        agent = self.agents.get(agent_id)
        return (agent.voice if agent is not None else "") or self.service.config.tts_voice

    def _start(self, speaking: Speaking) -> None:
        # The voice loads while the reply is still being written (seconds, once per worker).
        self.service.pool.engines.warm(worker.warm_tts, self._settings(speaking))
        speaking.worker = asyncio.create_task(self._speak(speaking), name=f"speak {speaking.turn_id}")
        self.workers.add(speaking.worker)
        speaking.worker.add_done_callback(self.workers.discard)

    async def speak_message(self, message: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """A finished reply read aloud on request (the Listen button): its speech memo, made
        now (True) or the one it already has (False: asking twice speaks once). The sentences
        are synthesized in the background, announced one by one like a streaming reply's."""
        async with self.asking:
            existing = await voice_store.memo_of_message(self.service.db, message["id"], kind="speech")
            if existing is not None and existing["status"] != "failed":
                return existing, False
            agent_id = str(message["author"]["id"] or "")
            speaking = Speaking(
                agent_id,
                message["channel_id"],
                f"ask {message['id']}",
                self.voice_of(agent_id),
                message_id=message["id"],
            )
            memo = await self._begin(speaking, "")
        for sentence in speakable(message["text"]):
            speaking.queue.put_nowait(sentence)
        speaking.queue.put_nowait(None)
        self._start(speaking)
        return memo, True

    def text(self, turn_id: str, aggregated: str) -> None:
        speaking = self.turns.get(turn_id)
        if speaking is None:
            return
        if speaking.message_id is None:
            speaking.message_id = self.replies.message_for_turn(turn_id)
        found, used = sentences(aggregated[speaking.used :], final=False)
        speaking.used += used
        for sentence in found:
            speaking.queue.put_nowait(sentence)

    def ended(self, turn_id: str, text: str | None) -> None:
        speaking = self.turns.pop(turn_id, None)
        if speaking is None:
            return
        if text is not None:
            found, _ = sentences(text[speaking.used :], final=True)
            for sentence in found:
                speaking.queue.put_nowait(sentence)
        speaking.queue.put_nowait(None)

    async def stop(self) -> None:
        for task in list(self.workers):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the worker of one reply ---------------------------------------------------------------

    def _settings(self, speaking: Speaking) -> worker.TTSSettings:
        return worker.TTSSettings(self.service.config.tts, speaking.voice, self.service.config.espeak_voice)

    async def _speak(self, speaking: Speaking) -> None:
        """Synthesize each sentence as it arrives, in order; at the end, join them."""
        settings = self._settings(speaking)
        try:
            while (sentence := await speaking.queue.get()) is not None:
                await self._sentence(speaking, settings, sentence)
            if speaking.started:
                await self._finish(speaking)
        except asyncio.CancelledError:
            raise
        except Busy:
            await self._fail(speaking, "the voice workers are busy")
        except Exception as exc:
            log.exception("speaking reply %s failed", speaking.turn_id)
            await self._fail(speaking, f"speech failed ({type(exc).__name__})")

    async def _sentence(self, speaking: Speaking, settings: worker.TTSSettings, sentence: str) -> None:
        index = len(speaking.spoken)
        path = self.service.clip_path(speaking.memo_id, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        said = _plain(sentence)
        result = await self.service.pool.engines.run(None, worker.synthesize, said, settings, str(path))
        speaking.label = f"{result['engine']} {result['voice']}"
        if not speaking.started:
            await self._begin(speaking, speaking.label)
        speaking.spoken.append((index, sentence, result["duration_ms"]))
        await self.service.db.write(
            lambda tx: voice_store.add_clip(tx, speaking.memo_id, index, sentence, result["duration_ms"])
        )

    async def _begin(self, speaking: Speaking, voice: str) -> dict[str, Any]:
        reply = (
            None
            if speaking.message_id is None
            else await message_store.get_message(self.service.db, speaking.message_id)
        )
        channel = self.service.access.channels.get(speaking.channel_id)
        if reply is None or channel is None:
            raise LookupError("the reply to speak is gone")
        memo = await self.service.db.write(
            lambda tx: voice_store.start_speech(tx, memo_id=speaking.memo_id, reply=reply, channel=channel, voice=voice)
        )
        speaking.started = True
        return memo

    async def _finish(self, speaking: Speaking) -> None:
        memo_id = speaking.memo_id
        clips = [str(self.service.clip_path(memo_id, index)) for index, _, _ in speaking.spoken]
        target = self.service.audio_path({"id": memo_id, "content_type": "audio/ogg"})
        joined = await self.service.pool.engines.run(None, worker.assemble, clips, str(target))
        segments, at = [], 0.0
        for (_, text, _), length in zip(speaking.spoken, joined["clip_ms"], strict=True):
            end = at + length / 1000
            segments.append(
                {"start": round(at, 2), "end": round(end, 2), "text": text, "words": words_for(text, at, end)}
            )
            at = end
        transcript = {
            "text": " ".join(text for _, text, _ in speaking.spoken),
            "segments": segments,
            "language": "en",
            "model": speaking.label,
            "duration_ms": joined["duration_ms"],
        }
        audio = voice_store.Audio("audio/ogg", joined["size"], joined["sha256"], joined["duration_ms"], joined["peaks"])
        await self.service.db.write(lambda tx: voice_store.finish(tx, memo_id, transcript, audio))

    async def _fail(self, speaking: Speaking, reason: str) -> None:
        if speaking.started:
            await self.service.db.write(lambda tx: voice_store.fail(tx, speaking.memo_id, reason))
