"""Coverage at large k: the pass@k law of Brown et al. (2024) and the forecaster seam.

``fit_coverage_law`` fits ``log pass@k = a * k**b`` to a run's exact pass@k curve;
``CoverageForecaster`` is the one-method protocol a forecaster implements (the
coverage law, and ``beta_binomial``: the Beta-binomial forecaster of per-problem
success rates of Schaeffer et al. 2025, ``ttc.forecast``), so ``ttc.analysis`` and
reports forecast with every forecaster the same way, on the same bootstrap draw. A
forecast beyond ``EXTRAPOLATION_FACTOR`` x the largest
measured k is marked ``extrapolated``: nothing in the run checks it out there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ttc.bootstrap import ProblemBootstrap
from ttc.config import Budget
from ttc.fits import EXTRAPOLATION_FACTOR, bootstrap_for, n_with_values

__all__ = [
    "CoverageData",
    "CoverageFit",
    "CoverageForecast",
    "CoverageForecaster",
    "ForecastPoint",
    "beta_binomial",
    "coverage_law",
    "fit_coverage_law",
]


@dataclass(frozen=True)
class CoverageFit:
    """Brown et al. 2024: ``log pass@k = a * k**b`` (a < 0, b < 0), fitted in log-log space.

    A forecast at k beyond ``EXTRAPOLATION_FACTOR`` x the largest measured k is marked
    ``extrapolated``: the law is an empirical fit, and nothing checks it out there.
    """

    a: float
    b: float
    ci_a: tuple[float, float]
    ci_b: tuple[float, float]
    k_range: tuple[int, int]
    level: float = 0.95
    n_problems: int = 0
    params: np.ndarray | None = None
    bootstrap: ProblemBootstrap | None = None

    def forecast(self, k: float | Sequence[float] | np.ndarray) -> np.ndarray:
        """pass@k predicted by the law (meant for k beyond the measured range)."""
        kk = np.atleast_1d(np.asarray(k, dtype=float))
        return np.asarray(np.exp(self.a * kk**self.b))

    def forecast_interval(
        self, k: float | Sequence[float] | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise problem-bootstrap interval of the forecast, in [0, 1]; NaN without one."""
        kk = np.atleast_1d(np.asarray(k, dtype=float))
        value = self.forecast(kk)
        if self.bootstrap is None or self.params is None or self.params.shape[0] == 0:
            return np.full(kk.shape, np.nan), np.full(kk.shape, np.nan)
        with np.errstate(invalid="ignore", over="ignore"):
            values = np.exp(self.params[:, :1] * kk[None, :] ** self.params[:, 1:])
        res = self.bootstrap.interval(value, values, n_problems=self.n_problems,
                                      bounds=(0.0, 1.0))
        return res.confidence_interval.low, res.confidence_interval.high

    def extrapolated(self, k: float) -> bool:
        """True beyond ``EXTRAPOLATION_FACTOR`` x the largest measured k."""
        return float(k) > EXTRAPOLATION_FACTOR * self.k_range[1]


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
    bootstrap: ProblemBootstrap | None = None,
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
    params = None
    boot = None
    ci_a = ci_b = (float("nan"), float("nan"))
    n_problems = 0
    if per_problem is not None:
        values = np.asarray(per_problem, dtype=float)
        boot = bootstrap_for(values.shape[0], n_boot, seed, level, bootstrap)
        n_problems = n_with_values(values)
        ab, bb = _coverage_params(np.log(k_arr)[None, :], boot.replicate_means(values))
        params = np.column_stack([ab, bb])
        res = boot.interval([a, b], params, n_problems=n_problems)
        low, high = res.confidence_interval
        ci_a, ci_b = (float(low[0]), float(high[0])), (float(low[1]), float(high[1]))
    return CoverageFit(a=float(a), b=float(b), ci_a=ci_a, ci_b=ci_b,
                       k_range=(int(k_arr.min()), int(k_arr.max())), level=level,
                       n_problems=n_problems, params=params, bootstrap=boot)


# ---------------------------------------------------------------- forecasters


