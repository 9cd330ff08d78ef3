"""The Fourier majority kernel: exact majority@k for every k at n = 10,000 and beyond.

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

Errors: a few 1e-14 in practice, up to ~1e-11 when thousands of classes contend (every
answer distinct); the tests compare with exact rational arithmetic at n = 1,000 ...
10,000, with enumeration of every subset for small n, and with the closed form of the
all-distinct case.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy import stats

from ttc.estimators._inputs import FloatArray, IntArray
from ttc.estimators._quadrature import gauss01, round_up

#: Mass of each binomial left outside its window.
_TAIL = 1e-20
_LOG_TAIL = math.log(1.0 / _TAIL)
#: Each p serves the k within this many standard deviations of n p (P(S = k) >= e^-2 of
#: its peak, which bounds how much rounding the division by P(S = k) amplifies).
_SPREAD = 2.0
#: Complex elements in one (levels x frequencies) block: 2 MB per array.
_BLOCK = 1 << 17
#: Bound on the tie terms a shorter quadrature may get wrong, per run of levels.
_TIE_TAIL = 1e-20
_LOG_X = np.log(2.0 ** np.arange(1, 41))

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


def _pmfs(specs: list[tuple[int, int, int]], p: float) -> list[FloatArray]:
    """Binomial(m, p) pmf on lo..hi for each (m, lo, hi), from one vectorised call."""
    if not specs:
        return []
    sizes = [hi - lo + 1 for _, lo, hi in specs]
    x = np.concatenate([np.arange(lo, hi + 1) for _, lo, hi in specs])
    m = np.repeat([s[0] for s in specs], sizes)
    flat = stats.binom.pmf(x, m, p)
    return np.split(flat, np.cumsum(sizes)[:-1])


def _dual_sum(
    terms: list[tuple[np.ndarray, np.ndarray, int, float]], u: FloatArray
) -> np.ndarray | None:
    """sum_a c_a B_a prod_{b != a} (A_b + u B_b) at every node u, by dual numbers.

    ``terms`` holds (A, B, multiplicity, credit sum) per group, A and B of shape
    (levels, frequencies); the result has a leading node axis. The credited part of
    (P + eps D)(Q + eps E) is PE + DQ, so one pass over the groups sums over every
    choice of winner.
    """
    val: np.ndarray | None = None
    dual: np.ndarray | None = None
    uu = u[:, None, None]
    for below, at, m, c in terms:
        base = below[None] + uu * at[None]
        pm1 = _cpow(base, m - 1) if m > 1 else None
        v = base if pm1 is None else pm1 * base
        d = None
        if c > 0.0:
            d = np.broadcast_to(c * at, base.shape) if pm1 is None else (c * at)[None] * pm1
        if val is None:
            val, dual = v, d
            continue
        new_dual = None if dual is None else dual * v
        if d is not None:
            new_dual = val * d if new_dual is None else new_dual + val * d
        val, dual = val * v, new_dual
    return dual


def _quadrature_size(
    levels: IntArray, groups: list[tuple[FloatArray, int, int, float]], n_classes: int
) -> int:
    """Gauss-Legendre nodes needed at these levels for the tie integral.

    The integrand D(u) = sum_a c_a B_a prod_{b != a} (A_b + u B_b) has degree
    n_classes - 1 in u, so ceil(n_classes / 2) nodes are always exact; but t-way ties at
    the top are rare unless t is small, and many-class problems (thousands of singleton
    answers) would pay for every possible tie. The u^t coefficients of D are nonnegative
    power series in z, largest at z = 1, where A_b and B_b are P(X_b < j) and P(X_b = j).
    For any x >= 1, sum_{t >= T} coef_t <= x^-T D(x) <= x^-(T+1) sum_a c_a prod_b
    (A_b + x B_b) (as B_a <= (A_a + x B_a) / x), and Gauss-Legendre errs on a monomial of
    degree >= 2q by at most 1. So q = T/2 nodes, with T where that bound (summed over the
    levels) falls below _TIE_TAIL, lose at most _TIE_TAIL of probability.

    ``groups`` holds (pmf over the window, window bottom, multiplicity, credit sum).
    """
    xs = np.exp(_LOG_X)
    log_prod = np.zeros((levels.size, xs.size))
    credit = 0.0
    for pmf, lo, m, c in groups:
        cum = np.concatenate([[0.0], np.cumsum(pmf)])
        idx = levels - lo
        below = cum[np.clip(idx, 0, pmf.size)]
        at = np.where((idx >= 0) & (idx < pmf.size), pmf[np.clip(idx, 0, pmf.size - 1)], 0.0)
        with np.errstate(divide="ignore"):
            log_prod += m * np.log(below[:, None] + xs[None, :] * at[:, None])
        credit += c
    if credit <= 0.0:
        return 1
    top = log_prod.max(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_sum = top + np.log(np.exp(log_prod - top).sum(axis=0))
    log_d = log_sum + math.log(credit) - _LOG_X
    finite = np.isfinite(log_d)
    if not finite.any():
        return 1
    needed = np.ceil((log_d[finite] - math.log(_TIE_TAIL)) / _LOG_X[finite]) + 1.0
    degree = int(np.clip(needed.min(), 0, n_classes))
    return max(1, min((n_classes + 1) // 2, round_up((degree + 1) // 2)))


def window_values(
    pattern: Pattern, n_abstain: int, p: float, k_lo: int, k_hi: int
) -> FloatArray:
    """majority@k for k = k_lo..k_hi, all from one p."""
    values = np.array([v for v, _ in pattern], dtype=np.int64)
    credit = np.array([c for _, c in pattern], dtype=np.float64)
    ks = np.arange(k_lo, k_hi + 1)
    if values.size == 0 or not credit.any():
        return np.zeros(ks.size)
    # group classes of equal count: identical factors, one power per group
    sizes, inverse = np.unique(values, return_inverse=True)
    mult = np.bincount(inverse).astype(np.int64)
    csum = np.bincount(inverse, weights=credit)
    n = n_abstain + int(values.sum())
    wins = [_window(int(v), p) for v in sizes.tolist()]
    lo_g = np.array([w[0] for w in wins])
    hi_g = np.array([w[1] for w in wins])
    credited = csum > 0
    j_start = max(1, int(lo_g.max()))  # every class must be able to sit at or below j
    j_end = int(hi_g[credited].max())  # some credited class must be able to reach j
    if j_start > j_end:
        return np.zeros(ks.size)
    lo_s, hi_s = _window(n, p)
    n_fft = sfft.next_fast_len(hi_s - lo_s + 1)

    # segments of levels sharing one set of active groups (a group is active at level j
    # while its window reaches j; below its window's top it is inert, merged into one
    # binomial); stop where no credited group is active any more
    live = [g for g in range(sizes.size) if hi_g[g] >= j_start]
    bounds = sorted({int(hi_g[g]) + 1 for g in live if j_start < hi_g[g] + 1 <= j_end})
    segments: list[tuple[int, int, list[int], int]] = []
    for s0, s1 in zip([j_start, *bounds], [b - 1 for b in bounds] + [j_end], strict=True):
        active = [g for g in live if hi_g[g] >= s0]
        if not credited[active].any():
            break
        n_inert = n - int((sizes[active] * mult[active]).sum())
        segments.append((s0, s1, active, n_inert))
    if not segments:
        return np.zeros(ks.size)
    inert_specs = [(m_in, *_window(m_in, p)) for *_, m_in in segments]
    group_specs = [(int(sizes[g]), int(lo_g[g]), int(hi_g[g])) for g in live]
    pmf_list = _pmfs([*group_specs, *inert_specs], p)
    pmf = dict(zip(live, pmf_list[: len(live)], strict=True))
    p_total = stats.binom.pmf(ks, n, p)

    phase = np.exp(-2j * np.pi * np.arange(n_fft) / n_fft)
    freqs = np.arange(n_fft, dtype=np.int64)
    partial = {  # A_g(z) = sum_{i < j} P(X_g = i) z^i at the first level
        g: _placed_fft(int(lo_g[g]), pmf[g][: max(0, j_start - int(lo_g[g]))], n_fft)
        for g in live
    }
    total = np.zeros(n_fft, dtype=complex)
    for (s0, s1, active, _), (_, i_lo, _), i_pmf in zip(
        segments, inert_specs, pmf_list[len(live) :], strict=True
    ):
        q = _quadrature_size(
            np.arange(s0, s1 + 1),
            [(pmf[g], int(lo_g[g]), int(mult[g]), float(csum[g])) for g in active],
            int(mult[active].sum()),
        )
        u_nodes, u_weights = gauss01(q)
        seg = np.zeros(n_fft, dtype=complex)
        rows = max(1, _BLOCK // (n_fft * u_nodes.size))
        for c0 in range(s0, s1 + 1, rows):
            c1 = min(c0 + rows, s1 + 1)
            phi = phase[(np.arange(c0, c1)[:, None] * freqs[None, :]) % n_fft]
            terms: list[tuple[np.ndarray, np.ndarray, int, float]] = []
            for g in active:
                f = np.zeros(c1 - c0)
                a, b = max(c0, int(lo_g[g])), min(c1, int(hi_g[g]) + 1)
                if a < b:
                    f[a - c0 : b - c0] = pmf[g][a - int(lo_g[g]) : b - int(lo_g[g])]
                at = f[:, None] * phi  # B_g(z) = P(X_g = j) z^j at each level j
                below = np.cumsum(at, axis=0)
                below -= at
                below += partial[g]
                partial[g] = below[-1] + at[-1]
                terms.append((below, at, int(mult[g]), float(csum[g])))
            dual = _dual_sum(terms, u_nodes)
            if dual is not None:
                seg += u_weights @ dual.sum(axis=1)
        inert_cf = _placed_fft(i_lo, i_pmf, n_fft) if i_pmf.size else 1.0
        total += seg * inert_cf
    joint = np.real(sfft.ifft(total))
    return np.clip(joint[ks % n_fft] / p_total, 0.0, 1.0)


