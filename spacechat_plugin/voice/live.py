"""A recording transcribed while it is made (`WS /v1/voice/live`, docs/voice.md).

The browser sends its MediaRecorder chunks (one growing webm/opus stream). Partials run back to
back: once one is sent and new audio has come, the next starts, but no sooner than
`voice.live_interval_ms` after the last one started (so a fast machine is not kept busy
re-reading the same second). Each transcribes the audio from the last committed point; so that a
long recording does not get slower to follow, once the uncommitted stretch passes COMMIT_SECONDS
every segment but the last is committed: its text is kept and later partials start after it.
Stopping posts the recording as a memo (the same checks and transcription as an upload); its
final transcript replaces the partials.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PayloadTooLarge
from . import worker
from .pool import Busy
from .service import Upload, VoiceService

# A partial costs about 0.06 CPU-s per second of audio it reads (tiny.en, bench/voice.py): 6 s
# keeps one under half a second, so words reach the screen within about 1.5 s.
COMMIT_SECONDS = 6.0


@dataclass
class LiveRecording:
    service: VoiceService
    content_type: str = "audio/webm"
    data: bytearray = field(default_factory=bytearray)
    committed: list[str] = field(default_factory=list)
    committed_until: float = 0.0
    partials: int = 0
    started: float = field(default_factory=time.monotonic)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def feed(self, chunk: bytes) -> None:
        if len(self.data) + len(chunk) > self.service.config.max_bytes:
            limit = self.service.config.max_bytes
            raise PayloadTooLarge(f"voice memos are limited to {limit} bytes", details={"max_bytes": limit})
        self.data += chunk
        self.arrived.set()

    async def run(self, send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """Send partials until cancelled: back to back while audio keeps coming, at most one
        start per `live_interval_ms`; when the workers are busy, try again an interval later."""
        interval = self.service.config.live_interval_ms / 1000
        last_start = -interval
        await self.warm()
        while True:
            await self.arrived.wait()
            wait = last_start + interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            last_start = time.monotonic()
            partial = await self.partial()  # None: busy, and the audio is still to be transcribed
            if partial is not None:
                await send(partial)

    async def warm(self) -> None:
        """Load the speech model in the workers while the person starts to speak, so the first
        partial does not wait for it."""
        self.service.pool.engines.warm(worker.warm_stt, await self.service.stt_settings())

    async def partial(self) -> dict[str, Any] | None:
        """The transcript so far, or None when the workers are busy (the next tick tries again)."""
        try:
            reservation = self.service.pool.engines.reserve()
        except Busy:
            return None
        snapshot = bytes(self.data)
        self.arrived.clear()
        settings = await self.service.stt_settings()
        asked = time.monotonic()
        result = await self.service.pool.engines.run(
            reservation, worker.transcribe_live, snapshot, settings, self.committed_until
        )
        segments = result["segments"]
        if segments and result["audio_seconds"] - self.committed_until > COMMIT_SECONDS and len(segments) > 1:
            self.committed.extend(segment["text"] for segment in segments[:-1])
            self.committed_until = segments[-2]["end"]
            segments = segments[-1:]
        self.partials += 1
        text = " ".join([*self.committed, *(segment["text"] for segment in segments)]).strip()
        return {
            "type": "partial",
            "seq": self.partials,
            "text": text,
            "audio_ms": round(result["audio_seconds"] * 1000),
            "took_ms": round((time.monotonic() - asked) * 1000),
        }

    async def spool(self) -> Upload:
        """The whole recording as an upload, for `VoiceService.post` (written and hashed in a
        thread: 10 MB is tens of milliseconds the event loop would not serve anyone)."""
        path: Path = self.service.spool_path()
        data = bytes(self.data)
        digest = await asyncio.to_thread(_write, path, data)
        return Upload(path, self.content_type, digest)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()
