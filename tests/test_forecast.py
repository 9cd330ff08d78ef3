"""The distributional pass@k forecaster (Schaeffer et al. 2025): its closed form, its
maximum-likelihood fit, its problem-bootstrap intervals and its refusals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from ttc.estimators import pass_at_k
from ttc.forecast import (
    EXTRAPOLATION_FACTOR,
    BetaCoverageFit,
    _fit_many,
    _loglik,
    beta_pass_at_k,
    fit_beta_coverage,
)


def test_closed_form_matches_integration_and_exact_cases() -> None:
    # Beta(1, 1) is uniform: 1 - E[(1-p)^k] = 1 - 1/(k+1)
    ks = np.array([1, 2, 10, 1000, 10**6])
    np.testing.assert_allclose(beta_pass_at_k(1.0, 1.0, ks), ks / (ks + 1.0), rtol=1e-13)
    for a, b, k in [(0.3, 2.0, 5), (0.05, 0.4, 200), (2.5, 7.0, 1)]:
        dist = stats.beta(a, b)
        ref, _ = integrate.quad(lambda p, k=k, dist=dist: (1 - (1 - p) ** k) * dist.pdf(p),
                                0, 1, limit=200, points=[1e-9, 1e-3])
        assert beta_pass_at_k(a, b, k) == pytest.approx(ref, rel=1e-7)
    # tiny values keep their relative precision (expm1, not 1 - exp)
    assert beta_pass_at_k(1e-6, 1.0, 1) == pytest.approx(1e-6 / (1 + 1e-6), rel=1e-12)


def test_loglik_is_the_beta_binomial_likelihood() -> None:
    c = np.array([0.0, 3.0, 8.0, 5.0])
    n = np.array([8.0, 8.0, 8.0, 20.0])
    w = np.array([[2.0, 1.0, 4.0, 1.0]])
    a, b = 0.7, 1.9
    combs = [math.comb(int(nn), int(cc)) for cc, nn in zip(c, n, strict=True)]
    const = (w[0] * np.log(combs)).sum()
    ref = (w[0] * stats.betabinom.logpmf(c, n, a, b)).sum()
    got = _loglik(np.log([[a, b]]), c, n, w)[0] + const
    assert got == pytest.approx(ref, rel=1e-12)


def test_fit_reaches_the_maximum_scipy_finds() -> None:
    rng = np.random.default_rng(3)
    n = rng.integers(5, 60, 300)
    c = rng.binomial(n, rng.beta(0.4, 1.5, 300))
    fit = fit_beta_coverage(c, n, n_boot=0)
    assert fit.converged and fit.warnings == ()
    nll = lambda th: -_loglik(np.asarray(th)[None, :], c.astype(float), n.astype(float),  # noqa: E731
                              np.ones((1, c.size)))[0]
    ref = optimize.minimize(nll, [0.0, 0.0], method="Nelder-Mead",
                            options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 5000})
    assert -ref.fun <= fit.loglik + 1e-8
    np.testing.assert_allclose(np.log([fit.alpha, fit.beta]), ref.x, atol=1e-5)


def test_recovers_a_known_beta_and_its_interval_covers_the_truth() -> None:
    rng = np.random.default_rng(11)
    a, b = 0.35, 2.0
    n = np.full(1500, 40)
    c = rng.binomial(n, rng.beta(a, b, n.size))
    fit = fit_beta_coverage(c, n, n_boot=300, seed=5)
    assert fit.ci_alpha[0] < a < fit.ci_alpha[1]
    assert fit.ci_beta[0] < b < fit.ci_beta[1]
    ks = np.array([1, 10, 40, 160, 161, 10_000])
    fc = fit.forecast(ks)
    truth = beta_pass_at_k(a, b, ks)
    ci = fc.confidence_interval
    assert np.all(ci.low <= truth) and np.all(truth <= ci.high)
    assert fc.extrapolated.tolist() == [False, False, False, False, True, True]
    assert np.all(fc.standard_error > 0)
    frame = fc.to_frame()
    assert list(frame.columns) == ["k", "point", "low", "high", "standard_error", "extrapolated"]
    assert frame["k"].dtype == np.int64 and frame["extrapolated"].dtype == bool
    assert EXTRAPOLATION_FACTOR * fit.max_n == 160


def test_bootstrap_is_seeded_and_resamples_problems() -> None:
    rng = np.random.default_rng(1)
    n = rng.integers(4, 16, 80)
    c = rng.binomial(n, rng.beta(0.5, 0.8, 80))
    f1 = fit_beta_coverage(c, n, n_boot=200, seed=9)
    f2 = fit_beta_coverage(c, n, n_boot=200, seed=9)
    f3 = fit_beta_coverage(c, n, n_boot=200, seed=10)
    np.testing.assert_array_equal(f1.boot, f2.boot)
    assert not np.array_equal(f1.boot, f3.boot)
    # reordering problems changes nothing but which replicate is which
    order = rng.permutation(80)
    f4 = fit_beta_coverage(c[order], n[order], n_boot=0)
    assert f4.alpha == pytest.approx(f1.alpha, rel=1e-8)


def test_recorded_math_fit_reproduces_the_observed_pass_at_k(shared_data: Path) -> None:
    path = shared_data / "recorded" / "math_cot_100.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    c = np.array([sum(r["score"]) for r in rows])
    n = np.full(c.size, 8)
    fc = fit_beta_coverage(c, n, n_boot=300, seed=0).forecast([1, 2, 4, 8])
    observed = [np.mean([pass_at_k(8, int(ci), k) for ci in c]) for k in (1, 2, 4, 8)]
    assert np.all(fc.confidence_interval.low <= observed)
    assert np.all(np.asarray(observed) <= fc.confidence_interval.high)
    np.testing.assert_allclose(fc.point, observed, atol=0.01)


def test_refusals_and_warnings() -> None:
    with pytest.raises(ValueError, match="no problem was ever solved"):
        fit_beta_coverage([0, 0, 0], [8, 8, 8])
    with pytest.raises(ValueError, match="every sample of every problem is correct"):
        fit_beta_coverage([8, 4], [8, 4])
    with pytest.raises(TypeError, match="^c must be an array of integer counts"):
        fit_beta_coverage([1.5, 2.0], [8, 8])
    with pytest.raises(TypeError, match="^n must be an array of integer counts"):
        fit_beta_coverage([1, 2], [8.0, 8.0])
    with pytest.raises(ValueError, match=r"need 0 <= c <= n, got c=9, n=8 at problem 1"):
        fit_beta_coverage([1, 9], [8, 8])
    with pytest.raises(ValueError, match="at least one sample"):
        fit_beta_coverage([0, 1], [0, 8])
    small = fit_beta_coverage([1, 3, 8, 0], [8, 8, 8, 8], n_boot=50)
    assert any("only 4 problems" in w for w in small.warnings)
    none = fit_beta_coverage([1, 3, 8, 0] * 5, [8] * 20, n_boot=0)
    assert isinstance(none, BetaCoverageFit) and math.isnan(none.ci_alpha[0])
    fc = none.forecast(3)
    assert math.isnan(fc.confidence_interval.low[0]) and 0 < fc.point[0] < 1
    with pytest.raises(ValueError, match="ks must be at least 1"):
        none.forecast([0, 1])
    with pytest.raises(TypeError, match="ks must be an int"):
        none.forecast([1.5])


def test_vectorised_optimiser_agrees_row_by_row() -> None:
    rng = np.random.default_rng(4)
    c = np.array([0.0, 1.0, 2.0, 5.0, 8.0])
    n = np.full(5, 8.0)
    w = rng.integers(0, 5, (6, 5)).astype(float) + np.array([1, 0, 0, 0, 1])
    many, ll, ok = _fit_many(c, n, w, np.zeros((6, 2)))
    for r in range(6):
        one, ll1, ok1 = _fit_many(c, n, w[r : r + 1], np.zeros((1, 2)))
        assert ok[r] == ok1[0]
        np.testing.assert_allclose(many[r], one[0], atol=1e-7)


def test_one_sample_per_problem_cannot_identify_the_spread() -> None:
    """With n_i = 1 everywhere only the mean success rate is identified: any Beta with
    that mean has the same likelihood, so pass@k for k > 1 is not in the data. The fit
    used to return its starting point (alpha = beta = 20.1 here) with no warning and a
    "95% interval" for pass@1000 of [0.95, 1]."""
    with pytest.raises(ValueError, match="one sample"):
        fit_beta_coverage([0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 0, 1], [1] * 12)
    with pytest.raises(ValueError, match="one sample"):
        fit_beta_coverage([0, 1], [1, 1])
    mixed = fit_beta_coverage([0, 1, 1, 0, 3] * 4, [1, 1, 1, 1, 8] * 4, n_boot=0)
    assert mixed.converged  # one problem with several samples is information


def test_an_interval_needs_two_bootstrap_replicates() -> None:
    """One replicate is a point, not an interval: it used to be reported as [x, x] with
    x != the point forecast."""
    c, n = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 3, 2], [10] * 12
    fc = fit_beta_coverage(c, n, n_boot=1).forecast([1, 10])
    assert np.isnan(fc.confidence_interval.low).all()
    assert np.isnan(fc.confidence_interval.high).all()
    with pytest.raises(ValueError, match="n_boot"):
        fit_beta_coverage(c, n, n_boot=-5)


def test_reports_forecast_with_both_forecasters_on_one_draw(tmp_path: Path) -> None:
    """analyze() runs the coverage law and the Beta-binomial forecaster side by side, each
    marking forecasts beyond 4x the largest measured k, and the report states both."""
    import asyncio

    from ttc.config import config_from_dict
    from ttc.report import write_report
    from ttc.run import open_run
    from ttc.sampler import Sweep

    cfg = config_from_dict({"model": {"provider": "simulated", "seed": 3},
                            "dataset": {"builtin": "arithmetic", "size": 40},
                            "sweep": {"budgets": [2048], "samples": 8}})
    asyncio.run(Sweep(cfg, tmp_path / "run").run())
    with open_run(tmp_path / "run") as run:
        analysis = run.analyze(n_boot=200)
        out = write_report(run, tmp_path / "report", n_boot=200)
    methods = {f.method: f for f in analysis.forecasts}
    assert set(methods) == {"coverage_law", "beta_binomial"}
    beta = methods["beta_binomial"]
    assert beta.error is None and beta.params["alpha"] > 0 and beta.params["beta"] > 0
    for forecast in methods.values():
        assert [p.k for p in forecast.points] == [32, 128]  # 4x and 16x the largest k = 8
        assert [p.extrapolated for p in forecast.points] == [False, True]
        assert all(0.0 <= p.ci_low <= p.value <= p.ci_high <= 1.0 for p in forecast.points)
    text = (out / "report.md").read_text()
    assert "Beta-binomial forecast at budget 2048" in text and "Coverage law at budget" in text
