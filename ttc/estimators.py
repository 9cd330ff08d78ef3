"""Exact, unbiased estimators of k-sample metrics from n >= k stored samples.

Each estimator is the average of a metric over all C(n, k) subsets of size k of the
n samples of one problem (a U-statistic: unbiased for the metric on k fresh samples,
and the minimum-variance unbiased estimator among functions of the n samples). Peers
take the first k samples or average random permutations; here every k comes from one
closed form, so a whole curve k = 1..n costs about as much as a single point.
Formulas and references: ``docs/estimators.md``.

``k`` is an int (a float comes back) or an array of ints in ``1..n`` (an array comes
back). Binomials are never formed directly: products of ratios, log-gamma or scaled
nonnegative polynomial arithmetic keep every result exact to ~1e-12 for n up to 1024.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import combinations
from typing import Any, overload

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray
from scipy import special, stats

__all__ = [
    "MAX_MAJORITY_N",
    "Estimate",
    "best_of_k",
    "g_pass_at_k",
    "majority_at_k",
    "pass_at_k",
    "pass_hat_k",
    "weighted_majority_at_k",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
#: Several k at once: a list of ints or an integer array.
KArray = Sequence[int] | NDArray[np.integer[Any]]

#: Largest n the exact majority vote accepts: its scaled coefficients stay in float range.
MAX_MAJORITY_N = 2000


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value with its Monte Carlo standard error (0.0 where it was computed exactly).

    For an array of k, ``value``, ``stderr`` and ``exact`` are arrays aligned with k.
    """

    value: float | FloatArray
    stderr: float | FloatArray
    exact: bool | NDArray[np.bool_]


# --------------------------------------------------------------------------- helpers


def _ks(k: int | KArray, n: int) -> tuple[IntArray, bool]:
    """Validate k against n; return the ks as an int array and whether k was a scalar."""
    if n < 1:
        raise ValueError("need at least one sample (n >= 1)")
    arr = np.asarray(k)
    scalar = arr.ndim == 0
    arr = np.atleast_1d(arr)
    if arr.dtype.kind == "f" and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"k must be an int or an array of ints, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 1 or arr.max() > n):
        raise ValueError(f"k must lie in 1..n = 1..{n}, got {arr.min()}..{arr.max()}")
    return arr, scalar


def _out(values: FloatArray, scalar: bool) -> float | FloatArray:
    return float(values[0]) if scalar else values


def _check_nc(n: int, c: int) -> None:
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")


def _log_ratio_curve(n: int, removed: int) -> FloatArray:
    """log C(n - removed, k) / C(n, k) for k = 0..n (-inf where k > n - removed).

    A running sum of log1p(-removed / (n - j)), j < k: the product form of Chen et al.,
    free of overflow and of cancellation.
    """
    out = np.full(n + 1, -np.inf)
    out[0] = 0.0
    kmax = n - removed
    if kmax >= 1:
        j = np.arange(kmax, dtype=np.float64)
        out[1 : kmax + 1] = np.cumsum(np.log1p(-removed / (n - j)))
    return out


# --------------------------------------------------------------------------- pass


@overload
def pass_at_k(n: int, c: int, k: int) -> float: ...
@overload
def pass_at_k(n: int, c: int, k: KArray) -> FloatArray: ...
def pass_at_k(n: int, c: int, k: int | KArray) -> float | FloatArray:
    """P(at least one of k samples drawn without replacement is correct): 1 - C(n-c,k)/C(n,k).

    The unbiased pass@k estimator of Chen et al. (2021), in product form.
    """
    _check_nc(n, c)
    ks, scalar = _ks(k, n)
    return _out(-np.expm1(_log_ratio_curve(n, c)[ks]), scalar)


@overload
def pass_hat_k(n: int, c: int, k: int) -> float: ...
@overload
def pass_hat_k(n: int, c: int, k: KArray) -> FloatArray: ...
def pass_hat_k(n: int, c: int, k: int | KArray) -> float | FloatArray:
    """pass^k (Yao et al. 2024, tau-bench): P(all k drawn samples are correct) = C(c,k)/C(n,k)."""
    _check_nc(n, c)
    ks, scalar = _ks(k, n)
    return _out(np.exp(_log_ratio_curve(n, n - c)[ks]), scalar)


