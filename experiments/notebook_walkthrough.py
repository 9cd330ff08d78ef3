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

import ttc
from ttc.config import config_from_dict
from ttc.fits import ExtrapolationWarning
from ttc.plots import plot_accuracy_vs_tokens, plot_budget_use, plot_frontier, plot_parallel_curves
from ttc.report import write_report

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
    result = asyncio.run(ttc.Sweep(config, run_dir).run())
    print(f"sweep: {result.completed} samples, {result.censored} censored, {result.failed} failed")

    # %% 2. Open it: every sample is one row of a DataFrame (budgets int64, correct boolean).
    run = ttc.open_run(run_dir)
    samples = run.samples()
    print(samples[["problem_id", "subject", "budget", "sample_index", "status", "answer",
                   "correct", "thinking_tokens"]].head())
    print(samples.dtypes[["budget", "correct", "thinking_tokens"]].to_string())

    # %% 3. One analysis pass: tables, curves, fits, forecasts, frontier, all from one object.
    analysis = run.analyze(n_boot=1000, seed=0)  # or ttc.analyze(run)
    print(analysis.completeness.describe())
    print(analysis.budgets.round(3).to_string(index=False))
    curves = analysis.curves
    top = curves[(curves["budget"] == 8192) & (curves["subject"] == "all")]
    print(top.round(3).to_string(index=False))

    # %% 4. Fits: log-linear in realized tokens, the sigmoid alternative, s1 control.
    fit = analysis.fit
    assert fit is not None
    print(f"{fit.slope_per_doubling * 100:+.2f} points per doubling of realized thinking, "
          f"95% CI [{fit.ci[0] * 100:+.2f}, {fit.ci[1] * 100:+.2f}], R^2 {fit.r2:.3f}")
    for warning in analysis.fit_warnings:
        print(f"fit warning: {warning}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExtrapolationWarning)
        print(f"forecast at 32k tokens (beyond the data): {fit.predict(32768)[0]:.3f}; "
              f"warned: {any(issubclass(w.category, ExtrapolationWarning) for w in caught)}")
    if analysis.comparison is not None:  # only when both models could be fitted
        print(f"AIC {analysis.comparison.aic} -> {analysis.comparison.preferred}")
    print(analysis.control)

    # %% 5. Coverage forecasts (the coverage law; extrapolated points are marked).
    for forecast in analysis.forecasts:
        for point in forecast.points:
            mark = " (extrapolated)" if point.extrapolated else ""
            print(f"{forecast.method} at budget {forecast.budget}: pass@{point.k} ~ "
                  f"{point.value:.3f} [{point.ci_low:.3f}, {point.ci_high:.3f}]{mark}")

    # %% 6. Paired differences are second minus first: here 8192 minus 1024, per problem.
    per = analysis.per_problem
    majority = per[(per["metric"] == "majority") & (per["k"] == 8)]
    gain = ttc.paired_difference(majority[majority["budget"] == 1024].set_index("problem_id")
                                 ["value"].sort_index(),
                                 majority[majority["budget"] == 8192].set_index("problem_id")
                                 ["value"].sort_index())
    print(f"majority@8, 8192 minus 1024: {gain.estimate:+.3f} "
          f"[{gain.confidence_interval.low:+.3f}, {gain.confidence_interval.high:+.3f}], "
          f"p = {gain.pvalue:.3g} ({gain.sign})")

    # %% 7. Plots read the same analysis and compose into your own axes.
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    plot_accuracy_vs_tokens(analysis, ax=axes[0])
    plot_frontier(analysis, ax=axes[1])
    plot_budget_use(analysis, ax=axes[2])
    fig.tight_layout()
    fig.savefig(args.out / "walkthrough.png", dpi=90)
    plot_parallel_curves(analysis).savefig(args.out / "parallel.png", dpi=90)

    # %% 8. Or everything at once, as `ttc report` does.
    report = write_report(run, args.out / "report", n_boot=500)
    print(f"figures and report in {args.out} (report: {report / 'report.html'})")
    run.close()


if __name__ == "__main__":
    main()
