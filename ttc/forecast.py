"""The distributional pass@k forecaster of Schaeffer et al. (2025).

"How Do Large Language Monkeys Get Their Power (Laws)?" explains the power law in k that
Brown et al. (2024) observed for coverage (pass@k averaged over problems): each problem
i has a single-attempt success rate p_i, its pass@k is 1 - (1 - p_i)^k, and the average
over problems is governed by how much mass the distribution of p_i puts near 0. If
p ~ Beta(alpha, beta), coverage has a closed form,

    pass@k = 1 - E[(1 - p)^k] = 1 - B(alpha, beta + k) / B(alpha, beta),

whose unsolved fraction decays like k^(-alpha): the power law and its exponent come
from the fitted distribution instead of a curve fitted to coverage itself.

We fit (alpha, beta) by maximum likelihood to the per-problem counts (c_i correct of
n_i samples) with the beta-binomial likelihood, so problems with c_i = 0 (the left tail
that decides large-k coverage) and unequal n_i are used as they are, not through noisy
ratios. Intervals resample problems (``ttc.bootstrap.ProblemBootstrap``, the project's one
bootstrap engine) and refit each replicate. A forecast at k more than 4x the largest
n_i is marked ``extrapolated``; a fit says in ``warnings`` when the data cannot carry
it (too few problems, a parameter at its bound, replicates that failed).

Compare ``ttc.coverage.fit_coverage_law`` (Brown et al.: log pass@k = a k^b fitted to the
coverage curve); ``benchmarks/forecast_backtest.py`` backtests both on held-out k, and
``ttc.coverage.beta_binomial`` runs this one in every report beside the law.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from scipy import special

from ttc.bootstrap import ConfidenceInterval, ProblemBootstrap
from ttc.estimators._inputs import check_count_array
from ttc.fits import EXTRAPOLATION_FACTOR

__all__ = [
    "BetaCoverageFit",
    "BetaForecast",
    "beta_pass_at_k",
    "fit_beta_coverage",
]

FloatArray = NDArray[np.float64]
#: Bounds on log(alpha) and log(beta): a fit that reaches one is reported, not trusted.
_LOG_BOUND = 12.0
#: Fewer problems than this and the fitted tail is mostly prior guesswork.
_MIN_PROBLEMS = 10


def beta_pass_at_k(alpha: ArrayLike, beta: ArrayLike, k: ArrayLike) -> FloatArray:
    """1 - B(alpha, beta + k) / B(alpha, beta), broadcast over its arguments.

    Computed as -expm1 of a difference of log-beta functions: no overflow at any k and
    full relative precision for small pass@k.
    """
    a, b, kk = (np.asarray(x, dtype=np.float64) for x in (alpha, beta, k))
    return np.asarray(-np.expm1(special.betaln(a, b + kk) - special.betaln(a, b)))


@dataclass(frozen=True)
class BetaForecast:
    """pass@k forecast at each k: point, problem-bootstrap interval, extrapolation flag."""

    k: NDArray[np.int64]
    point: FloatArray
    confidence_interval: ConfidenceInterval
    standard_error: FloatArray
    extrapolated: NDArray[np.bool_]
    level: float

    def to_frame(self) -> pd.DataFrame:
        """One row per k: ``k, point, low, high, standard_error, extrapolated``."""
        return pd.DataFrame(
            {
                "k": self.k,
                "point": self.point,
                "low": self.confidence_interval.low,
                "high": self.confidence_interval.high,
                "standard_error": self.standard_error,
                "extrapolated": self.extrapolated,
            }
        )


@dataclass(frozen=True)
class BetaCoverageFit:
    """A Beta(alpha, beta) fitted to per-problem success rates; forecasts pass@k."""

    alpha: float
    beta: float
    ci_alpha: tuple[float, float]
    ci_beta: tuple[float, float]
    loglik: float
    n_problems: int
    max_n: int
    level: float
    converged: bool
    warnings: tuple[str, ...]
    boot: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), repr=False)

    def forecast(self, ks: int | Sequence[int] | NDArray[np.integer]) -> BetaForecast:
        """pass@k at each k (ints >= 1), with the problem-bootstrap interval."""
        kk = np.atleast_1d(np.asarray(ks))
        if kk.dtype.kind not in "iu" or kk.ndim != 1:
            raise TypeError(f"ks must be an int or a 1-d array of ints, got {ks!r}")
        if kk.size and kk.min() < 1:
            raise ValueError(f"ks must be at least 1, got {int(kk.min())}")
        kk = kk.astype(np.int64)
        point = beta_pass_at_k(self.alpha, self.beta, kk)
        if len(self.boot) >= 2:  # one replicate is a point, not an interval
            reps = beta_pass_at_k(self.boot[:, :1], self.boot[:, 1:], kk[None, :])
            spread = ProblemBootstrap(self.n_problems, n_boot=len(reps), level=self.level)
            res = spread.interval(point, reps, n_problems=self.n_problems)
            low, high, se = res.low, res.high, res.standard_error
        else:
            low = high = se = np.full(kk.size, np.nan)
        return BetaForecast(
            k=kk,
            point=point,
            confidence_interval=ConfidenceInterval(
                np.clip(np.asarray(low, dtype=float), 0.0, 1.0),
                np.clip(np.asarray(high, dtype=float), 0.0, 1.0),
            ),
            standard_error=np.asarray(se, dtype=float),
            extrapolated=kk > EXTRAPOLATION_FACTOR * self.max_n,
            level=self.level,
        )


def _loglik(theta: FloatArray, c: FloatArray, n: FloatArray, w: FloatArray) -> FloatArray:
    """Beta-binomial log-likelihood (without the constant sum log C(n, c)) for each row.

    ``theta`` is (rows, 2) of (log alpha, log beta); ``w`` is (rows, pairs) of how often
    each distinct (c, n) pair occurs in that row's data set.
    """
    a, b = np.exp(theta[:, :1]), np.exp(theta[:, 1:])
    terms = special.betaln(c + a, n - c + b) - special.betaln(a, b)
    return np.asarray((w * terms).sum(axis=1))


def _fit_many(
    c: FloatArray, n: FloatArray, w: FloatArray, theta: FloatArray, max_iter: int = 200
) -> tuple[FloatArray, FloatArray, NDArray[np.bool_]]:
    """Maximise every row's likelihood at once: Newton steps in log-parameters with the
    exact Hessian (trigamma), a gradient step where the Hessian is not negative
    definite, and step halving until the likelihood does not fall.

    One vectorised optimiser serves the point fit (one row) and a thousand bootstrap
    refits (a row each), which is what keeps the intervals to a fraction of a second.
    """
    theta = np.clip(theta.astype(float).copy(), -_LOG_BOUND, _LOG_BOUND)
    done = np.zeros(len(theta), dtype=bool)
    ll = _loglik(theta, c, n, w)
    for _ in range(max_iter):
        act = ~done
        if not act.any():
            break
        th, wa = theta[act], w[act]
        a, b = np.exp(th[:, :1]), np.exp(th[:, 1:])
        ab = a + b
        common = special.digamma(ab) - special.digamma(n + ab)
        ga = (wa * (special.digamma(c + a) - special.digamma(a) + common)).sum(1)
        gb = (wa * (special.digamma(n - c + b) - special.digamma(b) + common)).sum(1)
        tcom = special.polygamma(1, ab) - special.polygamma(1, n + ab)
        haa = (wa * (special.polygamma(1, c + a) - special.polygamma(1, a) + tcom)).sum(1)
        hbb = (wa * (special.polygamma(1, n - c + b) - special.polygamma(1, b) + tcom)).sum(1)
        hab = (wa * tcom).sum(1)
        a1, b1 = a[:, 0], b[:, 0]
        gx, gy = a1 * ga, b1 * gb  # gradient and Hessian in log-parameters
        hxx, hyy, hxy = a1 * a1 * haa + gx, b1 * b1 * hbb + gy, a1 * b1 * hab
        det = hxx * hyy - hxy * hxy
        newton = (hxx < 0) & (det > 0)
        safe = np.where(newton, det, 1.0)
        dx = np.where(newton, -(hyy * gx - hxy * gy) / safe, gx)
        dy = np.where(newton, -(hxx * gy - hxy * gx) / safe, gy)
        norm = np.hypot(dx, dy)
        scale = np.minimum(1.0, 2.0 / np.maximum(norm, 1e-300))  # at most e^2 per step
        step = np.column_stack([dx * scale, dy * scale])
        ll_a = ll[act]
        t = np.ones(len(th))
        new_th, new_ll = th.copy(), ll_a.copy()
        pending = np.ones(len(th), dtype=bool)
        for _ in range(40):
            cand = np.clip(th[pending] + t[pending, None] * step[pending], -_LOG_BOUND, _LOG_BOUND)
            ll_c = _loglik(cand, c, n, wa[pending])
            ok = ll_c >= ll_a[pending] - 1e-12 * np.abs(ll_a[pending])
            idx = np.flatnonzero(pending)
            new_th[idx[ok]], new_ll[idx[ok]] = cand[ok], ll_c[ok]
            pending[idx[ok]] = False
            t[pending] /= 2.0
            if not pending.any():
                break
        moved = np.abs(new_th - th).max(axis=1)
        grad = np.hypot(gx, gy)
        finished = (moved < 1e-10) | (grad < 1e-9 * (1.0 + np.abs(ll_a)))
        idx = np.flatnonzero(act)
        theta[idx], ll[idx] = new_th, new_ll
        done[idx[finished]] = True
    return theta, ll, done


def _start(c: FloatArray, n: FloatArray, w: FloatArray) -> FloatArray:
    """Method-of-moments starting point, corrected for binomial noise."""
    p = c / n
    m = float(np.clip(w @ p / w.sum(), 1e-3, 1 - 1e-3))
    var = float(w @ (p - m) ** 2 / w.sum()) - m * (1 - m) * float(w @ (1 / n) / w.sum())
    s = m * (1 - m) / var - 1.0 if var > 1e-9 else 100.0
    s = float(np.clip(s, 0.1, 1e3))
    return np.log([m * s, (1 - m) * s])


def fit_beta_coverage(
    c: ArrayLike,
    n: ArrayLike,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    bootstrap: ProblemBootstrap | None = None,
) -> BetaCoverageFit:
    """Fit Beta(alpha, beta) to per-problem success rates by beta-binomial maximum
    likelihood on the counts (``c[i]`` correct of ``n[i]`` samples); ``n_boot``
    problem-bootstrap refits give the intervals (0 for none). ``bootstrap`` (over the
    same problems) replaces ``n_boot``, ``seed`` and ``level``, so a report's forecasts
    resample the same problems as its other intervals.

    Raises ValueError when no problem was ever solved, or every problem always was:
    the likelihood then has no maximum and no forecast would be honest; and when every
    problem has one sample: any Beta with the observed mean then fits equally well, so
    the spread of success rates, which is all that pass@k for k > 1 depends on beyond
    the mean, is not in the data.
    """
    c_arr = check_count_array(c, "c")
    n_arr = check_count_array(n, "n")
    if c_arr.shape != n_arr.shape:
        raise ValueError(f"c and n differ in length: {c_arr.size} vs {n_arr.size}")
    if c_arr.size == 0:
        raise ValueError("need at least one problem")
    if (n_arr < 1).any():
        raise ValueError("every problem needs at least one sample (n >= 1)")
    if ((c_arr < 0) | (c_arr > n_arr)).any():
        i = int(np.flatnonzero((c_arr < 0) | (c_arr > n_arr))[0])
        raise ValueError(f"need 0 <= c <= n, got c={c_arr[i]}, n={n_arr[i]} at problem {i}")
    if bootstrap is not None:
        if bootstrap.n_problems != c_arr.size:
            raise ValueError(f"bootstrap is over {bootstrap.n_problems} problems, "
                             f"the counts over {c_arr.size}")
        n_boot, level = bootstrap.n_boot, bootstrap.level
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int | np.integer) or n_boot < 0:
        raise ValueError(f"n_boot must be a whole number >= 0, got {n_boot!r}")
    boot_draw = bootstrap or ProblemBootstrap(c_arr.size, n_boot=n_boot, seed=seed, level=level)
    if (c_arr == 0).all():
        raise ValueError("no problem was ever solved: the Beta fit has no information")
    if (c_arr == n_arr).all():
        raise ValueError("every sample of every problem is correct: nothing to fit")
    if n_arr.max() == 1:
        raise ValueError("every problem has one sample: only the mean success rate is "
                         "identified, not the spread that pass@k for k > 1 depends on; draw "
                         "at least 2 samples for some problems")

    # the likelihood depends on the data only through the (c, n) pairs and their counts
    pairs, pair_of = np.unique(np.column_stack([c_arr, n_arr]), axis=0, return_inverse=True)
    pair_of = pair_of.ravel()
    cu, nu = pairs[:, 0].astype(float), pairs[:, 1].astype(float)
    wu = np.bincount(pair_of, minlength=len(pairs)).astype(float)
    th1, ll1, ok1 = _fit_many(cu, nu, wu[None, :], _start(cu, nu, wu)[None, :])
    theta, loglik, converged = th1[0], float(ll1[0]), bool(ok1[0])
    notes: list[str] = []
    if c_arr.size < _MIN_PROBLEMS:
        notes.append(f"only {c_arr.size} problems (fewer than {_MIN_PROBLEMS}): the fitted "
                     "tail, which decides large-k coverage, is poorly determined")
    if not converged:
        notes.append("the maximum-likelihood fit did not converge")
    if np.any(np.abs(theta) >= _LOG_BOUND - 1e-6):
        notes.append("a Beta parameter reached its bound (exp(+-12)): the data do not "
                     "pin it down")

    boot = np.empty((0, 2))
    ci_a = ci_b = (float("nan"), float("nan"))
    if n_boot > 0:
        weights = boot_draw.weights
        order = np.argsort(pair_of, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(pair_of[order]) != 0])
        per_pair = np.add.reduceat(weights[:, order], starts, axis=1)
        # a resample with no solved problem, or nothing unsolved, has nothing to fit
        fittable = ((per_pair * (cu > 0)).sum(1) > 0) & ((per_pair * (cu < nu)).sum(1) > 0)
        th_b, _, ok_b = _fit_many(cu, nu, per_pair, np.tile(theta, (n_boot, 1)))
        good = fittable & ok_b & np.all(np.abs(th_b) < _LOG_BOUND - 1e-6, axis=1)
        fits = np.where(good[:, None], np.exp(th_b), np.nan)
        failed = int(np.isnan(fits[:, 0]).sum())
        boot = fits[~np.isnan(fits[:, 0])]
        if failed:
            notes.append(f"{failed} of {n_boot} bootstrap refits failed or hit a bound "
                         "and were dropped: the interval is optimistic")
        if len(boot) >= 2:
            spread = ProblemBootstrap(c_arr.size, n_boot=len(boot), level=level)
            res = spread.interval(np.exp(theta), boot, n_problems=c_arr.size)
            ci_a = (float(res.low[0]), float(res.high[0]))
            ci_b = (float(res.low[1]), float(res.high[1]))
    return BetaCoverageFit(
        alpha=float(np.exp(theta[0])),
        beta=float(np.exp(theta[1])),
        ci_alpha=ci_a,
        ci_beta=ci_b,
        loglik=loglik,
        n_problems=int(c_arr.size),
        max_n=int(n_arr.max()),
        level=level,
        converged=converged,
        warnings=tuple(notes),
        boot=boot,
    )
