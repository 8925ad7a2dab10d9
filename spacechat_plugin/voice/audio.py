"""Audio in and out with PyAV (FFmpeg's libraries, codecs in the wheel): any recording to 16 kHz
mono for the speech models, checks on what was really decoded (not on what a header claims),
waveform peaks for drawing, and Ogg/Opus for synthesized speech.

Runs in the voice worker processes (pool.py): decoding holds the GIL for long stretches.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import av.error
import numpy as np
import numpy.typing as npt

RATE = 16_000
PEAKS = 100
# A recording whose loudest sample stays under this (about -46 dBFS) is silence: nothing to
# transcribe (Whisper would make words up), and nothing a person meant to send.
SILENCE_PEAK = 0.005
MIN_SECONDS = 0.3

# Container names as FFmpeg reports them -> the type the memo is stored and served as.
FORMATS = {
    "matroska,webm": "audio/webm",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "mp3": "audio/mpeg",
    "mov,mp4,m4a,3gp,3g2,mj2": "audio/mp4",
    "aac": "audio/aac",
}
# Types a client may declare, by the stored type they name.
DECLARED = {
    "audio/webm": "audio/webm",
    "video/webm": "audio/webm",
    "audio/ogg": "audio/ogg",
    "audio/opus": "audio/ogg",
    "application/ogg": "audio/ogg",
    "audio/wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/x-wav": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mpeg": "audio/mpeg",
    "audio/mp3": "audio/mpeg",
    "audio/mp4": "audio/mp4",
    "audio/m4a": "audio/mp4",
    "audio/x-m4a": "audio/mp4",
    "audio/aac": "audio/aac",
    "audio/x-aac": "audio/aac",
}
# Declaring nothing in particular: the bytes decide.
UNDECLARED = ("", "application/octet-stream")


class AudioError(Exception):
    """A recording that cannot be a memo; `code` and `status` say why to the client."""

    def __init__(self, code: str, message: str, status: int = 422, details: dict[str, object] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.details = code, message, status, details or {}


def media_type(declared: str) -> str:
    return declared.split(";")[0].strip().lower()


def check_declared(declared: str) -> None:
    """Refuse a type that is not audio before reading a byte of it."""
    kind = media_type(declared)
    if kind not in UNDECLARED and kind not in DECLARED:
        raise AudioError(
            "unsupported_media_type",
            f"files of type {kind} are not voice memos; send webm/opus, ogg/opus, wav, mp3 or m4a",
            415,
            {"declared": kind, "accepted": sorted(DECLARED)},
        )


@dataclass(frozen=True)
class Inspection:
    content_type: str
    duration_ms: int
    peaks: list[float]


def _frames(
    container: av.container.InputContainer, stream: av.AudioStream, rate: int = RATE
) -> Iterator[npt.NDArray[np.float32]]:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            yield _mono(out)
    for out in resampler.resample(None):
        yield _mono(out)


def _mono(frame: av.AudioFrame) -> npt.NDArray[np.float32]:
    """A resampled frame's samples (packed float, one channel) as a flat array."""
    return np.asarray(frame.to_ndarray(), dtype=np.float32).reshape(-1)


def _open(source: Path | bytes) -> av.container.InputContainer:
    try:
        return av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError):
        raise AudioError(
            "not_audio", "the file is not audio in a format we read (webm/opus, ogg/opus, wav, mp3, m4a)", 415
        ) from None


