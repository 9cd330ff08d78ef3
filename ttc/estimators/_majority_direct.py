"""The direct majority kernel: polynomial sums in the number of samples, for n <= 1024.

For class a to win with j votes, every other class b must get fewer than j votes, or
exactly j (a tie, shared among t+1 winners). With L_b = sum_{i<j} C(n_b,i) x^i and
T_b = C(n_b,j) x^j,

    credit_k = sum_j sum_a c_a [x^k] T_a (1+x)^R_j  int_0^1 prod_{b != a} (L_b + u T_b) du
               / C(n, k)

where R_j counts abstentions and classes too small to reach j. Every term is
nonnegative and products are direct sums (no FFT), so each coefficient keeps full
relative precision (errors ~1e-15). Binomials carry a factor 2**(-1/2) per sample, which
keeps every coefficient inside double range only up to n = 1024 (``DIRECT_MAX_N``), and
the cost grows like n**3 for problems with several large classes: above that size
``ttc.estimators._majority_fourier`` takes over. Below it this kernel is about ten times
faster than the Fourier one, which is why both exist (the tests check them against each
other and against enumeration).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ttc.estimators._inputs import FloatArray, IntArray
from ttc.estimators._quadrature import gauss01

#: Largest n this kernel serves: its scaled coefficients stay in double range.
DIRECT_MAX_N = 1024


@lru_cache(maxsize=4096)
def _scaled_binom(v: int) -> FloatArray:
    """C(v, i) * 2**(-v/2), i = 0..v, by a running product (relative error ~ i * eps).

    Every sample carries one factor 2**-0.5, so products over classes stay within
    float range for totals up to DIRECT_MAX_N and every ratio is unchanged.
    """
    i = np.arange(1, v + 1, dtype=np.float64)
    out = np.empty(v + 1)
    out[0] = 2.0 ** (-v / 2.0)
    out[1:] = out[0] * np.cumprod((v - i + 1.0) / i)
    out.flags.writeable = False
    return out

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
    u, w = gauss01((int(mult.sum()) + 1) // 2)
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


def majority_curve_direct(counts: IntArray, credits: FloatArray, n_abstain: int) -> FloatArray:
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
