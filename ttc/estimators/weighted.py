"""Score-weighted majority vote: exact by enumeration where that is cheap, else Monte
Carlo over random permutations with an honest standard error.

Sums of real vote weights admit no counting closed form (which subsets beat which is a
subset-sum question), unlike the unweighted vote, so exactness is available only by
enumerating subsets: for k near 1 or near n, where C(n, k) is small. Every other k is
estimated from the first k samples of ``n_mc`` uniform random permutations (each prefix
is a uniform k-subset, so one pass over a permutation serves every k), and the result
says so: ``Estimate.exact`` is False there and ``Estimate.stderr`` is the Monte Carlo
standard error of the mean.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ttc.estimators._inputs import (
    FloatArray,
    IntArray,
    KArray,
    answer_classes,
    check_count,
    check_ks,
    check_weights,
)

__all__ = ["Estimate", "weighted_majority_at_k"]

#: Relative tolerance (of the total weight) within which two class totals tie.
TIE_RTOL = 1e-12
#: Permutation-by-sample entries held at once by the Monte Carlo.
_MC_BLOCK = 1 << 22


@dataclass(frozen=True, slots=True)
class Estimate:
    """A value with its Monte Carlo standard error (0.0 where it was computed exactly).

    For an array of k, ``value``, ``stderr`` and ``exact`` are arrays aligned with k.
    """

    value: float | FloatArray
    stderr: float | FloatArray
    exact: bool | NDArray[np.bool_]


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
    win = present & (tot >= best - TIE_RTOL * (1.0 + weights.sum()))
    n_win = win.sum(axis=1)
    return np.divide((win * credit).sum(axis=1), n_win, out=np.zeros(rows), where=n_win > 0)


def _enumerable(n: int, ks: IntArray, limit: int) -> NDArray[np.bool_]:
    """Which k have C(n, k) * min(k, n - k) <= limit (the cost of enumerating them)."""
    side = np.minimum(ks, n - ks)
    # C(n, m) * m grows with m up to n / 2: find the largest affordable m once
    m_max, comb = 0, 1
    while m_max < n // 2:
        nxt = comb * (n - m_max) // (m_max + 1)
        if nxt * (m_max + 1) > limit:
            break
        m_max, comb = m_max + 1, nxt
    return np.asarray(side <= m_max)


def _weighted_vote_mc(
    ids: IntArray,
    weights: FloatArray,
    credit: FloatArray,
    ks: IntArray,
    n_mc: int,
    rng: np.random.Generator,
) -> tuple[FloatArray, FloatArray]:
    """Mean and standard deviation of the vote credit of the first k of random permutations.

    One pass per block of permutations, a step per sample: each step adds one sample's
    weight to its class and updates the leading set (its total, and the number and credit
    of tied leaders), so a step costs O(permutations) whatever the number of classes, and
    every k along the way is read off for free. Memory: one block of permutations.
    """
    n, m = ids.size, credit.size
    if m == 0:
        return np.zeros(ks.size), np.zeros(ks.size)
    tol = TIE_RTOL * (1.0 + float(weights.sum()))
    slot = np.full(n + 1, -1, dtype=np.int64)
    slot[ks] = np.arange(ks.size)
    s1 = np.zeros(ks.size)
    s2 = np.zeros(ks.size)
    block = max(1, min(n_mc, _MC_BLOCK // max(n, m)))
    done = 0
    while done < n_mc:
        size = min(block, n_mc - done)
        rows = np.arange(size)
        perms = np.argsort(rng.random((size, n)), axis=1).astype(np.int32)
        cls_all = ids.astype(np.int32)[perms]
        w_all = weights[perms]
        del perms
        tot = np.zeros((size, m))
        stamp = np.zeros((size, m), dtype=np.int64)
        gen = np.ones(size, dtype=np.int64)
        lead = np.full(size, -np.inf)
        lead_credit = np.zeros(size)
        n_lead = np.zeros(size, dtype=np.int64)
        for t in range(n):
            cls = cls_all[:, t]
            vote = cls >= 0
            if vote.any():
                r, c = rows[vote], cls[vote]
                new = tot[r, c] + w_all[vote, t]
                tot[r, c] = new
                above = new > lead[r] + tol
                tie = ~above & (new >= lead[r] - tol) & (stamp[r, c] != gen[r])
                ra, ca = r[above], c[above]
                gen[ra] += 1
                stamp[ra, ca] = gen[ra]
                lead[ra] = new[above]
                lead_credit[ra] = credit[ca]
                n_lead[ra] = 1
                rt, ct = r[tie], c[tie]
                stamp[rt, ct] = gen[rt]
                lead_credit[rt] += credit[ct]
                n_lead[rt] += 1
            pos = slot[t + 1]
            if pos >= 0:
                vals = np.divide(lead_credit, n_lead, out=np.zeros(size), where=n_lead > 0)
                s1[pos] += vals.sum()
                s2[pos] += (vals**2).sum()
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

    Each class scores the sum of its members' scores (finite, nonnegative vote weights:
    use probabilities, not logits); the highest total wins, totals within 1e-12 of the
    whole weight tie and share the credit. Only ratios of weights matter (they are
    divided by the largest), so sequence probabilities of 1e-40 vote as well as 0.4.
    Exact (enumerating all subsets) where C(n, k) * min(k, n - k) <= ``exact_limit``;
    else the mean over the first k of
    ``n_mc`` random permutations, with its standard error, and ``exact`` False.
    """
    ids, credit, _ = answer_classes(answers, correct)
    n = ids.size
    w = check_weights(scores, n)
    top = float(w.max()) if w.size else 0.0
    if top > 0.0:  # the vote is scale-free: in units of the largest weight nothing
        w = w / top  # overflows, and the tie tolerance is relative at any scale
    ks, scalar = check_ks(k, n)
    exact_limit = check_count(exact_limit, "exact_limit")
    value = np.empty(ks.size)
    stderr = np.zeros(ks.size)
    exact = _enumerable(n, ks, exact_limit)
    for pos in np.nonzero(exact)[0]:
        size = int(ks[pos])
        flip = size > n - size  # enumerate the smaller side: the samples left out
        picks = n - size if flip else size
        combos = list(combinations(range(n), picks))
        subsets = np.array(combos, dtype=np.int64).reshape(len(combos), picks)
        value[pos] = _weighted_vote(subsets, ids, w, credit, left_out=flip).mean()
    mc = np.nonzero(~exact)[0]
    if mc.size:
        n_mc = check_count(n_mc, "n_mc")
        if n_mc < 2:
            raise ValueError("n_mc must be at least 2 for a standard error")
        gen = rng if rng is not None else np.random.default_rng()
        uniq, where = np.unique(ks[mc], return_inverse=True)
        mean, sd = _weighted_vote_mc(ids, w, credit, uniq, n_mc, gen)
        value[mc] = mean[where]
        stderr[mc] = sd[where] / np.sqrt(n_mc)
    if scalar:
        return Estimate(float(value[0]), float(stderr[0]), bool(exact[0]))
    return Estimate(value, stderr, exact)
