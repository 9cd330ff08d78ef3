"""ttc.analysis against the simulated backend's known truth and hand-computed cases."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ttc.analysis import analyze, budget_table
from ttc.bootstrap import ProblemBootstrap
from ttc.config import Budget, budget_sort_key
from ttc.coverage import fit_coverage_law
from ttc.fits import ExtrapolationWarning, compare_fits, fit_log_linear
from ttc.frontier import frontier_frame, pareto_mask
from ttc.problems import Problem
from ttc.providers.simulated import SimulatedModel

COLUMNS = ["problem_id", "budget", "sample_index", "status", "correct", "thinking_tokens",
           "output_tokens", "subject"]


def simulated_frame(model: SimulatedModel, problems: list[Problem], budgets: list[int],
                    samples: int) -> pd.DataFrame:
    """Samples drawn by the simulated backend's own generative model, as Run.samples() holds."""
    rows = []
    for p in problems:
        for b in budgets:
            for i in range(samples):
                answer, tokens, censored, _signal = model.draw(p, b, i)
                rows.append((p.id, b, i, "censored" if censored else "ok",
                             answer == p.answer, tokens, tokens + 12, p.subject))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["budget"] = frame["budget"].astype(object)
    return frame


def true_slope(model: SimulatedModel, problems: list[Problem], budgets: list[int]) -> float:
    """Least squares slope of population accuracy on log2 of population mean thinking tokens."""
    y = [np.mean([model.true_accuracy(p, b) for p in problems]) for b in budgets]
    x = [math.log2(np.mean([model.true_mean_thinking_tokens(p, b) for p in problems]))
         for b in budgets]
    return float(np.polyfit(x, y, 1)[0])


PROBLEMS = [Problem(id=f"p{i:03d}", question="q", answer=str(100 + i),
                    subject=("algebra", "geometry")[i % 2]) for i in range(150)]
BUDGETS = [512, 1024, 2048, 4096, 8192]


@pytest.mark.parametrize("seed", [0, 3])
def test_log_linear_slope_interval_covers_the_true_slope(seed: int) -> None:
    # Over 30 model seeds the 95% interval covered the truth 29 times (seed 28 misses);
    # the problem bootstrap is conservative here because the truth is over these problems.
    model = SimulatedModel(seed=seed)
    frame = simulated_frame(model, PROBLEMS, BUDGETS, samples=4)
    table = budget_table(frame)
    fit = fit_log_linear(table.tokens, table.acc, n_boot=500, seed=0)
    truth = true_slope(model, PROBLEMS, BUDGETS)
    assert fit.ci[0] <= truth <= fit.ci[1]
    assert fit.ci[0] > 0.0  # the data carry a real, detectable effect
    assert fit.ci[1] - fit.ci[0] < truth  # and the interval is informative, not huge
    assert fit.x_range[1] < BUDGETS[-1]  # realized tokens, not the caps


