"""Scaling-law fits with problem-bootstrap intervals.

Accuracy against log2 of realized thinking tokens (a line, and a saturating sigmoid
compared by AIC), and the pass@k coverage law of Brown et al. (2024). Inputs are
per-problem arrays; every interval resamples PROBLEMS with an explicit seeded
``np.random.Generator``, never samples. ``ttc.analysis`` builds the arrays from a run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import optimize

__all__ = [
    "CoverageFit",
    "ExtrapolationWarning",
    "FitComparison",
    "LogLinearFit",
    "SigmoidFit",
    "X_LABEL",
    "boot_means",
    "boot_weights",
    "compare_fits",
    "fit_coverage_law",
    "fit_log_linear",
    "fit_sigmoid",
    "percentile_ci",
]

X_LABEL = "log2 mean realized thinking tokens"


class ExtrapolationWarning(UserWarning):
    """A fit was asked about tokens outside the range it was measured on."""


def boot_weights(n_problems: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot x n_problems`` counts of each problem in each problem-bootstrap replicate.

    A replicate's mean of any per-problem column is then one matrix product, which keeps
    a thousand replicates over hundreds of curve points to milliseconds.
    """
    idx = rng.integers(0, n_problems, size=(n_boot, n_problems))
    rows = np.repeat(np.arange(n_boot), n_problems)
    weights = np.zeros((n_boot, n_problems))
    np.add.at(weights, (rows, idx.ravel()), 1.0)
    return weights