def _expected_seconds(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    """What the container says the length is, when it says (a browser's live webm does not)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def decode(
    source: Path | bytes, max_seconds: float | None = None, *, lenient: bool = False, rate: int = RATE
) -> tuple[npt.NDArray[np.float32], str]:
    """The recording as mono float32 (16 kHz unless `rate` says), and its stored content type. Raises AudioError for
    what is not audio, what is cut short, and (with `max_seconds`) what is too long. `lenient`
    keeps what decoded before an error (a live recording still being written)."""
    container = _open(source)
    with container:
        streams = container.streams.audio
        if not streams:
            raise AudioError("not_audio", "the file has no audio in it", 415)
        stream = streams[0]
        content_type = FORMATS.get(container.format.name, "")
        if not content_type:
            raise AudioError("not_audio", f"{container.format.long_name} is not a recording format we accept", 415)
        chunks: list[npt.NDArray[np.float32]] = []
        samples = 0
        limit = None if max_seconds is None else int((max_seconds + 1) * rate)
        try:
            for chunk in _frames(container, stream, rate):
                chunks.append(chunk)
                samples += len(chunk)
                if limit is not None and samples > limit:
                    break
        except (av.error.FFmpegError, ValueError) as exc:
            if not lenient:
                raise AudioError(
                    "truncated_audio", f"the recording is damaged or cut short ({exc.__class__.__name__})"
                ) from None
        expected = _expected_seconds(container, stream)
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    seconds = len(pcm) / rate
    if max_seconds is not None and seconds > max_seconds:
        raise AudioError(
            "audio_too_long",
            f"voice memos are limited to {max_seconds:g} seconds",
            413,
            {"max_seconds": max_seconds},
        )
    if not lenient and expected is not None and seconds < expected - max(0.5, expected * 0.02):
        raise AudioError(
            "truncated_audio",
            f"the recording is cut short: it says {expected:.1f} s but holds {seconds:.1f} s",
            details={"expected_seconds": round(expected, 2), "decoded_seconds": round(seconds, 2)},
        )
    return pcm.astype(np.float32, copy=False), content_type


# A decoder started mid-stream settles within a few frames (Opus asks for 80 ms of pre-roll).
PREROLL_SECONDS = 0.5


def decode_tail(data: bytes, start_seconds: float, rate: int = RATE) -> tuple[npt.NDArray[np.float32], float]:
    """What decodes so far of a recording still being made, from `start_seconds` on, and how
    many seconds it holds in all. Packets before the start (less a pre-roll) are read but not
    decoded, so following a long recording costs no more than following a short one; what has
    not fully arrived yet is left for the next time."""
    container = _open(data)
    chunks: list[npt.NDArray[np.float32]] = []
    first: float | None = None
    end = 0.0
    with container:
        if not container.streams.audio:
            raise AudioError("not_audio", "the file has no audio in it", 415)
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        with contextlib.suppress(av.error.FFmpegError, ValueError):
            for packet in container.demux(stream):
                if packet.pts is not None and packet.time_base is not None:
                    at = float(packet.pts * packet.time_base)
                    end = max(end, at + float((packet.duration or 0) * packet.time_base))
                    if at < start_seconds - PREROLL_SECONDS:
                        continue
                for frame in packet.decode():
                    first = frame.time or 0.0 if first is None else first
                    chunks.extend(_mono(out) for out in resampler.resample(frame))
            chunks.extend(_mono(out) for out in resampler.resample(None))
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    begins = first or 0.0
    skip = max(0, round((start_seconds - begins) * rate))
    return pcm[skip:], max(end, begins + len(pcm) / rate)


# --- is the file whole? ---------------------------------------------------------------------
# A recording cut short (a dropped upload, a crashed recorder) still decodes: FFmpeg plays what
# is there. Each container says how long its parts are, so a cut shows as a part that runs past
# the end of the file (or, for Ogg, a stream that never reaches its last page).

_EBML_MASTERS = {0x18538067, 0x1F43B675}  # Segment, Cluster: walked into; anything else skipped


def _vint(data: bytes, pos: int, *, keep_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer at `pos`: (value, next position, all ones = unknown)."""
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or pos + length > len(data):
        raise ValueError("bad EBML number")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[pos + 1 : pos + length]:
        value = value << 8 | byte
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, pos + length, unknown


def _webm_whole(data: bytes) -> bool:
    pos = 0
    while pos < len(data):
        try:
            element, pos, _ = _vint(data, pos, keep_marker=True)
            size, pos, unknown = _vint(data, pos, keep_marker=False)
        except (ValueError, IndexError):
            return False
        if element in _EBML_MASTERS:
            continue  # its children follow (a live recording's sizes are unknown)
        if unknown or pos + size > len(data):
            return False
        pos += size
    return True


def _ogg_whole(data: bytes) -> bool:
    pos, last_flags = 0, 0
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS" or pos + 27 > len(data):
            return False
        segments = data[pos + 26]
        table = data[pos + 27 : pos + 27 + segments]
        end = pos + 27 + segments + sum(table)
        if len(table) < segments or end > len(data):
            return False
        last_flags, pos = data[pos + 5], end
    return bool(last_flags & 0x04)  # the last page ends the stream


def _riff_whole(data: bytes) -> bool:
    pos = 12
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos + 4 : pos + 8], "little")
        if data[pos : pos + 4] == b"data" and size not in (0, 0xFFFFFFFF) and pos + 8 + size > len(data):
            return False
        pos += 8 + size + (size & 1)
    return True


