"""pass@k, pass^k and G-Pass@k from the count c of correct samples among n.

All three are hypergeometric: a uniformly random k-subset of n samples, c of them
correct, holds a hypergeometric number of correct ones. pass@k and pass^k are one minus /
exactly a ratio C(m, k) / C(n, k), built as a running product of factors in (0, 1]
(m - j) / (n - j): no factorial is formed, nothing overflows, an underflow is a true
value below 1e-308, and the relative error after k factors is at most about k * 1.1e-16
(2e-12 at k = 10,000; far less in practice). G-Pass@k is a hypergeometric tail from
scipy (Boost's algorithm, accurate to a few ulps at n = 10,000: see the tests).
"""

from __future__ import annotations

from typing import overload

import numpy as np
from scipy import stats

from ttc.estimators._inputs import FloatArray, KArray, check_ks, check_nc, out

__all__ = ["g_pass_at_k", "pass_at_k", "pass_hat_k"]


def _ratio_curve(n: int, m: int) -> FloatArray:
    """C(m, k) / C(n, k) for k = 0..n (0 where k > m), as a running product."""
    curve = np.zeros(n + 1)
    curve[0] = 1.0
    if m >= 1:
        j = np.arange(m, dtype=np.float64)
        curve[1 : m + 1] = np.cumprod((m - j) / (n - j))
    return curve


@overload
def pass_at_k(n: int, c: int, k: int) -> float: ...
@overload
def pass_at_k(n: int, c: int, k: KArray) -> FloatArray: ...
def pass_at_k(n: int, c: int, k: int | KArray) -> float | FloatArray:
    """P(at least one of k samples drawn without replacement is correct): 1 - C(n-c,k)/C(n,k).

    The unbiased pass@k estimator of Chen et al. (2021), as a running product.
    """
    n, c = check_nc(n, c)
    ks, scalar = check_ks(k, n)
    return out(1.0 - _ratio_curve(n, n - c)[ks], scalar)


@overload
def pass_hat_k(n: int, c: int, k: int) -> float: ...
@overload
def pass_hat_k(n: int, c: int, k: KArray) -> FloatArray: ...
def pass_hat_k(n: int, c: int, k: int | KArray) -> float | FloatArray:
    """pass^k (Yao et al. 2024, tau-bench): P(all k drawn samples are correct) = C(c,k)/C(n,k)."""
    n, c = check_nc(n, c)
    ks, scalar = check_ks(k, n)
    return out(_ratio_curve(n, c)[ks], scalar)


@overload
def g_pass_at_k(n: int, c: int, k: int, tau: float) -> float: ...
@overload
def g_pass_at_k(n: int, c: int, k: KArray, tau: float) -> FloatArray: ...
def g_pass_at_k(n: int, c: int, k: int | KArray, tau: float) -> float | FloatArray:
    """G-Pass@k_tau (Liu et al. 2024): P(at least ceil(tau * k) of k drawn samples are correct).

    A hypergeometric upper tail; tau in (0, 1]. tau -> 0 gives pass@k, tau = 1 pass^k.
    """
    n, c = check_nc(n, c)
    if isinstance(tau, bool) or not isinstance(tau, int | float | np.floating | np.integer):
        raise TypeError(f"tau must be a number in (0, 1], got {type(tau).__name__} {tau!r}")
    if not 0.0 < tau <= 1.0:
        raise ValueError(f"tau must lie in (0, 1], got {tau}")
    ks, scalar = check_ks(k, n)
    # at least one correct sample whatever tau is (a tiny tau must not need 0 of k); the
    # 1e-12 keeps tau * k = 3.0000000000000004 from asking for 4
    need = np.maximum(np.ceil(tau * ks - 1e-12), 1).astype(np.int64)
    values = stats.hypergeom.sf(need - 1, n, c, ks).astype(np.float64)
    return out(np.clip(values, 0.0, 1.0), scalar)