@overload
def g_pass_at_k(n: int, c: int, k: int, tau: float) -> float: ...
@overload
def g_pass_at_k(n: int, c: int, k: KArray, tau: float) -> FloatArray: ...
def g_pass_at_k(n: int, c: int, k: int | KArray, tau: float) -> float | FloatArray:
    """G-Pass@k_tau (Liu et al. 2024): P(at least ceil(tau * k) of k drawn samples are correct).

    A hypergeometric upper tail; tau in (0, 1]. tau -> 0 gives pass@k, tau = 1 pass^k.
    """
    _check_nc(n, c)
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must lie in (0, 1], got {tau}")
    ks, scalar = _ks(k, n)
    need = np.ceil(tau * ks - 1e-12).astype(np.int64)
    values = stats.hypergeom.sf(need - 1, n, c, ks).astype(np.float64)
    return _out(np.clip(values, 0.0, 1.0), scalar)


# --------------------------------------------------------------------------- best-of


def _log_factorials(n: int) -> FloatArray:
    return np.asarray(special.gammaln(np.arange(n + 1, dtype=np.float64) + 1.0))


@lru_cache(maxsize=8)
def _max_rank_table(n: int) -> FloatArray:
    """W[k-1, i] = P(the top of a random k-subset is rank i+1 of n) = C(i, k-1) / C(n, k).

    Log-gamma keeps each entry to ~1e-12 relative for n up to 1024 and beyond; cached,
    since every problem with n samples shares it.
    """
    lf = _log_factorials(n)
    i = np.arange(n)[None, :]  # rank - 1
    kk = np.arange(1, n + 1)[:, None]
    valid = i >= kk - 1
    ii = np.where(valid, i, kk - 1)
    logw = lf[ii] - lf[kk - 1] - lf[ii - kk + 1] - (lf[n] - lf[kk] - lf[n - kk])
    table = np.where(valid, np.exp(logw), 0.0)
    table.flags.writeable = False
    return table


