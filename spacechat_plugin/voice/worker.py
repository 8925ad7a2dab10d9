"""The jobs the voice worker processes run (pool.py): plain arguments in, plain dicts out, so
they cross the process boundary as pickles. Each process loads an engine once and keeps it.

Problems a client caused come back as `{"error": {code, message, status, details}}`; anything
else raises (and fails the job).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import shutil
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_engines: dict[tuple[Any, ...], Any] = {}
# Let go of the engines before the interpreter tears its modules down: pywhispercpp's
# `Model.__del__` needs its module's globals, and printed a TypeError at every exit otherwise.
atexit.register(_engines.clear)


@dataclass(frozen=True)
class STTSettings:
    model: str
    threads: int
    language: str


@dataclass(frozen=True)
class TTSSettings:
    kind: str
    voice: str
    espeak_voice: str


def lower_priority(pid: int, nice: int) -> None:
    """Put process `pid` (0: this one) at the workers' priority: Linux's idle scheduling class
    (CPU time nobody else wants; the batch class with nice 10, as before 2026-12-05, still took
    a share from the server and the client in the fan-out measured while 4 memos transcribe),
    and `nice` steps below the server. Idempotent: a process already in the idle class is left
    as it is, so the server (at spawn) and the worker (at start-up) may both call it."""
    if not nice:
        return
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            if os.sched_getscheduler(pid) == os.SCHED_IDLE:
                return
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, min(19, os.getpriority(os.PRIO_PROCESS, pid) + nice))


def initializer(nice: int = 0) -> None:
    """Start-up of a worker process: it ends with the server, however the server ends (even
    `kill -9`: Linux's parent-death signal); OpenMP threads wait passively (whisper.cpp's threads
    spin by default: measured, 2 threads took 3.0 CPU-s for a 10 s memo instead of 0.7 on a busy
    machine); and it yields the CPU to the server (`lower_priority`; the server lowered it already
    the moment the process existed, pool.py, so this only matters elsewhere), so the event loop,
    woken by a request, runs at once even while every core transcribes (bench/voice.py measures
    both). `nice` 0 keeps an equal share."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    lower_priority(0, nice)
    if os.getppid() != parent:  # the server ended before the signal was asked for
        os._exit(0)


def _stt(settings: STTSettings) -> Any:
    key = ("stt", settings.model, settings.threads)
    if key not in _engines:
        from .engines import WhisperCpp

        _engines[key] = WhisperCpp(Path(settings.model), settings.threads)
    return _engines[key]


def _tts(settings: TTSSettings) -> Any:
    key = ("tts", settings.kind, settings.voice, settings.espeak_voice)
    if key not in _engines:
        from .engines import text_to_speech

        _engines[key] = text_to_speech(settings.kind, settings.voice, settings.espeak_voice)
    return _engines[key]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_memo(source: str, target: str, declared: str, max_seconds: float) -> dict[str, Any]:
    """Check an uploaded recording (audio.inspect) and write its stored copy to `target`
    (a browser's webm remuxed so it seeks): the measurements, or the error to answer."""
    from .audio import AudioError, inspect, remux

    try:
        found = inspect(Path(source), declared, max_seconds)
    except AudioError as exc:
        return {"error": {"code": exc.code, "message": exc.message, "status": exc.status, "details": exc.details}}
    stored = Path(target)
    if not remux(Path(source), stored):
        shutil.copyfile(source, stored)
    with stored.open("rb") as handle:
        os.fsync(handle.fileno())
    return {**asdict(found), "size": stored.stat().st_size, "sha256": _sha256(stored)}


def warm_checks() -> None:
    """Import the decoders in this process (before the first upload is checked)."""
    from . import audio  # noqa: F401


def warm_stt(settings: STTSettings) -> None:
    """Load the speech model in this process (before a live recording's first partial)."""
    _stt(settings)


def warm_tts(settings: TTSSettings) -> None:
    """Load the voice in this process (while the reply to speak is still being written)."""
    _tts(settings)


def transcribe(path: str, settings: STTSettings) -> dict[str, Any]:
    from .audio import decode

    pcm, _ = decode(Path(path))
    result: dict[str, Any] = _stt(settings).transcribe(pcm, settings.language)
    return result


def transcribe_live(data: bytes, settings: STTSettings, start_seconds: float) -> dict[str, Any]:
    """A partial transcript of a recording still being made (`data`: what the browser sent so far)
    from `start_seconds` on; what does not decode yet is left for the next time."""
    from .audio import RATE, AudioError, decode_tail

    try:
        window, seconds = decode_tail(data, start_seconds)
    except AudioError:
        return {"text": "", "segments": [], "audio_seconds": 0.0}
    if len(window) < RATE // 2:
        return {"text": "", "segments": [], "audio_seconds": seconds}
    result: dict[str, Any] = _stt(settings).transcribe(window, settings.language, live=True)
    for segment in result["segments"]:
        for timed in (segment, *segment["words"]):
            timed["start"] = round(timed["start"] + start_seconds, 2)
            timed["end"] = round(timed["end"] + start_seconds, 2)
    result["audio_seconds"] = seconds
    return result


def synthesize(text: str, settings: TTSSettings, target: str) -> dict[str, Any]:
    """Speak `text` into an Ogg/Opus file at `target`; its duration."""
    from .audio import encode_ogg

    engine = _tts(settings)
    pcm, rate = engine.synthesize(text)
    Path(target).write_bytes(encode_ogg(pcm, rate))
    return {"duration_ms": round(len(pcm) / rate * 1000), "engine": engine.name, "voice": engine.voice}


def assemble(clips: list[str], target: str) -> dict[str, Any]:
    """Join a spoken reply's sentence files into one Ogg/Opus file; its measurements and each
    sentence's length (for the transcript's times)."""
    import numpy as np

    from .audio import decode, encode_ogg, peaks

    rate = 24_000
    parts = [decode(Path(clip), rate=rate)[0] for clip in clips]
    pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    stored = Path(target)
    stored.write_bytes(encode_ogg(pcm, rate))
    return {
        "duration_ms": round(len(pcm) / rate * 1000),
        "clip_ms": [round(len(part) / rate * 1000) for part in parts],
        "peaks": peaks(pcm),
        "size": stored.stat().st_size,
        "sha256": _sha256(stored),
    }
