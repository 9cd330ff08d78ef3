"""Scaling-law fits with problem-bootstrap intervals.

Accuracy against log2 of realized thinking tokens (a line, and a saturating sigmoid
compared by AIC); the pass@k coverage law is in ``ttc.coverage``. Inputs are
per-problem arrays (NaN: the problem has no value there); every interval comes from
``ttc.bootstrap``, resampling PROBLEMS, never samples, and a caller can pass the
``ProblemBootstrap`` of its analysis so fits share the draw of every other interval.
``ttc.analysis`` builds the arrays from a run.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize

from ttc.bootstrap import BootstrapResult, ProblemBootstrap

__all__ = [
    "EXTRAPOLATION_FACTOR",
    "X_LABEL",
    "ExtrapolationWarning",
    "FitComparison",
    "LogLinearFit",
    "SigmoidFit",
    "compare_fits",
    "fit_log_linear",
    "fit_sigmoid",
]

X_LABEL = "log2 mean realized thinking tokens"
#: a forecast beyond this multiple of the largest measured k (or tokens) is marked extrapolated
EXTRAPOLATION_FACTOR = 4.0


class ExtrapolationWarning(UserWarning):
    """A fit was asked about tokens outside the range it was measured on."""


def bootstrap_for(n_problems: int, n_boot: int, seed: int, level: float,
               given: ProblemBootstrap | None) -> ProblemBootstrap:
    """The caller's shared bootstrap (one analysis, one draw), or a fresh seeded one."""
    if given is None:
        return ProblemBootstrap(n_problems, n_boot=n_boot, seed=seed, level=level)
    if given.n_problems != n_problems:
        raise ValueError(f"bootstrap is over {given.n_problems} problems, data has {n_problems}")
    return given


def n_with_values(matrix: np.ndarray) -> int:
    return int((~np.isnan(matrix)).any(axis=1).sum()) if matrix.size else 0


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
    """``accuracy = intercept + slope_per_doubling * log2(tokens)`` with a problem-bootstrap CI.

    ``slope`` holds the slope's bootstrap result (``degenerate`` with one problem, when
    ``ci`` is NaN); ``params`` the replicate (intercept, slope) pairs behind ``band``.
    """

    intercept: float
    slope_per_doubling: float
    ci: tuple[float, float]
    r2: float
    x_range: tuple[float, float]
    x_label: str = X_LABEL
    level: float = 0.95
    n_problems: int = 0
    points: tuple[tuple[float, float], ...] = ()
    slope: BootstrapResult | None = None
    params: np.ndarray | None = None
    bootstrap: ProblemBootstrap | None = None

    @property
    def n_budgets(self) -> int:
        return len(self.points)

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
        """Pointwise bootstrap band of the line at ``tokens``, clipped to [0, 1] (accuracy).

        NaN where the fit has no interval (one problem, or ``n_boot = 0``).
        """
        t = np.log2(np.asarray(tokens, dtype=float))
        line = self.intercept + self.slope_per_doubling * t
        if self.bootstrap is None or self.params is None or self.params.shape[0] == 0:
            return np.full(line.shape, np.nan), np.full(line.shape, np.nan)
        lines = self.params[:, :1] + self.params[:, 1:] * t[None, :]
        res = self.bootstrap.interval(line, lines, n_problems=self.n_problems, bounds=(0.0, 1.0))
        return res.confidence_interval.low, res.confidence_interval.high

    def leaves_unit_interval(self, factor: float = EXTRAPOLATION_FACTOR) -> float | None:
        """Tokens (within ``factor`` x beyond the measured range) where the line leaves
        [0, 1], or None: past that point a log-linear law cannot hold."""
        lo, hi = self.x_range
        for t in (hi * factor, lo / factor):
            value = self.intercept + self.slope_per_doubling * math.log2(t)
            if not 0.0 <= value <= 1.0 and self.slope_per_doubling != 0:
                edge = 1.0 if value > 1.0 else 0.0
                return float(2.0 ** ((edge - self.intercept) / self.slope_per_doubling))
        return None

    def to_dict(self) -> dict[str, Any]:
        """The ``fit`` entry of ``summary.json`` (the report adds ``warnings``)."""
        return {
            "intercept": self.intercept, "slope_per_doubling": self.slope_per_doubling,
            "ci": None if self.slope is None or self.slope.degenerate else [self.ci[0],
                                                                            self.ci[1]],
            "r2": self.r2, "x": self.x_label, "x_range": list(self.x_range),
            "n_budgets": self.n_budgets, "n_problems": self.n_problems,
        }