@overload
def best_of_k(scores: ArrayLike, correct: ArrayLike, k: int) -> float: ...
@overload
def best_of_k(scores: ArrayLike, correct: ArrayLike, k: KArray) -> FloatArray: ...
def best_of_k(scores: ArrayLike, correct: ArrayLike, k: int | KArray) -> float | FloatArray:
    """Expected credit of the top-scored sample of a uniformly random k-subset.

    Ties in score are broken uniformly at random, which equals giving every sample the
    mean credit of its tied-score group. ``correct`` may be graded (any floats).
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    c = np.asarray(correct, dtype=np.float64).ravel()
    if s.shape != c.shape:
        raise ValueError(f"scores and correct differ in length: {s.size} vs {c.size}")
    if np.isnan(s).any() or np.isnan(c).any():
        raise ValueError("scores and correct must not contain NaN")
    ks, scalar = _ks(k, s.size)
    order = np.argsort(s, kind="stable")
    s_sorted = s[order]
    _, group = np.unique(s_sorted, return_inverse=True)
    group_mean = np.bincount(group, weights=c[order]) / np.bincount(group)
    credit = group_mean[group]
    return _out(_max_rank_table(s.size)[ks - 1] @ credit, scalar)


# --------------------------------------------------------------------------- majority


@lru_cache(maxsize=4096)
def _scaled_binom(v: int) -> FloatArray:
    """C(v, i) * 2**(-v/2), i = 0..v, by a running product (relative error ~ i * eps).

    Every sample carries one factor 2**-0.5, so products over classes stay within
    float range for totals up to MAX_MAJORITY_N and every ratio is unchanged.
    """
    i = np.arange(1, v + 1, dtype=np.float64)
    out = np.empty(v + 1)
    out[0] = 2.0 ** (-v / 2.0)
    out[1:] = out[0] * np.cumprod((v - i + 1.0) / i)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=512)
def _gauss01(q: int) -> tuple[FloatArray, FloatArray]:
    """Gauss-Legendre nodes and weights on [0, 1]: exact for polynomials of degree < 2q."""
    x, w = np.polynomial.legendre.leggauss(q)
    return (x + 1.0) / 2.0, w / 2.0


def _bconv(a: FloatArray, b: FloatArray) -> FloatArray:
    """Row-wise polynomial product of (rows, la) and (rows, lb) arrays, by direct sums.

    Direct sums of nonnegative terms keep full relative precision at every coefficient,
    which an FFT (error relative to the largest coefficient) would not.
    """
    rows = a.shape[0]
    if a.shape[1] < b.shape[1]:
        a, b = b, a
    la, lb = a.shape[1], b.shape[1]
    if lb == 1:
        return a * b
    if rows <= 3:
        return np.stack([np.convolve(a[r], b[r]) for r in range(rows)])
    if lb <= 12:
        out = np.zeros((rows, la + lb - 1))
        for s in range(lb):
            out[:, s : s + la] += a * b[:, s : s + 1]
        return out
    pad = np.zeros((rows, la + 2 * (lb - 1)))
    pad[:, lb - 1 : lb - 1 + la] = a
    windows = sliding_window_view(pad, lb, axis=1)
    return np.asarray(np.matmul(windows, b[:, ::-1, None])[..., 0])


def _bpow(f: FloatArray, m: int) -> FloatArray:
    """f**m row-wise by binary exponentiation (m >= 0)."""
    result: FloatArray | None = None
    base = f
    while m:
        if m & 1:
            result = base if result is None else _bconv(result, base)
        m >>= 1
        if m:
            base = _bconv(base, base)
    return np.ones((f.shape[0], 1)) if result is None else result


def _add(a: FloatArray, b: FloatArray) -> FloatArray:
    if a.shape[1] < b.shape[1]:
        a, b = b, a
    out = a.copy()
    out[:, : b.shape[1]] += b
    return out


def _segment(
    lo: int, hi: int, values: IntArray, mult: IntArray, credit_sum: FloatArray
) -> FloatArray:
    """Sum over levels j = lo..hi, sharing one active class set, of the credited products.

    Rows are (level, quadrature node) pairs, so a whole segment of levels is a handful of
    array operations. Returns a polynomial in x, already integrated over u.
    """
    u, w = _gauss01((int(mult.sum()) + 1) // 2)
    n_levels = hi - lo + 1
    jr = np.repeat(np.arange(lo, hi + 1), u.size)
    ur = np.tile(u, n_levels)
    wr = np.tile(w, n_levels)
    rows, width = jr.size, hi + 1
    below = np.arange(width)[None, :] < jr[:, None]
    at = np.arange(width)[None, :] == jr[:, None]
    powers: list[FloatArray] = []
    duals: list[FloatArray] = []
    for v, m, c in zip(values.tolist(), mult.tolist(), credit_sum.tolist(), strict=True):
        b = _scaled_binom(v)
        f = np.where(below, b[:width], 0.0)
        f[at] = ur * b[jr]
        pm1 = _bpow(f, m - 1)
        powers.append(_bconv(pm1, f) if m > 1 else f)
        if c == 0.0:
            duals.append(np.zeros((rows, 1)))
            continue
        dual = np.zeros((rows, pm1.shape[1] + hi))
        idx = jr[:, None] + np.arange(pm1.shape[1])[None, :]
        np.put_along_axis(dual, idx, pm1 * (c * b[jr])[:, None], axis=1)
        duals.append(dual)
    credited = [g for g, c in enumerate(credit_sum.tolist()) if c != 0.0]
    if not credited:
        return np.zeros(1)
    if len(credited) <= 2:  # product of the others, once per credited group
        acc = np.zeros((rows, 1))
        for a in credited:
            prod = duals[a]
            for g, pm in enumerate(powers):
                if g != a:
                    prod = _bconv(prod, pm)
            acc = _add(acc, prod)
    else:  # first-order dual numbers: (P + eps D)(Q + eps E) = PQ + eps (PE + DQ)
        val, acc = powers[0], duals[0]
        for pm, dual in zip(powers[1:], duals[1:], strict=True):
            acc = _add(_bconv(acc, pm), _bconv(val, dual))
            val = _bconv(val, pm)
    return np.asarray(wr @ acc)


def _majority_curve(counts: IntArray, credits: FloatArray, n_abstain: int) -> FloatArray:
    """Exact expected plurality-vote credit for every k = 0..n (entry 0 is 0).

    For class a with j votes to win, every other class b must get fewer than j votes,
    or exactly j (a tie shared among t+1 winners). With L_b = sum_{i<j} C(n_b,i) x^i and
    T_b = C(n_b,j) x^j, and 1/(t+1) = integral of u^t over [0, 1],

        credit_k = sum_j sum_a c_a [x^k] T_a (1+x)^R_j  int_0^1 prod_{b != a} (L_b + u T_b) du
                   / C(n, k)

    where R_j counts abstentions and classes too small to reach j. Classes with equal
    counts are grouped; levels j sharing one set of contending classes are batched; the
    u-integral is Gauss-Legendre quadrature (exact for these polynomials). All terms are
    nonnegative, so no cancellation occurs.
    """
    n = int(n_abstain + counts.sum())
    total = np.zeros(n + 1)
    if counts.size == 0:
        return total
    values, inverse = np.unique(counts, return_inverse=True)
    mult = np.bincount(inverse)
    credit_sum = np.bincount(inverse, weights=credits).astype(np.float64)
    desc = np.sort(counts)[::-1]
    v1 = int(desc[0])
    v2 = int(desc[1]) if desc.size > 1 else 0

    if v1 > v2:  # levels j in (v2, v1]: the single largest class wins outright
        top = _scaled_binom(v1).copy()
        top[: v2 + 1] = 0.0
        c_top = float(credits[int(np.argmax(counts))])
        total += c_top * np.convolve(top, _scaled_binom(n - v1))

    for g in range(values.size):  # levels (values[g-1], values[g]]: groups g.. contend
        lo = int(values[g - 1]) + 1 if g else 1
        hi = min(int(values[g]), v2)
        if lo > hi or not credit_sum[g:].any():  # nothing credited can win at these levels
            continue
        poly = _segment(lo, hi, values[g:], mult[g:], credit_sum[g:])
        rest = n - int((values[g:] * mult[g:]).sum())
        level = np.convolve(poly, _scaled_binom(rest))
        total[: min(level.size, n + 1)] += level[: n + 1]
    return total / _scaled_binom(n)


def _classes(
    answers: Sequence[Hashable | None], correct: ArrayLike
) -> tuple[IntArray, FloatArray, IntArray]:
    """Map answers to class ids (-1 = abstention); return ids, per-class credit, counts."""
    c = np.asarray(correct, dtype=np.float64).ravel()
    if len(answers) != c.size:
        raise ValueError(f"answers and correct differ in length: {len(answers)} vs {c.size}")
    index: dict[Hashable, int] = {}
    ids = np.empty(c.size, dtype=np.int64)
    for pos, a in enumerate(answers):
        missing = a is None or (isinstance(a, float) and math.isnan(a))  # pandas writes NaN
        ids[pos] = -1 if missing else index.setdefault(a, len(index))
    voted = ids >= 0
    if np.isnan(c[voted]).any():
        raise ValueError("correct must not be NaN for samples that give an answer")
    counts = np.bincount(ids[voted], minlength=len(index)).astype(np.int64)
    credit = np.bincount(ids[voted], weights=c[voted], minlength=len(index)).astype(np.float64)
    credit = np.divide(credit, counts, out=np.zeros(len(index)), where=counts > 0)
    return ids, credit, counts


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

    ``answers`` are answer classes (``None`` or NaN = no answer: it takes a slot, casts
    no vote); tied winners share the credit equally; a subset of abstentions scores 0.
    Samples of one class should share correctness; if not, the class mean is used.
    """
    ids, credit, counts = _classes(answers, correct)
    n = ids.size
    ks, scalar = _ks(k, n)
    if n > MAX_MAJORITY_N:
        raise ValueError(f"majority_at_k supports n <= {MAX_MAJORITY_N}, got {n}")
    pattern = tuple(sorted(zip(counts.tolist(), credit.tolist(), strict=True)))
    curve = _majority_curve_cached(pattern, int((ids < 0).sum()))
    return _out(np.clip(curve[ks], 0.0, 1.0), scalar)


