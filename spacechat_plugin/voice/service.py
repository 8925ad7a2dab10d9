"""Voice memos: a recording is checked (on its decoded audio) and posted as a message, then
transcribed in the background; the transcript becomes the message's text and reaches the agents
as the turn's input (`spacebot_transcribe_audio`). A failed transcription marks the memo failed
with the reason and keeps the audio playable. Memos a restart left open are transcribed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..agents.delivery import Delivery
from ..agents.replies import ReplyStreams
from ..config import Settings
from ..errors import (
    Conflict,
    PayloadTooLarge,
    ServiceUnavailable,
    SpacechatError,
    Unprocessable,
    UnsupportedMediaType,
)
from ..events import Actor, new_id
from ..hookspecs import hookimpl
from ..identity.permissions import Access
from ..store import identity
from ..store import messages as message_store
from ..store import voice as voice_store
from ..store.db import Database
from . import models, worker
from .pool import Busy, Reservation, VoicePool
from .speech import SpokenReplies, speakable

log = logging.getLogger("spacechat.voice")

# What the voice extra brings; without it the routes answer 503 saying so.
REQUIRED = {"av": "av", "numpy": "numpy", "pywhispercpp": "pywhispercpp"}
EXTENSIONS = {
    "audio/webm": "webm",
    "audio/ogg": "ogg",
    "audio/wav": "wav",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
}
ERRORS: dict[int, type[SpacechatError]] = {413: PayloadTooLarge, 415: UnsupportedMediaType, 422: Unprocessable}


def busy_error(busy: Busy) -> ServiceUnavailable:
    return ServiceUnavailable(
        str(busy),
        code="voice_busy",
        details={"retry_after": busy.retry_after},
        headers={"Retry-After": str(busy.retry_after)},
    )


@dataclass(frozen=True)
class Upload:
    """A recording as received: where it was spooled, what the client said it is, its digest."""

    path: Path
    declared: str
    sha256: str


class VoiceService:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        access: Access,
        replies: ReplyStreams,
        delivery: Delivery,
        spawn: Callable[[Coroutine[Any, Any, Any], str], None],
        one_process: bool = True,
    ) -> None:
        self.config = settings.voice
        self.db, self.access, self.delivery, self.spawn = db, access, delivery, spawn
        # With several gateways (issue 17) a transcript reaches the agents through the lease
        # holder, which reads it from the log (`deliver_transcribed`), wherever it was made.
        self.one_process = one_process
        self.root = settings.files_path / "voice"
        self.models_dir = (
            Path(self.config.models_dir).expanduser() if self.config.models_dir else settings.data_path / "voice-models"
        )
        self.pool = VoicePool(self.config.workers, self.config.queue, self.config.nice)
        self.missing = [package for module, package in REQUIRED.items() if importlib.util.find_spec(module) is None]
        self._model: asyncio.Future[Path] | None = None
        self._done: dict[str, asyncio.Event] = {}
        self.speech = SpokenReplies(self, replies, {agent.id: agent for agent in settings.agents})

    # -- availability and the model -----------------------------------------------------------

    @property
    def reason(self) -> str | None:
        """Why voice memos cannot work here, or None."""
        if not self.config.enabled:
            return "voice memos are turned off (voice.enabled)"
        if self.missing:
            return f"voice needs {', '.join(self.missing)}: pip install 'spacechat[voice]'"
        return None

    def check_available(self) -> None:
        if self.reason is not None:
            raise ServiceUnavailable(self.reason, code="voice_unavailable")

    def status(self) -> dict[str, Any]:
        path = models.model_path(self.models_dir, self.config.stt_model)
        return {
            "available": self.reason is None,
            "reason": self.reason,
            "stt": {
                "engine": "whisper.cpp",
                "model": path.name,
                "ready": path.is_file(),
                "language": self.config.language,
            },
            "tts": {"engine": self.config.tts, "voice": self.config.tts_voice or "en_US-joe-medium"},
            "limits": {"max_bytes": self.config.max_bytes, "max_seconds": self.config.max_seconds},
            "live": {"interval_ms": self.config.live_interval_ms},
            "workers": {
                "count": self.config.workers,
                "preload": self.config.preload,
                "warmed": self.pool.engines.warm_jobs_done,
            },
        }

    async def model(self) -> Path:
        """The speech model's path, built on first use (in a thread: a one-time cost), logged."""
        if self._model is None or (self._model.done() and self._model.exception() is not None):
            self._model = asyncio.ensure_future(
                asyncio.to_thread(models.prepare, self.models_dir, self.config.stt_model, models.logged_progress())
            )
        return await asyncio.shield(self._model)

    async def stt_settings(self) -> worker.STTSettings:
        return worker.STTSettings(str(await self.model()), self.config.threads, self.config.language)

    # -- files ----------------------------------------------------------------------------------

    def audio_path(self, memo: Mapping[str, Any]) -> Path:
        memo_id, ext = str(memo["id"]), EXTENSIONS.get(memo["content_type"], "bin")
        return self.root / memo_id[-2:] / f"{memo_id}.{ext}"

    def clip_path(self, memo_id: str, index: int) -> Path:
        return self.root / memo_id[-2:] / f"{memo_id}.clip{index}.ogg"

    def spool_path(self) -> Path:
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming / f"{new_id('up')}.part"

    # -- life cycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """The workers load the speech model (`voice.preload`, once it is built), and memos a
        restart left open are settled: recordings are transcribed again, speech that was cut ends."""
        if self.reason is not None:
            return
        if self.config.preload and models.is_ready(self.models_dir, self.config.stt_model):
            self.pool.engines.warm(worker.warm_stt, await self.stt_settings())
            self.pool.checks.warm(worker.warm_checks)
        for memo in await voice_store.open_memos(self.db):
            if memo["kind"] == "memo":
                try:
                    reservation = self.pool.engines.reserve()
                except Busy:
                    await self._fail(memo["id"], "the server restarted; send it again")
                    continue
                self.spawn(self.transcribe(memo, reservation), f"transcribe {memo['id']}")
            else:
                await self._fail(memo["id"], "the server restarted mid-speech")

    async def _fail(self, memo_id: str, reason: str) -> None:
        await self.db.write(lambda tx: voice_store.fail(tx, memo_id, reason))

    async def stop(self) -> None:
        await self.speech.stop()
        self.pool.close()

    # -- posting a memo -------------------------------------------------------------------------

    async def post(
        self,
        *,
        actor: Actor,
        name: str,
        channel: dict[str, Any],
        thread_id: str | None,
        upload: Upload,
        claim: message_store.IdempotencyClaim | None,
    ) -> voice_store.PostedMemo:
        """Check a recording and post it as a memo (nothing is stored when it is refused), then
        transcribe it in the background. Busy workers answer 503 before anything is read."""
        try:
            reservation = self.pool.engines.reserve()
        except Busy as busy:
            raise busy_error(busy) from None
        memo_id = new_id("vm")
        stored: Path | None = None
        try:
            found = await self._check(memo_id, upload)
            stored = self.audio_path({"id": memo_id, "content_type": found["content_type"]})
            audio = voice_store.Audio(
                found["content_type"], found["size"], found["sha256"], found["duration_ms"], found["peaks"]
            )
            posted = await self.db.write(
                lambda tx: voice_store.post_memo(
                    tx, memo_id=memo_id, actor=actor, channel=channel, thread_id=thread_id, audio=audio, claim=claim
                )
            )
        except BaseException:
            reservation.release()
            if stored is not None:
                stored.unlink(missing_ok=True)
            raise
        if posted.memo is None:  # a replay: the first send's memo stands
            reservation.release()
            stored.unlink(missing_ok=True)
            return posted
        self._done[memo_id] = asyncio.Event()
        self.spawn(self.transcribe(posted.memo, reservation, name=name), f"transcribe {memo_id}")
        return posted

    async def _check(self, memo_id: str, upload: Upload) -> dict[str, Any]:
        target = self.root / memo_id[-2:] / f"{memo_id}.check"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            try:
                found = await self.pool.checks.run(
                    None, worker.prepare_memo, str(upload.path), str(target), upload.declared, self.config.max_seconds
                )
            except Busy as busy:
                raise busy_error(busy) from None
            error = found.get("error")
            if error is not None:
                raise ERRORS.get(error["status"], Unprocessable)(
                    error["message"], code=error["code"], details=error["details"] or None
                )
            final = self.audio_path({"id": memo_id, "content_type": found["content_type"]})
            target.replace(final)
            return found
        finally:
            target.unlink(missing_ok=True)

    # -- transcribing ---------------------------------------------------------------------------

    async def transcribe(self, memo: dict[str, Any], reservation: Reservation, name: str | None = None) -> None:
        """Transcribe a posted memo; store the transcript (or the failure); then hand the
        transcript to the agents."""
        try:
            settings = await self.stt_settings()
            transcript = await asyncio.wait_for(
                self.pool.engines.run(reservation, worker.transcribe, str(self.audio_path(memo)), settings),
                self.config.timeout_seconds,
            )
        except asyncio.CancelledError:
            reservation.release()
            raise
        except Exception as exc:
            reservation.release()
            reason = _reason(exc)
            log.warning("transcribing memo %s failed: %s", memo["id"], reason)
            await self._fail(memo["id"], reason)
            self._finished(memo["id"])
            return
        finished = await self.db.write(lambda tx: voice_store.finish(tx, memo["id"], transcript))
        self._finished(memo["id"])
        if finished is not None and finished[1] is not None and transcript["text"].strip() and self.one_process:
            await self._deliver(finished[1], transcript["text"], name)

    def _finished(self, memo_id: str) -> None:
        done = self._done.pop(memo_id, None)
        if done is not None:
            done.set()

    async def wait(self, memo_id: str) -> None:
        """Until a memo posted here is transcribed (or failed), at most `voice.timeout_seconds`."""
        done = self._done.get(memo_id)
        if done is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), self.config.timeout_seconds)

    async def deliver_transcribed(self, memo: Mapping[str, Any], text: str) -> None:
        """The lease holder (several gateways): a person's memo transcribed on any gateway goes
        to the agents from here, once."""
        if memo.get("kind") != "memo" or not memo.get("message_id") or not text.strip():
            return
        message = await message_store.get_message(self.db, str(memo["message_id"]))
        if message is not None:
            await self._deliver(message, text, None)

    async def _deliver(self, message: dict[str, Any], text: str, name: str | None) -> None:
        """A person's transcribed memo goes to the agents as a message whose text is the transcript."""
        if message["author"]["kind"] != "user":
            return
        channel = self.access.channels.get(message["channel_id"])
        if channel is None:
            return
        if name is None:
            user = await identity.get_user(self.db, message["author"]["id"] or "")
            name = user["name"] if user else message["author"]["id"]
        voice = message["metadata"]["voice"]
        inbound = {**message, "text": text, "author": {**message["author"], "name": name}, "voice": voice}
        await self.delivery.deliver(channel, message["thread_id"], inbound, [])

    # -- a reply read aloud on request -----------------------------------------------------------

    async def speak(self, message: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Read a finished agent reply aloud (the Listen button): its speech memo, and whether it
        was made now; asking again returns the first one (docs/voice.md)."""
        if message["author"]["kind"] != "agent":
            raise Unprocessable("only an agent's reply can be read aloud", code="not_speakable")
        if message["state"] in ("created", "streaming"):
            raise Conflict(
                "the reply is still being written; it is spoken as it streams when the agent speaks",
                code="reply_streaming",
            )
        if not speakable(message["text"] or ""):
            raise Unprocessable("the reply has no text to read aloud", code="not_speakable")
        try:
            self.pool.engines.reserve().release()  # refuse now rather than fail the first sentence
        except Busy as busy:
            raise busy_error(busy) from None
        return await self.speech.speak_message(message)

    # -- the hooks this service implements ----------------------------------------------------

    @hookimpl
    async def spacebot_transcribe_audio(self, message_id: str | None, audio: Mapping[str, Any]) -> str | None:
        memo_id = str(audio.get("id") or audio.get("memo_id") or "")
        await self.wait(memo_id)
        stored = await voice_store.get_memo(self.db, memo_id)
        if stored is None or stored.transcript is None or stored.memo["message_id"] != message_id:
            return None
        return str(stored.transcript["text"])

    @hookimpl
    async def spacebot_turn_started(
        self, agent_id: str, channel_id: str, thread_id: str, turn_id: str, message_ids: Sequence[str]
    ) -> None:
        await self.speech.turn_started(agent_id, channel_id, thread_id, turn_id, message_ids)

    @hookimpl
    async def spacebot_text_delta(self, turn_id: str, aggregated_text: str) -> None:
        self.speech.text(turn_id, aggregated_text)

    @hookimpl
    async def spacebot_turn_completed(self, turn_id: str, text: str) -> None:
        self.speech.ended(turn_id, text)

    @hookimpl
    async def spacebot_turn_failed(self, turn_id: str) -> None:
        self.speech.ended(turn_id, None)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "transcription took too long"
    if isinstance(exc, models.ModelMissing):
        return str(exc)
    return f"transcription failed ({type(exc).__name__}: {str(exc)[:200]})"
