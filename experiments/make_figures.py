"""Regenerate ``figures/*.png`` from simulated runs (no API key, a minute or two on 2 cores).

Two runs of the simulated backend, whose true curve is known, stand in for the headline
experiments: a budget sweep (6 budgets, 1k..32k, x 16 samples) for the serial figures,
and a 128-sample run at one budget with a scorer for the parallel figure. Everything is
drawn from ``Run.analyze()``, the one analysis ``ttc report`` writes. Usage::

    python experiments/make_figures.py [--runs DIR] [--out figures]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from ttc.config import config_from_dict
from ttc.plots import (
    plot_accuracy_vs_tokens,
    plot_budget_use,
    plot_frontier,
    plot_parallel_curves,
    style,
)
from ttc.run import open_run
from ttc.sampler import Sweep
from ttc.scorers import make_scorer, score_run

__all__ = ["main", "simulated_run"]

SERIAL = {"budgets": [1024, 2048, 4096, 8192, 16384, 32768], "samples": 16}
PARALLEL = {"budgets": [16384], "samples": 128}


def simulated_run(folder: Path, sweep: dict[str, Any], *, size: int = 120) -> Path:
    """Sweep the simulated model over the built-in 3-subject MCQ set and score it."""
    config = config_from_dict({
        "model": {"provider": "simulated", "seed": 0},
        "dataset": {"builtin": "mcq", "size": size, "difficulty": 2},
        "sweep": {**sweep, "concurrency": 64},
        "scorers": [{"name": "signal", "kind": "simulated", "transform": "sigmoid"}],
    })
    asyncio.run(Sweep(config, folder).run())
    asyncio.run(score_run(folder, make_scorer(config.scorers[0])))
    return folder


def save(fig: Any, path: Path) -> None:
    with style():
        fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=Path, default=Path(tempfile.gettempdir()) / "ttc_figures")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "figures")
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    serial = open_run(simulated_run(args.runs / "serial", SERIAL))
    parallel = open_run(simulated_run(args.runs / "parallel", PARALLEL))
    print(f"runs ready in {time.perf_counter() - started:.1f}s")

    analysis = serial.analyze(n_boot=args.n_boot, seed=0)
    fit = analysis.fit
    assert fit is not None
    print(f"slope {fit.slope_per_doubling:+.4f}/doubling, 95% CI "
          f"[{fit.ci[0]:+.4f}, {fit.ci[1]:+.4f}], R^2 {fit.r2:.3f}; {len(fit.points)} budgets")
    for warning in analysis.fit_warnings + analysis.warnings:
        print(f"  warning: {warning}")
    save(plot_accuracy_vs_tokens(analysis).figure, args.out / "accuracy_vs_tokens.png")
    save(plot_budget_use(analysis).figure, args.out / "budget_use.png")
    save(plot_frontier(analysis).figure, args.out / "frontier.png")
    save(plot_parallel_curves(parallel.analyze(n_boot=args.n_boot, seed=0)),
         args.out / "parallel_curves.png")
    print(f"done in {time.perf_counter() - started:.1f}s")


if __name__ == "__main__":
    main()
