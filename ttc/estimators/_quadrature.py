"""Gauss-Legendre quadrature on [0, 1], shared by both majority kernels.

Tied winners share credit as 1/(t+1) = int_0^1 u^t du; the integrand is a polynomial in
u, so q nodes integrate it exactly up to degree 2q - 1.

"Exactly" needs accurate weights: ``scipy.special.roots_legendre``'s nodes are right to
an ulp but its weights drift (relative error 1.5e-8 at q = 1500), which made a t-way tie
share 1/(t+1) wrong by 1e-10 and every many-class majority value with it. The weights
are recomputed here, w = 2 / ((1 - x^2) P_q'(x)^2), at the root itself: one pass of
the Legendre recurrence in extended precision (``np.longdouble``, a 64-bit mantissa on
x86) gives P_q and P_q' at scipy's node, a Newton step gives the root to far below an
ulp, and Legendre's equation gives P_q'' to carry P_q' there. Every monomial below
degree 2q then integrates to within about 1e-14 (the tests check it).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special

from ttc.estimators._inputs import FloatArray


def _weights(q: int, x: FloatArray) -> FloatArray:
    """Gauss-Legendre weights on [-1, 1] at (float64 approximations of) the roots x."""
    xl: np.ndarray = np.asarray(x, dtype=np.longdouble)
    p0: np.ndarray = np.ones_like(xl)
    p1: np.ndarray = xl.copy()
    for k in range(2, q + 1):
        p0, p1 = p1, ((2 * k - 1) * xl * p1 - (k - 1) * p0) / k
    one_minus = (1 - xl) * (1 + xl)
    dp = q * (p0 - xl * p1) / one_minus  # P_q'
    ddp = (2 * xl * dp - q * (q + 1) * p1) / one_minus  # P_q'' (Legendre's equation)
    dx = -p1 / dp  # Newton step to the true root
    dp_root = dp + ddp * dx
    root = xl + dx
    return np.asarray(2.0 / ((1 - root) * (1 + root) * dp_root * dp_root), dtype=np.float64)


def round_up(q: int) -> int:
    """q rounded up onto a ladder of at most 16 sizes an octave (at most 1/8 more nodes).

    More nodes than needed are still exact, and a few shared sizes keep the number of
    rules computed (each costs O(q^2) at first use) small when the needed size drifts
    from one group of levels to the next.
    """
    if q <= 16:
        return q
    step = 1 << (q.bit_length() - 4)
    return -(-q // step) * step


@lru_cache(maxsize=256)
def gauss01(q: int) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights on [0, 1]: exact for polynomials of degree < 2q."""
    x, w = special.roots_legendre(q)
    x = np.asarray(x, dtype=np.float64)
    if q > 1:  # scipy's nodes are mirror images: weigh the upper half, mirror it
        upper = _weights(q, x[q // 2 :])
        w = np.concatenate([upper[::-1][: q // 2], upper])
    return (x + 1.0) / 2.0, np.asarray(w, dtype=np.float64) / 2.0