def fit_log_linear(
    tokens_by_budget: np.ndarray | Sequence[float],
    acc_by_problem_budget: np.ndarray,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    bootstrap: ProblemBootstrap | None = None,
) -> LogLinearFit:
    """Least squares of per-budget mean accuracy on log2 of per-budget mean realized tokens.

    ``acc_by_problem_budget`` is problems x budgets (NaN: the problem has no graded
    sample there); ``tokens_by_budget`` is the same shape (per-problem mean realized
    tokens, so the bootstrap recomputes x too) or one value per budget. Needs at least
    two budgets with distinct token means. ``bootstrap`` shares an analysis' draw.
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
    boot = bootstrap_for(acc.shape[0], n_boot, seed, level, bootstrap)
    n_problems = n_with_values(acc)
    yb = boot.replicate_means(acc)[:, keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        xb = (np.log2(boot.replicate_means(tok)) if tok.shape[0] == acc.shape[0]
              else np.broadcast_to(x, (boot.n_boot, *x.shape)))[:, keep]
        ab, bb = _ols(xb, yb) if boot.n_boot else (np.zeros(0), np.zeros(0))
    slope = boot.interval(b, bb[:, None], n_problems=n_problems)
    tokens_mean = 2.0 ** x[keep]
    return LogLinearFit(
        intercept=float(a), slope_per_doubling=float(b),
        ci=(float(slope.confidence_interval.low[0]), float(slope.confidence_interval.high[0])),
        r2=r2, x_range=(float(tokens_mean.min()), float(tokens_mean.max())), level=boot.level,
        n_problems=n_problems,
        points=tuple(zip(tokens_mean.tolist(), y[keep].tolist(), strict=True)),
        slope=slope, params=np.column_stack([ab, bb]), bootstrap=boot,
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
    """AIC of the log-linear and sigmoid fits on the same binomial likelihood (both fitted)."""

    aic: dict[str, float]
    preferred: str
    delta_aic: float
    log_linear: LogLinearFit
    sigmoid: SigmoidFit


def compare_fits(
    tokens_by_budget: np.ndarray | Sequence[float],
    acc_by_problem_budget: np.ndarray,
    *,
    n_by_budget: Sequence[float] | np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    log_linear: LogLinearFit | None = None,
) -> FitComparison:
    """Log-linear (2 parameters) vs saturating sigmoid (4) by AIC; lower wins.

    Both are scored by the binomial likelihood of the pooled per-budget accuracy (the
    log-linear line clipped into (0, 1)), so the AIC difference measures curvature.
    A comparison needs both models: fewer than three budgets raise ``ValueError``
    (a two-budget run has only the line, and an AIC of one model compares nothing).
    ``log_linear`` reuses a fit already made on the same data.
    """
    x, y, n = _pooled(tokens_by_budget, acc_by_problem_budget, n_by_budget)
    if len(x) < 3:
        raise ValueError("comparing the line with a sigmoid needs at least three budgets")
    lin = log_linear or fit_log_linear(tokens_by_budget, acc_by_problem_budget, n_boot=n_boot,
                                       seed=seed)
    sig = fit_sigmoid(tokens_by_budget, acc_by_problem_budget, n_by_budget=n_by_budget)
    aic = {"log_linear": 4.0 - 2.0 * _binomial_loglik(lin.intercept + lin.slope_per_doubling * x,
                                                       y, n),
           "sigmoid": 8.0 - 2.0 * sig.loglik}
    preferred = min(aic, key=lambda k: aic[k])
    return FitComparison(aic=aic, preferred=preferred,
                         delta_aic=abs(aic["log_linear"] - aic["sigmoid"]), log_linear=lin,
                         sigmoid=sig)