@lru_cache(maxsize=1024)
def _majority_curve_cached(pattern: tuple[tuple[int, float], ...], n_abstain: int) -> FloatArray:
    """The curve depends only on the multiset of (count, credit) pairs: unanimous and
    near-unanimous problems recur constantly, so they are computed once."""
    counts = np.array([c for c, _ in pattern], dtype=np.int64)
    credits = np.array([v for _, v in pattern], dtype=np.float64)
    curve = _majority_curve(counts, credits, n_abstain)
    curve.flags.writeable = False
    return curve


# --------------------------------------------------------------------------- weighted


def _weighted_vote(
    subsets: IntArray,
    ids: IntArray,
    weights: FloatArray,
    credit: FloatArray,
    *,
    left_out: bool = False,
) -> FloatArray:
    """Credit of a score-weighted plurality vote for each row of sample indices.

    With ``left_out`` the rows list the samples *not* in the subset (cheaper for k > n/2):
    class totals are then the full totals minus the left-out ones.
    """
    rows = subsets.shape[0]
    m = credit.size
    if m == 0:
        return np.zeros(rows)
    cls = ids[subsets]
    voted = cls >= 0
    flat = (np.arange(rows)[:, None] * m + cls)[voted]
    tot = np.bincount(flat, weights=weights[subsets][voted], minlength=rows * m).reshape(rows, m)
    cnt = np.bincount(flat, minlength=rows * m).reshape(rows, m)
    if left_out:
        keep = ids >= 0
        tot = np.bincount(ids[keep], weights=weights[keep], minlength=m) - tot
        cnt = np.bincount(ids[keep], minlength=m) - cnt
    present = cnt > 0
    tot = np.where(present, tot, -np.inf)
    best = tot.max(axis=1, keepdims=True)
    win = present & (tot >= best - 1e-12 * (1.0 + weights.sum()))
    n_win = win.sum(axis=1)
    return np.divide((win * credit).sum(axis=1), n_win, out=np.zeros(rows), where=n_win > 0)


