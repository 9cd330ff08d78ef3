"""A notebook session in script form: sweep, open the run, look at frames, fit, plot.

Runs in about half a minute with the simulated backend (no key, no network). Paste the
cells into Jupyter to explore; every call here is what ``ttc report`` uses underneath.
Usage: ``python experiments/notebook_walkthrough.py [--out DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt

from ttc.analysis import (
    ExtrapolationWarning,
    budget_control_metrics,
    budget_summary,
    budget_table,
    compare_fits,
    compute_frontier,
    fit_coverage_law,
    fit_log_linear,
)
from ttc.config import config_from_dict
from ttc.plots import plot_accuracy_vs_tokens, plot_budget_use, plot_frontier, plot_parallel_curves
from ttc.report import write_report
from ttc.run import open_run
from ttc.sampler import Sweep

__all__ = ["main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="ttc_walk_")))
    args = parser.parse_args()
    run_dir = args.out / "run"

    # %% 1. A small sweep: 40 built-in MCQ problems x 4 budgets x 16 samples.
    config = config_from_dict({
        "model": {"provider": "simulated", "seed": 0},
        "dataset": {"builtin": "mcq", "size": 40},
        "sweep": {"budgets": [1024, 2048, 4096, 8192], "samples": 16},
    })
    result = asyncio.run(Sweep(config, run_dir).run())
    print(f"sweep: {result.completed} samples, {result.censored} censored, {result.failed} failed")

    # %% 2. Open it: every sample is one row of a DataFrame.
    run = open_run(run_dir)
    samples = run.samples()
    print(samples[["problem_id", "subject", "budget", "sample_index", "status", "answer",
                   "correct", "thinking_tokens"]].head())
    print(budget_summary(samples, n_boot=500).round(3).to_string(index=False))

    # %% 3. Curves with exact estimators and problem-bootstrap intervals.
    curves = run.curves(n_boot=500, seed=0)
    top = curves[(curves["budget"] == 8192) & (curves["subject"] == "all")]
    print(top.round(3).to_string(index=False))

    # %% 4. Fits: log-linear in realized tokens, the sigmoid alternative, s1 control.
    table = budget_table(samples)
    fit = fit_log_linear(table.tokens, table.acc, n_boot=1000, seed=0)
    print(f"{fit.slope_per_doubling * 100:+.2f} points per doubling of realized thinking, "
          f"95% CI [{fit.ci[0] * 100:+.2f}, {fit.ci[1] * 100:+.2f}], R^2 {fit.r2:.3f}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        print(f"forecast at 32k tokens (beyond the data): {fit.predict(32768)[0]:.3f}; "
              f"warned: {any(issubclass(w.category, ExtrapolationWarning) for w in caught)}")
    comparison = compare_fits(table.tokens, table.acc, n_by_budget=table.n_graded.sum(axis=0))
    print(f"AIC {comparison.aic} -> {comparison.preferred}")
    print(budget_control_metrics(samples))

    # %% 5. Coverage law on pass@k at the largest budget, forecast to k = 256.
    per_problem = run.per_problem()
    passes = per_problem[(per_problem["metric"] == "pass") & (per_problem["budget"] == 8192)]
    matrix = passes.pivot_table(index="problem_id", columns="k", values="value")
    law = fit_coverage_law([int(k) for k in matrix.columns], matrix.mean().to_numpy(),
                           per_problem=matrix.to_numpy(), n_boot=500)
    low, high = law.forecast_interval([256])
    print(f"log pass@k = {law.a:.3f} k^{law.b:.3f}; pass@256 ~ {law.forecast(256)[0]:.3f} "
          f"[{low[0]:.3f}, {high[0]:.3f}]")

    # %% 6. Plots compose into your own axes.
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    plot_accuracy_vs_tokens(samples, fit=fit, ax=axes[0])
    plot_frontier(compute_frontier(samples, per_problem, n_boot=500), ax=axes[1])
    plot_budget_use(samples, ax=axes[2])
    fig.tight_layout()
    fig.savefig(args.out / "walkthrough.png", dpi=90)
    plot_parallel_curves(curves).savefig(args.out / "parallel.png", dpi=90)

    # %% 7. Or everything at once, as `ttc report` does.
    report = write_report(run, args.out / "report", n_boot=500)
    print(f"figures and report in {args.out} (report: {report / 'report.html'})")
    run.close()


if __name__ == "__main__":
    main()
