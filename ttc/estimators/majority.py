"""majority@k, exact for every k, at n = 10,000 samples and beyond.

The estimand: the expected credit of a plurality vote over a uniformly random k-subset
of a problem's n samples (ties share the credit; abstentions take a slot and cast no
vote). ``docs/estimators.md`` derives the method; in short:

*Poissonise.* Keep each sample independently with probability p. Class b then gets
X_b ~ Binomial(n_b, p) votes, independently, and conditional on the total S = k the kept
set is a uniform k-subset, whatever p is. So

    majority@k = E_p[credit * 1{S = k}] / P_p(S = k),

and for each k we may pick the p that makes {S = k} likely (p near k / n): every
quantity is then a probability, not a count of subsets (C(10000, 5000) ~ 1e3008), and
nothing overflows or cancels.

*Levels and ties.* Class a wins with j votes when every other class has fewer than j,
or exactly j (a tie, shared among t + 1 winners: 1/(t+1) = int_0^1 u^t du). With A_b(z) =
sum_{i<j} P(X_b = i) z^i and B_b(z) = P(X_b = j) z^j, the generating function of the
credited outcome in the total S is

    G(z) = sum_j sum_a c_a B_a(z) int_0^1 prod_{b != a} (A_b(z) + u B_b(z)) du,

and E_p[credit * 1{S = k}] = [z^k] G. We evaluate G at N roots of unity (each class's
partial sums A_b are running sums of its pmf times a phase) and invert with one FFT.
The u-integral is Gauss-Legendre quadrature, exact for its polynomial degree; several
credited classes are summed with first-order dual numbers; classes with equal counts are
grouped (one power per group).

*Only what matters.* Under Bernstein's inequality each Binomial(n_b, p) has all but
1e-20 of its mass in a window of about +-9.6 standard deviations; outside that a pmf is
taken as 0 (total error below 1e-16 per class after division by P(S = k)). A level j
counts only where every class can be at most j and some credited class can be exactly
j; classes whose window lies below j merge into one Binomial(n_inert, p). The cost per p
is (levels) x (FFT length) ~ n p (1 - p) x 400, and about (pi / 4) sqrt(n) values of p
cover every k (each serves the k within 2 standard deviations of n p), so a whole curve
costs O(n^1.5) and memory is a fixed block plus O(n).

Errors: a few 1e-14 in practice; the tests compare with exact rational arithmetic at
n = 1,000 ... 10,000 and with enumeration of every subset for small n.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from functools import lru_cache
from typing import overload

import numpy as np
from numpy.typing import ArrayLike
from scipy import fft as sfft
from scipy import special, stats

from ttc.estimators._inputs import (
    FloatArray,
    IntArray,
    KArray,
    answer_classes,
    check_ks,
    out,
)

__all__ = ["majority_at_k"]

#: Mass of each binomial left outside its window.
_TAIL = 1e-20
_LOG_TAIL = math.log(1.0 / _TAIL)
#: Each p serves the k within this many standard deviations of n p (P(S = k) >= e^-2 of
#: its peak, which bounds how much rounding the division by P(S = k) amplifies).
_SPREAD = 2.0
#: Complex elements in one (levels x frequencies) block: 2 MB per array.
_BLOCK = 1 << 17

Pattern = tuple[tuple[int, float], ...]


def _window(m: int, p: float) -> tuple[int, int]:
    """[lo, hi] holding all but < _TAIL of Binomial(m, p) on each side (Bernstein)."""
    var = m * p * (1.0 - p)
    t = _LOG_TAIL / 3.0 + math.sqrt(_LOG_TAIL**2 / 9.0 + 2.0 * var * _LOG_TAIL)
    mu = m * p
    return max(0, math.floor(mu - t)), min(m, math.ceil(mu + t))


def _half_width(c: float, n: int) -> int:
    return max(1, int(_SPREAD * math.sqrt(max(c * (n - c) / n, 0.0))))


@lru_cache(maxsize=256)
def p_grid(n: int) -> tuple[tuple[float, int, int], ...]:
    """(p, k_lo, k_hi) triples whose k-ranges partition 1..n."""
    out_: list[tuple[float, int, int]] = []
    k = 1
    while k <= n:
        c = min(k + _half_width(k, n), n)
        c = min(k + _half_width(c, n), n)
        hi = min(n, c + _half_width(c, n))
        p = min(max(float(c), 0.5), n - 0.5) / n
        out_.append((p, k, hi))
        k = hi + 1
    return tuple(out_)


@lru_cache(maxsize=256)
def _gauss01(q: int) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights on [0, 1]: exact for polynomials of degree < 2q."""
    x, w = special.roots_legendre(q)
    return (np.asarray(x) + 1.0) / 2.0, np.asarray(w) / 2.0