def _weighted_vote_mc(
    ids: IntArray,
    weights: FloatArray,
    credit: FloatArray,
    ks: IntArray,
    n_mc: int,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation of the vote credit of the first k of random permutations.

    Every prefix of a uniform permutation is a uniform k-subset, so one running sum of
    per-class weights per permutation serves every k.
    """
    n, m = ids.size, credit.size
    if m == 0:
        return np.zeros(ks.size), np.zeros(ks.size)
    s1 = np.zeros(ks.size)
    s2 = np.zeros(ks.size)
    chunk = max(1, 4_000_000 // (n * m))
    done = 0
    while done < n_mc:
        size = min(chunk, n_mc - done)
        perms = np.argsort(rng.random((size, n)), axis=1)
        cls = ids[perms]
        b, t = np.nonzero(cls >= 0)
        tot = np.zeros((size, n, m))
        tot[b, t, cls[b, t]] = weights[perms[b, t]]
        cnt = np.zeros((size, n, m), dtype=np.int32)
        cnt[b, t, cls[b, t]] = 1
        tot = np.cumsum(tot, axis=1)[:, ks - 1, :]
        present = np.cumsum(cnt, axis=1)[:, ks - 1, :] > 0
        tot = np.where(present, tot, -np.inf)
        best = tot.max(axis=2, keepdims=True)
        win = present & (tot >= best - 1e-12 * np.abs(best))
        n_win = win.sum(axis=2)
        vals = np.divide(
            (win * credit).sum(axis=2), n_win, out=np.zeros(n_win.shape), where=n_win > 0
        )
        s1 += vals.sum(axis=0)
        s2 += (vals**2).sum(axis=0)
        done += size
    mean = s1 / n_mc
    var = np.maximum(s2 / n_mc - mean**2, 0.0) * n_mc / (n_mc - 1)
    return mean, np.sqrt(var)


def weighted_majority_at_k(
    answers: Sequence[Hashable | None],
    scores: ArrayLike,
    correct: ArrayLike,
    k: int | KArray,
    *,
    exact_limit: int = 200_000,
    n_mc: int = 2000,
    rng: np.random.Generator | None = None,
) -> Estimate:
    """Expected credit of a score-weighted vote over a random k-subset.

    Each class scores the sum of its members' scores (nonnegative vote weights: use
    probabilities, not logits); the highest total wins, ties share the credit. Exact
    (enumerating all subsets) where C(n, k) * min(k, n - k) <= ``exact_limit``; else the
    mean over the first k of ``n_mc`` random permutations, with its standard error.
    Weighted sums admit no closed form, unlike the unweighted vote.
    """
    ids, credit, _ = _classes(answers, correct)
    w = np.asarray(scores, dtype=np.float64).ravel()
    n = ids.size
    if w.size != n:
        raise ValueError(f"answers and scores differ in length: {n} vs {w.size}")
    if np.isnan(w).any() or (w < 0).any():
        raise ValueError("weighted majority needs nonnegative, non-NaN scores as vote weights")
    ks, scalar = _ks(k, n)
    value = np.empty(ks.size)
    stderr = np.zeros(ks.size)
    sizes = [int(kk) for kk in ks]
    exact = np.array([math.comb(n, kk) * min(kk, n - kk) <= exact_limit for kk in sizes])
    for pos in np.nonzero(exact)[0]:
        size = int(ks[pos])
        flip = size > n - size  # enumerate the smaller side: the samples left out
        picks = n - size if flip else size
        combos = list(combinations(range(n), picks))
        subsets = np.array(combos, dtype=np.int64).reshape(len(combos), picks)
        value[pos] = _weighted_vote(subsets, ids, w, credit, left_out=flip).mean()
    mc = np.nonzero(~exact)[0]
    if mc.size:
        if n_mc < 2:
            raise ValueError("n_mc must be at least 2 for a standard error")
        gen = rng if rng is not None else np.random.default_rng()
        mean, sd = _weighted_vote_mc(ids, w, credit, ks[mc], n_mc, gen)
        value[mc] = mean
        stderr[mc] = sd / np.sqrt(n_mc)
    if scalar:
        return Estimate(float(value[0]), float(stderr[0]), bool(exact[0]))
    return Estimate(value, stderr, exact)
