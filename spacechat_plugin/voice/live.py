"""A recording transcribed while it is made (`WS /v1/voice/live`, docs/voice.md).

The browser sends its MediaRecorder chunks (one growing webm/opus stream); about once a
`voice.live_interval_ms` the audio so far is transcribed from the last committed point and the
partial text goes back. So that a long recording does not get slower to follow, once the
uncommitted stretch passes COMMIT_SECONDS every segment but the last is committed: its text is
kept and later partials start after it. Stopping posts the recording as a memo (the same checks
and transcription as an upload); its final transcript replaces the partials.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PayloadTooLarge
from . import worker
from .pool import Busy
from .service import Upload, VoiceService

COMMIT_SECONDS = 12.0


@dataclass
class LiveRecording:
    service: VoiceService
    content_type: str = "audio/webm"
    data: bytearray = field(default_factory=bytearray)
    committed: list[str] = field(default_factory=list)
    committed_until: float = 0.0
    transcribed_bytes: int = 0
    partials: int = 0
    started: float = field(default_factory=time.monotonic)

    def feed(self, chunk: bytes) -> None:
        if len(self.data) + len(chunk) > self.service.config.max_bytes:
            limit = self.service.config.max_bytes
            raise PayloadTooLarge(f"voice memos are limited to {limit} bytes", details={"max_bytes": limit})
        self.data += chunk

    @property
    def fresh(self) -> bool:
        """Audio arrived since the last partial."""
        return len(self.data) > self.transcribed_bytes

    async def partial(self) -> dict[str, Any] | None:
        """The transcript so far, or None when the workers are busy (the next tick tries again)."""
        try:
            reservation = self.service.pool.engines.reserve()
        except Busy:
            return None
        snapshot = bytes(self.data)
        self.transcribed_bytes = len(snapshot)
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
        """The whole recording as an upload, for `VoiceService.post`."""
        import hashlib

        path: Path = self.service.spool_path()
        data = bytes(self.data)
        await asyncio.to_thread(path.write_bytes, data)
        return Upload(path, self.content_type, hashlib.sha256(data).hexdigest())
