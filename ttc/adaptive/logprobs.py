"""A compact, exact-length codec for per-token top-k log-probabilities.

Confidence rules (DeepConf) need, for every generated token, the top-k alternatives'
log-probabilities. Stored as JSON that is ~100 bytes a token; here it is k float16
negative log-probabilities a token, zlib-compressed: about 2k bytes a token before
compression. The store keeps the bytes opaque (``samples.logprobs``); only this
module reads or writes them, so the format can evolve behind its version byte.

Layout (little endian): ``b"TLP"``, version ``1`` (uint8), k (uint8), token count
(uint32), then zlib of a (tokens x k) float16 array of -logprob >= 0, best first per
token. NaN marks an alternative the provider did not return (fewer than k); -inf
log-probabilities (probability 0) are stored as the largest float16, 65504.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["decode_logprobs", "encode_logprobs", "from_openai_content", "token_confidence"]

_MAGIC = b"TLP"
_VERSION = 1
_HEADER = struct.Struct("<3sBBI")
_F16_MAX = float(np.finfo(np.float16).max)


def encode_logprobs(neg_logprobs: ArrayLike) -> bytes:
    """Bytes for a (tokens x k) array of negative log-probabilities (k <= 255).

    Values must be >= 0 (a log-probability is <= 0; tiny positive rounding of the
    provider's logprob is clipped to 0); NaN = alternative missing; +inf = probability 0.
    """
    arr = np.asarray(neg_logprobs, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a (tokens x k) array, got shape {arr.shape}")
    tokens, k = arr.shape
    if not 1 <= k <= 255:
        raise ValueError(f"k must lie in 1..255, got {k}")
    if tokens >= 2**32:
        raise ValueError("too many tokens for one trace")
    if (arr < -1e-4).any():
        raise ValueError("negative log-probabilities must be >= 0 (pass -logprob)")
    body = np.clip(arr, 0.0, _F16_MAX).astype("<f2")  # NaN passes through clip
    return _HEADER.pack(_MAGIC, _VERSION, k, tokens) + zlib.compress(body.tobytes(), 6)


def decode_logprobs(data: bytes) -> NDArray[np.float32]:
    """The (tokens x k) float32 array ``encode_logprobs`` stored; ValueError if corrupt."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"logprobs must be bytes, got {type(data).__name__}")
    raw = bytes(data)
    if len(raw) < _HEADER.size:
        raise ValueError("logprobs blob is truncated (no header)")
    magic, version, k, tokens = _HEADER.unpack_from(raw)
    if magic != _MAGIC:
        raise ValueError("not a ttc logprobs blob (bad magic)")
    if version != _VERSION:
        raise ValueError(f"logprobs format version {version} is not supported")
    if k == 0:
        raise ValueError("logprobs blob declares k = 0")
    try:
        body = zlib.decompress(raw[_HEADER.size:])
    except zlib.error as exc:
        raise ValueError(f"logprobs blob is corrupt: {exc}") from None
    if len(body) != tokens * k * 2:
        raise ValueError(f"logprobs blob holds {len(body)} bytes, expected {tokens * k * 2}")
    return np.frombuffer(body, dtype="<f2").reshape(tokens, k).astype(np.float32)


def from_openai_content(content: Sequence[dict[str, Any]], k: int) -> NDArray[np.float64]:
    """Rows for ``encode_logprobs`` from an OpenAI-style ``logprobs.content`` list.

    Each item has ``top_logprobs`` (alternatives with ``logprob``); the first k, best
    first, become one row; fewer become NaN. An item without alternatives falls back
    to its own ``logprob``. (Chat completions, vLLM, SGLang and llama.cpp all send this.)
    """
    out = np.full((len(content), k), np.nan)
    for i, item in enumerate(content):
        alts = item.get("top_logprobs") or [item]
        values = sorted((float(a["logprob"]) for a in alts
                         if isinstance(a.get("logprob"), (int, float))), reverse=True)[:k]
        out[i, : len(values)] = [-v for v in values]
    return out


def token_confidence(neg_logprobs: ArrayLike) -> NDArray[np.float64]:
    """DeepConf's token confidence: the mean of a token's top-k negative log-probabilities.

    High when the model is sure (the chosen token takes the mass, the alternatives
    are improbable). Missing alternatives are skipped; tokens with none are dropped.
    """
    arr = np.asarray(neg_logprobs, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected a (tokens x k) array, got shape {arr.shape}")
    have = ~np.isnan(arr)
    n = have.sum(axis=1)
    total = np.where(have, arr, 0.0).sum(axis=1)
    keep = n > 0
    return np.asarray(total[keep] / n[keep])