def _cpow(base: np.ndarray, e: int) -> np.ndarray:
    """base**e for a complex array and integer e >= 0, by repeated squaring."""
    result: np.ndarray | None = None
    while e:
        if e & 1:
            result = base if result is None else result * base
        e >>= 1
        if e:
            base = base * base
    return np.ones_like(base) if result is None else result


def _placed_fft(lo: int, pmf: FloatArray, n_fft: int) -> np.ndarray:
    """DFT (numpy's sign) of a pmf supported on lo..lo+len-1, positions taken mod n_fft."""
    buf = np.zeros(n_fft)
    np.add.at(buf, (lo + np.arange(pmf.size)) % n_fft, pmf)
    return np.asarray(sfft.fft(buf))


def _binom_cf(m: int, p: float, n_fft: int) -> np.ndarray:
    if m == 0:
        return np.ones(n_fft, dtype=complex)
    lo, hi = _window(m, p)
    return _placed_fft(lo, stats.binom.pmf(np.arange(lo, hi + 1), m, p), n_fft)


def _window_values(pattern: Pattern, n_abstain: int, p: float, k_lo: int, k_hi: int) -> FloatArray:
    """majority@k for k = k_lo..k_hi, all from one p."""
    values = np.array([v for v, _ in pattern], dtype=np.int64)
    credit = np.array([c for _, c in pattern], dtype=np.float64)
    out_ = np.zeros(k_hi - k_lo + 1)
    if values.size == 0 or not credit.any():
        return out_
    # group classes of equal count: identical factors, one power per group
    sizes, inverse = np.unique(values, return_inverse=True)
    mult = np.bincount(inverse).astype(np.int64)
    csum = np.bincount(inverse, weights=credit)
    n = n_abstain + int(values.sum())
    wins = [_window(int(v), p) for v in sizes]
    lo_g = np.array([w[0] for w in wins])
    hi_g = np.array([w[1] for w in wins])
    credited = csum > 0
    j_start = max(1, int(lo_g.max()))  # every class must be able to sit at or below j
    j_end = int(hi_g[credited].max())  # some credited class must be able to reach j
    if j_start > j_end:
        return out_
    lo_s, hi_s = _window(n, p)
    n_fft = sfft.next_fast_len(hi_s - lo_s + 1)
    phase = np.exp(-2j * np.pi * np.arange(n_fft) / n_fft)
    freqs = np.arange(n_fft, dtype=np.int64)

    live = [g for g in range(sizes.size) if hi_g[g] >= j_start]
    pmf: dict[int, FloatArray] = {}
    partial: dict[int, np.ndarray] = {}  # A_g at the current level: sum_{i < j} pmf z^i
    for g in live:
        support = np.arange(lo_g[g], hi_g[g] + 1)
        pmf[g] = stats.binom.pmf(support, int(sizes[g]), p)
        below = support < j_start
        partial[g] = _placed_fft(int(lo_g[g]), np.where(below, pmf[g], 0.0), n_fft)

    bounds = sorted({int(hi_g[g]) + 1 for g in live if j_start < hi_g[g] + 1 <= j_end})
    starts = [j_start, *bounds]
    ends = [b - 1 for b in bounds] + [j_end]
    total = np.zeros(n_fft, dtype=complex)
    for s0, s1 in zip(starts, ends, strict=True):
        active = [g for g in live if hi_g[g] >= s0]
        if not any(credited[g] for g in active):
            break  # the active set only shrinks from here
        n_inert = n - int(sum(int(sizes[g]) * int(mult[g]) for g in active))
        inert_cf = _binom_cf(n_inert, p, n_fft)
        u_nodes, u_weights = _gauss01(max(1, (int(mult[active].sum()) + 1) // 2))
        seg = np.zeros(n_fft, dtype=complex)
        rows = max(1, _BLOCK // n_fft)
        for c0 in range(s0, s1 + 1, rows):
            levels = np.arange(c0, min(c0 + rows, s1 + 1), dtype=np.int64)
            phi = phase[(levels[:, None] * freqs[None, :]) % n_fft]
            terms: list[tuple[int, np.ndarray, np.ndarray]] = []
            for g in active:
                idx = levels - lo_g[g]
                inside = (idx >= 0) & (idx < pmf[g].size)
                f = np.where(inside, pmf[g][np.clip(idx, 0, pmf[g].size - 1)], 0.0)
                at = f[:, None] * phi  # B_g(z) at each level
                below = np.cumsum(at, axis=0)
                below -= at
                below += partial[g]
                partial[g] = partial[g] + at.sum(axis=0)
                terms.append((g, below, at))
            for u, wt in zip(u_nodes.tolist(), u_weights.tolist(), strict=True):
                val: np.ndarray | None = None
                dual: np.ndarray | None = None
                for g, below, at in terms:
                    base = below + u * at
                    m = int(mult[g])
                    pm1 = _cpow(base, m - 1) if m > 1 else None
                    v = base if pm1 is None else pm1 * base
                    d = None
                    if credited[g]:
                        d = csum[g] * at if pm1 is None else csum[g] * at * pm1
                    if val is None:
                        val, dual = v, d
                        continue
                    new_dual = None if dual is None else dual * v
                    if d is not None:
                        new_dual = val * d if new_dual is None else new_dual + val * d
                    val, dual = val * v, new_dual
                if dual is not None:
                    seg += wt * dual.sum(axis=0)
        total += seg * inert_cf
    joint = np.real(sfft.ifft(total))
    ks = np.arange(k_lo, k_hi + 1)
    p_total = stats.binom.pmf(ks, n, p)
    return np.clip(joint[ks % n_fft] / p_total, 0.0, 1.0)


@lru_cache(maxsize=16384)
def _window_cached(pattern: Pattern, n_abstain: int, window: int) -> FloatArray:
    """The values depend only on the multiset of (count, credit) pairs: unanimous and
    near-unanimous problems recur constantly, so each p-window is computed once."""
    n = n_abstain + sum(v for v, _ in pattern)
    p, k_lo, k_hi = p_grid(n)[window]
    values = _window_values(pattern, n_abstain, p, k_lo, k_hi)
    values.flags.writeable = False
    return values


def majority_curve(counts: IntArray, credits: FloatArray, n_abstain: int, ks: IntArray) -> FloatArray:
    """majority@k at each k in ks for classes with these counts and credits."""
    pattern: Pattern = tuple(sorted(zip(counts.tolist(), credits.tolist(), strict=True)))
    n = n_abstain + int(counts.sum())
    grid = p_grid(n)
    lows = np.array([lo for _, lo, _ in grid])
    which = np.searchsorted(lows, ks, side="right") - 1
    values = np.empty(ks.size)
    for w in np.unique(which).tolist():
        pick = which == w
        values[pick] = _window_cached(pattern, n_abstain, w)[ks[pick] - grid[w][1]]
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