def boot_means(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Replicate means (``n_boot x columns``) of a ``problems x columns`` array, NaN-aware."""
    valid = np.isfinite(values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ np.where(valid, values, 0.0)) / (weights @ valid)


def percentile_ci(values: np.ndarray, level: float, axis: int = 0) -> tuple[Any, Any]:
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(values, [tail, 100.0 - tail], axis=axis)
    return low, high


# ---------------------------------------------------------------- log-linear fit


def _ols(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise least squares ``y = a + b x`` over the last axis; returns (a, b)."""
    xm = x - x.mean(axis=-1, keepdims=True)
    ym = y - y.mean(axis=-1, keepdims=True)
    slope = (xm * ym).sum(axis=-1) / (xm * xm).sum(axis=-1)
    return y.mean(axis=-1) - slope * x.mean(axis=-1), slope


def _as_problem_matrix(values: np.ndarray | Sequence[float], n_budgets: int) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 1:
        if arr.shape[0] != n_budgets:
            raise ValueError("tokens per budget must have one value per budget")
        return arr[None, :]
    return arr


@dataclass(frozen=True)
class LogLinearFit:
    """``accuracy = intercept + slope_per_doubling * log2(tokens)`` with a problem-bootstrap CI."""

    intercept: float
    slope_per_doubling: float
    ci: tuple[float, float]
    r2: float
    x_range: tuple[float, float]
    x_label: str = X_LABEL
    level: float = 0.95
    n_problems: int = 0
    points: tuple[tuple[float, float], ...] = ()
    boot: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), repr=False)

    def _check_range(self, tokens: np.ndarray) -> None:
        lo, hi = self.x_range
        if np.any(tokens < lo * (1 - 1e-9)) or np.any(tokens > hi * (1 + 1e-9)):
            warnings.warn(
                f"extrapolating a log-linear fit measured on {lo:,.0f}..{hi:,.0f} thinking tokens",
                ExtrapolationWarning, stacklevel=3,
            )

    def predict(self, tokens: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Predicted accuracy at ``tokens``; warns (``ExtrapolationWarning``) outside the range."""
        t = np.atleast_1d(np.asarray(tokens, dtype=float))
        self._check_range(t)
        return np.asarray(self.intercept + self.slope_per_doubling * np.log2(t))

    def band(self, tokens: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap band of the fitted line at ``tokens`` (no range warning)."""
        t = np.log2(np.asarray(tokens, dtype=float))
        if len(self.boot) == 0:
            line = self.intercept + self.slope_per_doubling * t
            return line, line
        lines = self.boot[:, :1] + self.boot[:, 1:] * t[None, :]
        return percentile_ci(lines, self.level)

    def to_dict(self) -> dict[str, Any]:
        """The ``fit`` entry of ``summary.json``."""
        return {
            "intercept": self.intercept, "slope_per_doubling": self.slope_per_doubling,
            "ci": [self.ci[0], self.ci[1]], "r2": self.r2, "x": self.x_label,
        }


def fit_log_linear(
    tokens_by_budget: np.ndarray | Sequence[float],
    acc_by_problem_budget: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> LogLinearFit:
    """Least squares of per-budget mean accuracy on log2 of per-budget mean realized tokens.

    ``acc_by_problem_budget`` is problems x budgets; ``tokens_by_budget`` is the same
    shape (per-problem mean realized tokens, so the bootstrap recomputes x too) or one
    value per budget. Needs at least two budgets with distinct token means.
    """
    acc = np.asarray(acc_by_problem_budget, dtype=float)
    if acc.ndim != 2:
        raise ValueError("acc_by_problem_budget must be problems x budgets")
    tok = _as_problem_matrix(tokens_by_budget, acc.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        x = np.log2(np.nanmean(tok, axis=0))
        y = np.nanmean(acc, axis=0)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 2 or np.ptp(x[keep]) <= 1e-12:
        raise ValueError("a log-linear fit needs at least two budgets with distinct token means")
    a, b = _ols(x[keep], y[keep])
    resid = y[keep] - (a + b * x[keep])
    ss_tot = float(((y[keep] - y[keep].mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    boot = np.empty((0, 2))
    ci = (float("nan"), float("nan"))
    if n_boot > 0:
        weights = boot_weights(acc.shape[0], n_boot, np.random.default_rng(seed))
        yb = boot_means(weights, acc)[:, keep]
        with np.errstate(invalid="ignore", divide="ignore"):
            xb = (np.log2(boot_means(weights, tok)) if tok.shape[0] == acc.shape[0]
                  else np.broadcast_to(x, (n_boot, *x.shape)))[:, keep]
            ab, bb = _ols(xb, yb)
        boot = np.column_stack([ab, bb])
        boot = boot[np.all(np.isfinite(boot), axis=1)]
        low, high = percentile_ci(boot[:, 1], level)
        ci = (float(low), float(high))
    tokens_mean = 2.0 ** x[keep]
    return LogLinearFit(
        intercept=float(a), slope_per_doubling=float(b), ci=ci, r2=r2,
        x_range=(float(tokens_mean.min()), float(tokens_mean.max())), level=level,
        n_problems=acc.shape[0],
        points=tuple(zip(tokens_mean.tolist(), y[keep].tolist(), strict=True)), boot=boot,
    )


# ---------------------------------------------------------------- saturating fit


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)))


@dataclass(frozen=True)
class SigmoidFit:
    """``accuracy = lo + (hi - lo) * sigmoid(a + b * log2 tokens)``, fitted by binomial ML."""

    lo: float
    hi: float
    a: float
    b: float
    loglik: float
    x_range: tuple[float, float]

    def predict(self, tokens: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """Predicted accuracy; warns (``ExtrapolationWarning``) outside the measured range."""
        t = np.atleast_1d(np.asarray(tokens, dtype=float))
        lo_t, hi_t = self.x_range
        if np.any(t < lo_t * (1 - 1e-9)) or np.any(t > hi_t * (1 + 1e-9)):
            warnings.warn(
                f"extrapolating a sigmoid fit measured on {lo_t:,.0f}..{hi_t:,.0f} tokens",
                ExtrapolationWarning, stacklevel=2,
            )
        return self.lo + (self.hi - self.lo) * _sigmoid(self.a + self.b * np.log2(t))


def _pooled(
    tokens_by_budget: np.ndarray | Sequence[float],
    acc_by_problem_budget: np.ndarray,
    n_by_budget: Sequence[float] | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    acc = np.asarray(acc_by_problem_budget, dtype=float)
    tok = _as_problem_matrix(tokens_by_budget, acc.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        x = np.log2(np.nanmean(tok, axis=0))
        y = np.nanmean(acc, axis=0)
    n = (np.asarray(n_by_budget, dtype=float) if n_by_budget is not None
         else np.isfinite(acc).sum(axis=0).astype(float))
    keep = np.isfinite(x) & np.isfinite(y) & (n > 0)
    return x[keep], y[keep], n[keep]


def _binomial_loglik(p: np.ndarray, y: np.ndarray, n: np.ndarray) -> float:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float((n * (y * np.log(p) + (1 - y) * np.log(1 - p))).sum())


def fit_sigmoid(
    tokens_by_budget: np.ndarray | Sequence[float],
    acc_by_problem_budget: np.ndarray,
    *,
    n_by_budget: Sequence[float] | np.ndarray | None = None,
) -> SigmoidFit:
    """Maximum-likelihood saturating curve on per-budget pooled accuracy.

    ``n_by_budget`` is how many graded samples each budget's mean rests on (defaults to
    the number of problems); it weights the binomial likelihood used for AIC.
    """
    x, y, n = _pooled(tokens_by_budget, acc_by_problem_budget, n_by_budget)
    if len(x) < 3:
        raise ValueError("a sigmoid fit needs at least three budgets")
    xc = x - x.mean()
    scale = max(float(np.ptp(x)), 1e-6)

    def nll(theta: np.ndarray) -> float:
        lo, hi = _sigmoid(theta[0]), _sigmoid(theta[1])
        lo, hi = min(lo, hi), max(lo, hi)
        return -_binomial_loglik(lo + (hi - lo) * _sigmoid(theta[2] + theta[3] * xc), y, n)

    best: Any = None
    for lo0, hi0, b0 in ((0.0, 1.0, 1.0), (y.min() * 0.8, min(1, y.max() * 1.1 + .02), 4.0),
                         (0.0, 1.0, 0.3)):
        lo0 = min(max(lo0, 1e-3), 0.98)
        hi0 = min(max(hi0, lo0 + 1e-2), 0.999)
        start = np.array([math.log(lo0 / (1 - lo0)), math.log(hi0 / (1 - hi0)), 0.0, b0 / scale])
        res = optimize.minimize(nll, start, method="Nelder-Mead",
                                options={"maxiter": 4000, "xatol": 1e-7, "fatol": 1e-9})
        if best is None or res.fun < best.fun:
            best = res
    lo, hi = sorted((float(_sigmoid(best.x[0])), float(_sigmoid(best.x[1]))))
    a = float(best.x[2] - best.x[3] * x.mean())
    tokens = 2.0**x
    return SigmoidFit(lo=lo, hi=hi, a=a, b=float(best.x[3]), loglik=-float(best.fun),
                      x_range=(float(tokens.min()), float(tokens.max())))


@dataclass(frozen=True)
class FitComparison:
    """AIC of the log-linear and sigmoid fits on the same binomial likelihood."""

    aic: dict[str, float]
    preferred: str
    delta_aic: float
    log_linear: LogLinearFit
    sigmoid: SigmoidFit | None


def compare_fits(
    tokens_by_budget: np.ndarray | Sequence[float],
    acc_by_problem_budget: np.ndarray,
    *,
    n_by_budget: Sequence[float] | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> FitComparison:
    """Log-linear (2 parameters) vs saturating sigmoid (4) by AIC; lower wins.

    Both are scored by the binomial likelihood of the pooled per-budget accuracy (the
    log-linear line clipped into (0, 1)), so the AIC difference measures curvature.
    With fewer than three budgets only the log-linear fit is possible.
    """
    lin = fit_log_linear(tokens_by_budget, acc_by_problem_budget, n_boot=n_boot, seed=seed)
    x, y, n = _pooled(tokens_by_budget, acc_by_problem_budget, n_by_budget)
    aic = {"log_linear": 4.0 - 2.0 * _binomial_loglik(lin.intercept + lin.slope_per_doubling * x,
                                                       y, n)}
    sig: SigmoidFit | None = None
    if len(x) >= 3:
        sig = fit_sigmoid(tokens_by_budget, acc_by_problem_budget, n_by_budget=n_by_budget)
        aic["sigmoid"] = 8.0 - 2.0 * sig.loglik
    preferred = min(aic, key=lambda k: aic[k])
    delta = abs(aic["log_linear"] - aic["sigmoid"]) if sig is not None else 0.0
    return FitComparison(aic=aic, preferred=preferred, delta_aic=delta, log_linear=lin,
                         sigmoid=sig)


# ---------------------------------------------------------------- coverage law


@dataclass(frozen=True)
class CoverageFit:
    """Brown et al. 2024: ``log pass@k = a * k**b`` (a < 0, b < 0), fitted in log-log space."""

    a: float
    b: float
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    k_range: tuple[int, int]
    level: float = 0.95
    boot: np.ndarray = field(default_factory=lambda: np.empty((0, 2)), repr=False)

    def forecast(self, k: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """pass@k predicted by the law (meant for k beyond the measured range)."""
        kk = np.atleast_1d(np.asarray(k, dtype=float))
        return np.asarray(np.exp(self.a * kk**self.b))

    def forecast_interval(
        self, k: float | Sequence[float] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise problem-bootstrap interval of the forecast."""
        kk = np.atleast_1d(np.asarray(k, dtype=float))
        if len(self.boot) == 0:
            value = self.forecast(kk)
            return value, value
        values = np.exp(self.boot[:, :1] * kk[None, :] ** self.boot[:, 1:])
        return percentile_ci(values, self.level)


def _coverage_params(log_k: np.ndarray, coverage: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise fit of ``log(-log C) = log(-a) + b log k``; points with C in {0, 1} dropped."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.log(-np.log(coverage))
    ok = np.isfinite(z)
    xs = np.where(ok, log_k, 0.0)
    zs = np.where(ok, z, 0.0)
    n = ok.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, mz = xs.sum(-1) / n, zs.sum(-1) / n
        dx = np.where(ok, log_k - mx[..., None], 0.0)
        slope = (dx * (zs - mz[..., None])).sum(-1) / (dx * dx).sum(-1)
        intercept = mz - slope * mx
    slope = np.where(n >= 2, slope, np.nan)
    return -np.exp(intercept), slope


def fit_coverage_law(
    ks: Sequence[int] | np.ndarray,
    pass_at_k: Sequence[float] | np.ndarray,
    *,
    per_problem: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> CoverageFit:
    """Fit the coverage law to pass@k at ``ks``; ``per_problem`` (problems x ks) gives CIs.

    Points where coverage is 0 or 1 carry no information in log-log space and are
    dropped; at least two informative ks are needed.
    """
    k_arr = np.asarray(ks, dtype=float)
    cov = np.asarray(pass_at_k, dtype=float)
    a, b = _coverage_params(np.log(k_arr), cov)
    if not np.isfinite(b):
        raise ValueError("the coverage law needs pass@k strictly between 0 and 1 at two ks")
    boot = np.empty((0, 2))
    ci_a = ci_b = (float("nan"), float("nan"))
    if per_problem is not None and n_boot > 0:
        values = np.asarray(per_problem, dtype=float)
        weights = boot_weights(values.shape[0], n_boot, np.random.default_rng(seed))
        ab, bb = _coverage_params(np.log(k_arr)[None, :], boot_means(weights, values))
        boot = np.column_stack([ab, bb])
        boot = boot[np.all(np.isfinite(boot), axis=1)]
        la, ha = percentile_ci(boot[:, 0], level)
        lb, hb = percentile_ci(boot[:, 1], level)
        ci_a, ci_b = (float(la), float(ha)), (float(lb), float(hb))
    return CoverageFit(a=float(a), b=float(b), ci_a=ci_a, ci_b=ci_b,
                       k_range=(int(k_arr.min()), int(k_arr.max())), level=level, boot=boot)