def _mp4_whole(data: bytes) -> bool:
    pos = 0
    while pos + 8 <= len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        if size == 1 and pos + 16 <= len(data):
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        if size == 0:
            return True  # runs to the end of the file
        if size < 8 or pos + size > len(data):
            return False
        pos += size
    return pos == len(data)


_WHOLE = {"audio/webm": _webm_whole, "audio/ogg": _ogg_whole, "audio/wav": _riff_whole, "audio/mp4": _mp4_whole}


def check_whole(data: bytes, content_type: str) -> None:
    whole = _WHOLE.get(content_type)
    if whole is not None and not whole(data):
        raise AudioError("truncated_audio", "the recording is cut short: its last part is missing")


def peaks(pcm: npt.NDArray[np.float32], count: int = PEAKS) -> list[float]:
    """The loudest sample of each of `count` equal slices, scaled so the loudest is 1."""
    if not len(pcm):
        return [0.0] * count
    edges = np.linspace(0, len(pcm), count + 1).astype(int)
    loud = np.array([np.abs(pcm[a:b]).max() if b > a else 0.0 for a, b in itertools.pairwise(edges)])
    top = float(loud.max()) or 1.0
    return [round(float(v) / top, 3) for v in loud]


def inspect(source: Path, declared: str, max_seconds: float) -> Inspection:
    """Check a recording as a memo: readable audio of the declared kind, whole, not too long,
    not silent. The checks run on the decoded samples."""
    check_declared(declared)
    pcm, content_type = decode(source, max_seconds)
    check_whole(source.read_bytes(), content_type)
    kind = media_type(declared)
    if kind not in UNDECLARED and DECLARED[kind] != content_type:
        raise AudioError(
            "content_mismatch",
            f"the file says it is {kind} but it holds {content_type}",
            415,
            {"declared": kind, "found": content_type},
        )
    seconds = len(pcm) / RATE
    if seconds < MIN_SECONDS:
        raise AudioError("audio_too_short", f"the recording is {seconds:.2f} s long; say something first")
    if float(np.abs(pcm).max()) < SILENCE_PEAK:
        raise AudioError("silent_audio", "the recording is silent")
    return Inspection(content_type, round(seconds * 1000), peaks(pcm))


def remux(source: Path, target: Path) -> bool:
    """Copy a webm/Matroska recording's packets into a fresh webm, which (unlike a browser's
    live recording) states its duration and has cues, so players can seek. False when the
    source is not Matroska (kept as it is)."""
    with av.open(str(source), mode="r") as inp:
        if inp.format.name != "matroska,webm":
            return False
        stream = inp.streams.audio[0]
        with av.open(str(target), mode="w", format="webm") as out:
            copy = out.add_stream_from_template(stream)
            for packet in inp.demux(stream):
                if packet.dts is None:
                    continue
                packet.stream = copy
                out.mux(packet)
    return True


def decode_wav(data: bytes) -> tuple[npt.NDArray[np.float32], int]:
    """A WAV file's samples (mono float) at its own rate (espeak-ng's output)."""
    with _open(data) as container:
        stream = container.streams.audio[0]
        rate = stream.rate or RATE
        chunks = list(_frames(container, stream, rate))
    return (np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)), rate


def encode_ogg(pcm: npt.NDArray[np.float32], rate: int) -> bytes:
    """Mono float samples at `rate` as Ogg/Opus (what synthesized speech is served as)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="ogg") as out:
        stream = out.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        stream.bit_rate = 32_000
        frame = av.AudioFrame.from_ndarray(
            np.clip(pcm, -1, 1).astype(np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
        for part in [*resampler.resample(frame), *resampler.resample(None)]:
            for packet in stream.encode(part):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buffer.getvalue()