def test_log_linear_exact_line_and_extrapolation_warning() -> None:
    tokens = np.array([1000.0, 2000.0, 4000.0, 8000.0])
    acc = 0.1 + 0.05 * np.log2(tokens)
    per_problem = np.tile(acc, (20, 1))
    fit = fit_log_linear(np.tile(tokens, (20, 1)), per_problem, n_boot=200, seed=1)
    assert fit.slope_per_doubling == pytest.approx(0.05)
    assert fit.intercept == pytest.approx(0.1)
    assert fit.r2 == pytest.approx(1.0)
    assert fit.ci == pytest.approx((0.05, 0.05))
    assert fit.x_range == pytest.approx((1000.0, 8000.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fit.predict(3000.0)[0] == pytest.approx(0.1 + 0.05 * math.log2(3000))
    with pytest.warns(ExtrapolationWarning):
        fit.predict([16000.0])
    assert set(fit.to_dict()) == {"intercept", "slope_per_doubling", "ci", "r2", "x", "x_range",
                                  "n_budgets", "n_problems"}
    low, high = fit.band([500.0, 1000.0, 1e9])  # a band is clipped to [0, 1]
    assert np.all((low >= 0.0) & (high <= 1.0)) and high[-1] == 1.0


def test_single_budget_cannot_be_fitted() -> None:
    with pytest.raises(ValueError, match="two budgets"):
        fit_log_linear(np.array([[1000.0]] * 5), np.array([[0.5]] * 5))


def test_bootstrap_is_seeded() -> None:
    frame = simulated_frame(SimulatedModel(seed=1), PROBLEMS[:40], [1024, 4096], samples=2)
    a = analyze(frame, n_boot=300, seed=7).budgets
    b = analyze(frame, n_boot=300, seed=7).budgets
    c = analyze(frame, n_boot=300, seed=8).budgets
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"])
    assert (a["ci_low"] <= a["accuracy"]).all() and (a["accuracy"] <= a["ci_high"]).all()


def test_failed_samples_are_counted_not_scored() -> None:
    frame = pd.DataFrame([
        ("a", 1024, 0, "ok", True, 100, 110, None),
        ("a", 1024, 1, "failed", None, 0, 0, None),
        ("b", 1024, 0, "censored", False, 1024, 1024, None),
        ("b", 1024, 1, "ok", True, 300, 310, None),
    ], columns=COLUMNS)
    frame["budget"] = frame["budget"].astype(object)
    row = analyze(frame, n_boot=50).budgets.iloc[0]
    assert row["accuracy"] == pytest.approx((1.0 + 0.5) / 2)
    assert row["n_failed"] == 1 and row["n_samples"] == 3 and row["n_problems"] == 2
    assert row["censored_fraction"] == pytest.approx(1 / 3)
    assert row["mean_thinking_tokens"] == pytest.approx((100 + (1024 + 300) / 2) / 2)


def test_named_budgets_sort_and_fit_on_realized_tokens() -> None:
    mixed: list[Budget] = ["high", 4096, "low", 1024, "medium"]
    assert sorted(mixed, key=budget_sort_key) == [
        1024, 4096, "low", "medium", "high"]
    rows = []
    for i in range(30):
        for budget, tokens, p in (("low", 1000, 0.4), ("medium", 2000, 0.5), ("high", 4000, 0.6)):
            rows.append((f"q{i}", budget, 0, "ok", (i % 10) < p * 10, tokens, tokens, None))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    table = budget_table(frame)
    assert table.budgets == ["low", "medium", "high"]
    fit = fit_log_linear(table.tokens, table.acc, n_boot=100)
    assert fit.slope_per_doubling == pytest.approx(0.1)
    analysis = analyze(frame, n_boot=100)
    assert analysis.fit is not None and analysis.fit.ci == fit.ci  # one seed, one draw
    assert str(analysis.budgets["budget"].dtype) == "category"
    assert analysis.budgets["budget"].cat.ordered
    control = analysis.control
    assert control.control is None  # effort levels have no cap to stay within
    assert control.scaling == pytest.approx(0.1)
    assert control.performance == pytest.approx(0.6)


def test_budget_control_by_hand() -> None:
    frame = pd.DataFrame([
        ("a", 1000, 0, "ok", False, 500, 510, None),
        ("a", 1000, 1, "ok", False, 1200, 1210, None),  # overshoots its budget
        ("a", 4000, 0, "ok", True, 2000, 2010, None),
        ("a", 4000, 1, "ok", True, 2000, 2010, None),
    ], columns=COLUMNS)
    frame["budget"] = frame["budget"].astype(object)
    control = analyze(frame, n_boot=0).control
    assert control.control == pytest.approx(3 / 4)
    assert control.control_by_budget == {"1000": 0.5, "4000": 1.0}
    # accuracy 0 -> 1 while mean realized tokens go 850 -> 2000
    assert control.scaling == pytest.approx(1.0 / math.log2(2000 / 850))
    assert control.scaling_s1 == pytest.approx(1000.0 / (2000 - 850))
    assert control.performance == 1.0


def test_aic_prefers_the_true_shape() -> None:
    tokens = 2.0 ** np.arange(8, 18)
    x = np.log2(tokens)
    saturating = 0.2 + 0.6 / (1 + np.exp(-(x - 12) * 1.5))
    linear = 0.05 + 0.05 * (x - 8)
    n = np.full(len(x), 4000.0)
    sat = compare_fits(tokens, np.tile(saturating, (3, 1)), n_by_budget=n, n_boot=0)
    assert sat.preferred == "sigmoid" and sat.delta_aic > 10
    assert sat.sigmoid is not None
    assert sat.sigmoid.lo == pytest.approx(0.2, abs=0.01)
    assert sat.sigmoid.hi == pytest.approx(0.8, abs=0.01)
    lin = compare_fits(tokens, np.tile(linear, (3, 1)), n_by_budget=n, n_boot=0)
    assert lin.preferred == "log_linear"
    with pytest.raises(ValueError, match="three budgets"):  # AIC of one model compares nothing
        compare_fits(tokens[:2], np.tile(linear[:2], (3, 1)), n_boot=0)


def test_coverage_law_recovers_its_parameters_and_forecasts() -> None:
    ks = np.array([1, 2, 4, 8, 16, 32])
    coverage = np.exp(-1.5 * ks**-0.6)
    rng = np.random.default_rng(0)
    per_problem = np.clip(coverage + rng.normal(0, 0.05, size=(200, len(ks))), 0, 1)
    law = fit_coverage_law(ks, coverage, per_problem=per_problem, n_boot=300, seed=0)
    assert law.a == pytest.approx(-1.5) and law.b == pytest.approx(-0.6)
    assert law.ci_b[0] <= -0.6 <= law.ci_b[1] and law.ci_b[1] - law.ci_b[0] < 0.2
    assert law.forecast(256)[0] == pytest.approx(math.exp(-1.5 * 256**-0.6))
    low, high = law.forecast_interval([256])
    assert low[0] < law.forecast(256)[0] < high[0] <= 1.0
    assert law.extrapolated(256) and not law.extrapolated(128)  # 4 x 32 = 128
    with pytest.raises(ValueError):
        fit_coverage_law([1, 2], [1.0, 1.0])


def test_pareto_mask() -> None:
    tokens = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    acc = np.array([0.5, 0.4, 0.6, 0.6, 0.7])
    assert pareto_mask(tokens, acc).tolist() == [True, False, True, False, True]


def test_frontier_compute_matching() -> None:
    budgets: list[Budget] = [1000, 4000]
    values = {(1000, 1): 0.5, (1000, 2): 0.6, (1000, 4): 0.7, (4000, 1): 0.65,
              (4000, 2): 0.7, (4000, 4): 0.72}
    columns = [[(m, k) for m in ("majority", "best_of:v") for k in (1, 2, 4)] for _ in budgets]
    matrices = [np.array([[values[(b, k)] + (0.1 if p == "a" else -0.1)
                           + (0.05 if m == "best_of:v" else 0.0) for m, k in cols]
                          for p in ("a", "b")]) for b, cols in zip(budgets, columns, strict=True)]
    generated = np.array([[600.0, 2100.0], [600.0, 2100.0]])  # mean output tokens per sample
    out = frontier_frame(budgets, generated, columns, matrices, ProblemBootstrap(2, n_boot=100),
                         scorer_tokens={"v": 50.0})
    both = out[(out["strategy"] == "both") & (out["metric"] == "majority")]
    row = both[(both["budget"] == 4000) & (both["k"] == 2)].iloc[0]
    assert row["tokens"] == pytest.approx(2 * 2100)
    assert row["accuracy"] == pytest.approx(0.7) and row["n_problems"] == 2
    scored = out[(out["strategy"] == "both") & (out["metric"] == "best_of:v")]
    assert scored[(scored["budget"] == 1000) & (scored["k"] == 4)]["tokens"].iloc[0] == \
        pytest.approx(4 * (600 + 50))
    serial = out[(out["strategy"] == "serial") & (out["metric"] == "majority")]
    assert serial["k"].tolist() == [1, 1]
    parallel = out[(out["strategy"] == "parallel") & (out["metric"] == "majority")]
    assert set(parallel["budget"]) == {1000} and sorted(parallel["k"]) == [1, 2, 4]
    # 1000 x 4 (2400 tokens, 0.7) beats 4000 x 2 (4200 tokens, 0.7); 4000 x 1 (2100, 0.65) is
    # dominated by nothing cheaper, so it stays on the frontier
    frontier = both.set_index(["budget", "k"])["pareto"]
    assert frontier[(1000, 4)] and not frontier[(4000, 2)] and frontier[(4000, 1)]
    assert ((out["ci_low"] >= 0) & (out["ci_high"] <= 1)).all()


def test_compare_runs_paired_on_shared_problems(tmp_path: Path) -> None:
    import asyncio

    from ttc.config import config_from_dict
    from ttc.curves import compare_runs
    from ttc.run import open_run
    from ttc.sampler import Sweep

    def run(seed: int, size: int, name: str) -> Path:
        config = config_from_dict({
            "model": {"provider": "simulated", "seed": seed},
            "dataset": {"builtin": "arithmetic", "size": size},
            "sweep": {"budgets": [1024, 4096], "samples": 4},
        })
        asyncio.run(Sweep(config, tmp_path / name).run())
        return tmp_path / name

    a, same, b = run(0, 40, "a"), run(0, 30, "same"), run(5, 40, "b")
    with open_run(a) as ra, open_run(same) as rs, open_run(b) as rb:
        identical = compare_runs(ra, rs, metric="majority", k=1, n_boot=300)
        assert identical["n_problems"].tolist() == [30, 30]  # only the shared prefix
        assert np.allclose(identical[["difference", "ci_low", "ci_high"]].to_numpy(), 0.0)
        diff = compare_runs(ra, rb, metric="majority", k=1, n_boot=1000)
        assert diff.attrs["sign"] == "second minus first"
        assert diff["budget"].tolist() == [1024, 4096] and diff["budget"].dtype == np.int64
        problems = [p for p, _ in ra.problems()]
    model_a, model_b = SimulatedModel(seed=0), SimulatedModel(seed=5)
    for row in diff.to_dict("records"):
        budget = int(row["budget"])
        truth = np.mean([model_b.true_accuracy(p, budget) - model_a.true_accuracy(p, budget)
                         for p in problems])
        assert float(row["ci_low"]) <= truth <= float(row["ci_high"])
        # second (run b) minus first (run a)
        assert row["difference"] == pytest.approx(float(row["second"]) - float(row["first"]))


def test_graded_credit_is_averaged_not_rounded() -> None:
    frame = pd.DataFrame([
        ("a", 1024, 0, "ok", 0.5, 10, 20, None),
        ("a", 1024, 1, "ok", None, 10, 20, None),  # ungraded: no credit
        ("b", 1024, 0, "ok", 1.0, 10, 20, None),
    ], columns=COLUMNS)
    frame["budget"] = frame["budget"].astype(object)
    assert budget_table(frame).acc[:, 0].tolist() == [0.25, 1.0]
