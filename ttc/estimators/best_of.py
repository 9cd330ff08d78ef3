"""best-of-k under a scorer: the expected credit of the top-scored of k random samples.

Sort the n samples by score; in a uniformly random k-subset the top one is rank i
(0-based, ascending) with probability w_k(i) = C(i, k-1) / C(n, k). The whole curve
k = 1..n is sum_i w_k(i) credit_i for every k: an n x n table if formed at once
(0.8 GB at n = 10,000). Here it is formed a block of k at a time, each row by a running
product from the top rank down:

    w_k(n-1) = k / n,    w_k(i-1) = w_k(i) * (i - k + 1) / i,

factors in [0, 1], so nothing overflows, rows underflow only below 1e-308, and the
relative error of a weight is at most (n - i) * 1.1e-16. Memory is
two blocks of 2**20 floats plus O(n); time is n * (n + 1) / 2 multiply-adds for all k.
"""

from __future__ import annotations

from typing import overload

import numpy as np
from numpy.typing import ArrayLike

from ttc.estimators._inputs import (
    FloatArray,
    IntArray,
    KArray,
    as_float_array,
    check_credit,
    check_ks,
    out,
)

__all__ = ["best_of_k"]

#: Elements of one block of weights (8 MB of float64).
_BLOCK = 1 << 20


def tie_credit(scores: FloatArray, credit: FloatArray) -> FloatArray:
    """Credit per ascending rank, each tied-score group at its mean credit.

    A NaN score is "no verdict": NaNs form one group ranked below every real score
    (-inf included), so an unscored sample is kept only when the whole subset is
    unscored, and then one of them uniformly at random.
    """
    nan = np.isnan(scores)
    order = np.lexsort((np.where(nan, 0.0, scores), ~nan))  # NaNs first, then ascending
    s_sorted = scores[order]
    new_group = np.ones(scores.size, dtype=bool)
    if scores.size > 1:
        both_nan = nan[order][1:] & nan[order][:-1]
        new_group[1:] = ~(both_nan | (s_sorted[1:] == s_sorted[:-1]))
    group = np.cumsum(new_group) - 1
    group_mean = np.bincount(group, weights=credit[order]) / np.bincount(group)
    return np.asarray(group_mean[group], dtype=np.float64)


def max_rank_curve(credit: FloatArray, ks: IntArray) -> FloatArray:
    """sum_i C(i, k-1) / C(n, k) * credit[i] for each k in ks (credit in ascending rank)."""
    n = credit.size
    values = np.empty(ks.size)
    order = np.argsort(ks)
    rows = max(1, _BLOCK // n)
    i = np.arange(n, dtype=np.float64)
    for start in range(0, ks.size, rows):
        pick = order[start : start + rows]
        kk = ks[pick].astype(np.float64)[:, None]
        lo = int(ks[pick].min()) - 1  # rank k-1 is the lowest that can be the top
        ii = i[lo + 1 :][::-1]  # n-1 down to lo+1
        # factor taking w_k(i) to w_k(i-1); zero from rank k-2 down
        factors = np.maximum(ii - kk + 1.0, 0.0) / ii
        w = np.empty((pick.size, n - lo))
        w[:, 0] = kk[:, 0] / n
        np.cumprod(factors, axis=1, out=w[:, 1:])
        w[:, 1:] *= w[:, :1]
        values[pick] = w @ credit[lo:][::-1]
    return values


@overload
def best_of_k(scores: ArrayLike, correct: ArrayLike, k: int) -> float: ...
@overload
def best_of_k(scores: ArrayLike, correct: ArrayLike, k: KArray) -> FloatArray: ...
def best_of_k(scores: ArrayLike, correct: ArrayLike, k: int | KArray) -> float | FloatArray:
    """Expected credit of the top-scored sample of a uniformly random k-subset.

    Ties in score are broken uniformly at random, which equals giving every sample the
    mean credit of its tied-score group. NaN scores rank below every real score (see
    ``tie_credit``). ``correct`` is credit in [0, 1].
    """
    s = as_float_array(scores, "scores")
    c = check_credit(correct)
    if s.shape != c.shape:
        raise ValueError(f"scores and correct differ in length: {s.size} vs {c.size}")
    ks, scalar = check_ks(k, s.size)
    return out(np.clip(max_rank_curve(tie_credit(s, c), ks), 0.0, 1.0), scalar)
