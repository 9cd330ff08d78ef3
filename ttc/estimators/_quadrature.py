"""Gauss-Legendre quadrature on [0, 1], shared by both majority kernels.

Tied winners share credit as 1/(t+1) = int_0^1 u^t du; the integrand is a polynomial in
u, so q nodes integrate it exactly up to degree 2q - 1.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import special

from ttc.estimators._inputs import FloatArray


@lru_cache(maxsize=256)
def gauss01(q: int) -> tuple[FloatArray, FloatArray]:
    """Nodes and weights on [0, 1]: exact for polynomials of degree < 2q."""
    x, w = special.roots_legendre(q)
    return (np.asarray(x) + 1.0) / 2.0, np.asarray(w) / 2.0