@dataclass(frozen=True)
class CoverageData:
    """What a forecaster sees: one budget's exact pass@k per problem and raw counts.

    ``pass_by_problem`` is problems x ``ks``; ``n`` and ``correct`` are each problem's
    graded samples and summed credit there (what a Beta-binomial fit needs);
    ``horizon`` the ks to forecast; ``bootstrap`` the analysis' shared draw.
    """

    budget: Budget
    ks: np.ndarray
    pass_by_problem: np.ndarray
    n: np.ndarray
    correct: np.ndarray
    horizon: Sequence[int]
    bootstrap: ProblemBootstrap


@dataclass(frozen=True)
class ForecastPoint:
    k: int
    value: float
    ci_low: float
    ci_high: float
    extrapolated: bool  # beyond EXTRAPOLATION_FACTOR x the largest measured k


@dataclass(frozen=True)
class CoverageForecast:
    """One forecaster's answer; ``error`` says why there is none."""

    method: str
    budget: Budget
    params: dict[str, Any] = field(default_factory=dict)
    points: list[ForecastPoint] = field(default_factory=list)
    error: str | None = None


class CoverageForecaster(Protocol):
    """Forecasts pass@k at ``data.horizon`` from a run's measured coverage."""

    def __call__(self, data: CoverageData) -> CoverageForecast: ...


def coverage_law(data: CoverageData) -> CoverageForecast:
    """The Brown et al. law as a forecaster (the default one)."""
    means = np.nanmean(data.pass_by_problem, axis=0) if data.pass_by_problem.size else []
    try:
        law = fit_coverage_law(data.ks, means, per_problem=data.pass_by_problem,
                               bootstrap=data.bootstrap)
    except ValueError as exc:
        return CoverageForecast("coverage_law", data.budget, error=str(exc))
    low, high = law.forecast_interval(list(data.horizon))
    points = [ForecastPoint(int(k), float(v), float(lo), float(hi), law.extrapolated(k))
              for k, v, lo, hi in zip(data.horizon, law.forecast(list(data.horizon)), low, high,
                                      strict=True)]
    return CoverageForecast(
        "coverage_law", data.budget,
        params={"a": law.a, "b": law.b, "ci_a": list(law.ci_a), "ci_b": list(law.ci_b),
                "k_range": list(law.k_range)},
        points=points)


def beta_binomial(data: CoverageData) -> CoverageForecast:
    """Schaeffer et al. 2025 as a forecaster: a Beta fitted to per-problem success counts.

    It reads the raw counts (correct of n graded samples per problem), not the pass@k
    curve, so it needs whole verdicts; graded credit gets an error, not a guess.
    """
    from ttc.forecast import fit_beta_coverage

    n = np.asarray(data.n, dtype=float)
    correct = np.asarray(data.correct, dtype=float)
    keep = np.isfinite(n) & np.isfinite(correct) & (n > 0)
    if not keep.any():
        return CoverageForecast("beta_binomial", data.budget, error="no graded samples")
    whole = np.round(correct[keep])
    if not np.allclose(correct[keep], whole, atol=1e-9):
        return CoverageForecast("beta_binomial", data.budget,
                                error="it needs right/wrong verdicts, and this run has "
                                      "graded credit")
    boot = data.bootstrap if keep.all() else data.bootstrap.subset(keep, "beta_binomial")
    try:
        fit = fit_beta_coverage(whole.astype(np.int64), n[keep].astype(np.int64),
                                bootstrap=boot)
    except ValueError as exc:
        return CoverageForecast("beta_binomial", data.budget, error=str(exc))
    result = fit.forecast(np.asarray(list(data.horizon), dtype=np.int64))
    points = [ForecastPoint(int(k), float(v), float(lo), float(hi), bool(ex))
              for k, v, lo, hi, ex in zip(result.k, result.point, result.confidence_interval.low,
                                          result.confidence_interval.high, result.extrapolated,
                                          strict=True)]
    return CoverageForecast(
        "beta_binomial", data.budget,
        params={"alpha": fit.alpha, "beta": fit.beta, "ci_alpha": list(fit.ci_alpha),
                "ci_beta": list(fit.ci_beta), "k_range": [1, fit.max_n],
                "warnings": list(fit.warnings)},
        points=points)
