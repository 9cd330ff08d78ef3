"""Exact, unbiased estimators of k-sample metrics from n >= k stored samples.

Each estimator is the average of a metric over all C(n, k) subsets of size k of the
n samples of one problem (a U-statistic: unbiased for the metric on k fresh samples,
and the minimum-variance unbiased estimator among functions of the n samples). Peers
take the first k samples or average random permutations; here every k comes from a
closed form that stays exact (errors ~1e-13 or below; ~1e-11 where thousands of answers
tie) for n = 10,000 and beyond, and a
whole curve k = 1..n costs little more than one point. Formulas, numerics, input rules
and references: ``docs/estimators.md``.

``k`` is an int (a float comes back) or an array of ints in ``1..n`` (an array comes
back). Input rules are shared by every estimator (``ttc.estimators._inputs``): counts
are ints, credit lies in [0, 1], ``None``/NaN/``pd.NA`` answers abstain, vote weights
are finite and nonnegative.
"""

from __future__ import annotations

from ttc.estimators.best_of import best_of_k
from ttc.estimators.majority import majority_at_k
from ttc.estimators.passk import g_pass_at_k, pass_at_k, pass_hat_k
from ttc.estimators.weighted import Estimate, weighted_majority_at_k

__all__ = [
    "Estimate",
    "best_of_k",
    "g_pass_at_k",
    "majority_at_k",
    "pass_at_k",
    "pass_hat_k",
    "weighted_majority_at_k",
]
