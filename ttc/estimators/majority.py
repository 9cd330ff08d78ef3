"""majority@k: the exact expected credit of a plurality vote over a random k-subset.

Two exact kernels serve it, chosen by n alone (never by the data):

- n <= 1024: direct polynomial sums in the sample count (``_majority_direct``), errors
  ~1e-15, about ten times faster than the alternative at a few hundred samples;
- n > 1024: the Poissonised Fourier kernel (``_majority_fourier``), errors ~1e-14,
  O(n^1.5) for a whole curve and memory linear in n; it is what makes 10,000 samples
  a problem take about a second for every k.

Both depend only on the multiset of (class count, class credit) pairs and the number of
abstentions, so results are cached by that pattern: unanimous and near-unanimous
problems recur constantly.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import lru_cache
from typing import overload

import numpy as np
from numpy.typing import ArrayLike

from ttc.estimators._inputs import (
    FloatArray,
    IntArray,
    KArray,
    answer_classes,
    check_ks,
    out,
)
from ttc.estimators._majority_direct import DIRECT_MAX_N, majority_curve_direct
from ttc.estimators._majority_fourier import Pattern, p_grid, window_values

__all__ = ["majority_at_k", "majority_curve"]


@lru_cache(maxsize=1024)
def _direct_cached(pattern: Pattern, n_abstain: int) -> FloatArray:
    counts = np.array([c for c, _ in pattern], dtype=np.int64)
    credits = np.array([v for _, v in pattern], dtype=np.float64)
    curve = np.clip(majority_curve_direct(counts, credits, n_abstain), 0.0, 1.0)
    curve.flags.writeable = False
    return curve


@lru_cache(maxsize=16384)
def _fourier_cached(pattern: Pattern, n_abstain: int, window: int) -> FloatArray:
    n = n_abstain + sum(v for v, _ in pattern)
    p, k_lo, k_hi = p_grid(n)[window]
    values = window_values(pattern, n_abstain, p, k_lo, k_hi)
    values.flags.writeable = False
    return values


def clear_caches() -> None:
    """Forget every cached curve (benchmarks time cold computations)."""
    _direct_cached.cache_clear()
    _fourier_cached.cache_clear()


def majority_curve(
    counts: IntArray, credits: FloatArray, n_abstain: int, ks: IntArray, *, kernel: str = "auto"
) -> FloatArray:
    """majority@k at each k in ks for classes with these counts and credits.

    ``kernel`` is "auto" (by n), "direct" (n <= 1024 only) or "fourier"; the choice
    changes nothing but speed and the last few digits, which the tests check.
    """
    pattern: Pattern = tuple(sorted(zip(counts.tolist(), credits.tolist(), strict=True)))
    n = n_abstain + int(counts.sum())
    if kernel not in ("auto", "direct", "fourier"):
        raise ValueError(f"kernel must be 'auto', 'direct' or 'fourier', got {kernel!r}")
    if kernel == "direct" and n > DIRECT_MAX_N:
        raise ValueError(f"the direct kernel serves n <= {DIRECT_MAX_N}, got n = {n}")
    if kernel == "direct" or (kernel == "auto" and n <= DIRECT_MAX_N):
        return np.asarray(_direct_cached(pattern, n_abstain)[ks])
    grid = p_grid(n)
    lows = np.array([lo for _, lo, _ in grid])
    which = np.searchsorted(lows, ks, side="right") - 1
    values = np.empty(ks.size)
    for w in np.unique(which).tolist():
        pick = which == w
        values[pick] = _fourier_cached(pattern, n_abstain, w)[ks[pick] - grid[w][1]]
    return values


@overload
def majority_at_k(answers: Sequence[Hashable | None], correct: ArrayLike, k: int) -> float: ...
@overload
def majority_at_k(
    answers: Sequence[Hashable | None], correct: ArrayLike, k: KArray
) -> FloatArray: ...
def majority_at_k(
    answers: Sequence[Hashable | None], correct: ArrayLike, k: int | KArray
) -> float | FloatArray:
    """Exact expected credit of a plurality vote over a uniformly random k-subset.

    ``answers`` are answer classes (``None``, NaN, ``pd.NA`` = no answer: it takes a
    slot, casts no vote); tied winners share the credit equally; a subset of abstentions
    scores 0. Samples of one class should share correctness; if not, the class mean is
    used. ``correct`` is credit in [0, 1] (ignored, and may be NaN, for abstentions).
    """
    ids, credit, counts = answer_classes(answers, correct)
    ks, scalar = check_ks(k, ids.size)
    return out(majority_curve(counts, credit, int((ids < 0).sum()), ks), scalar)
