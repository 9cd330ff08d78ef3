"""How long ``ttc report`` takes on a GPQA-sized run: 198 problems x 256 samples.

Builds the run once with the simulated backend through the real ``Sweep`` (cached in
``--run``, default a temp folder), then times ``write_report`` against two baselines
measured in the same process on the same run:

* merely loading the samples frame (``Run.samples()``), the floor for any analysis;
* a naive pandas Monte-Carlo majority@k (20 random k-subsets per problem, k = 1..256
  in powers of two, groupby per problem), what people write before exact estimators.

Prints the times and the ratios. Usage: ``python benchmarks/report_speed.py [--run DIR]``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ttc.config import config_from_dict
from ttc.report import write_report
from ttc.run import open_run
from ttc.sampler import Sweep

__all__ = ["build_run", "main", "naive_majority"]

PROBLEMS, SAMPLES = 198, 256


def build_run(path: Path, budgets: list[int]) -> None:
    """Sweep the simulated backend over 198 MCQ problems (3 subjects) x 256 samples."""
    config = config_from_dict({
        "model": {"provider": "simulated", "seed": 0},
        "dataset": {"builtin": "mcq", "size": PROBLEMS, "difficulty": 2},
        "sweep": {"budgets": budgets, "samples": SAMPLES, "concurrency": 64},
    })
    started = time.perf_counter()
    result = asyncio.run(Sweep(config, path).run())
    print(f"built run: {result.completed:,} samples in {time.perf_counter() - started:.1f}s")


def naive_majority(samples: pd.DataFrame, *, draws: int = 20, seed: int = 0) -> pd.DataFrame:
    """Monte-Carlo majority@k: vote over random k-subsets with pandas, per problem and budget."""
    rng = np.random.default_rng(seed)
    rows = []
    graded = samples[samples["status"] != "failed"]
    for (pid, budget), group in graded.groupby(["problem_id", "budget"], sort=False):
        answers = group["answer_class"].to_numpy(dtype=object)
        gold_rows = group["correct"].to_numpy(dtype=bool)
        gold = answers[gold_rows][0] if gold_rows.any() else None
        k = 1
        while k <= len(answers):
            wins = 0
            for _ in range(draws):
                subset = pd.Series(answers[rng.choice(len(answers), size=k, replace=False)])
                counts = subset.value_counts(dropna=True)
                wins += bool(len(counts)) and counts.index[0] == gold
            rows.append((pid, budget, k, wins / draws))
            k *= 2
    return pd.DataFrame(rows, columns=["problem_id", "budget", "k", "value"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path,
                        default=Path(tempfile.gettempdir()) / "ttc_report_bench")
    parser.add_argument("--budgets", type=int, nargs="+", default=[16384, 65536])
    parser.add_argument("--n-boot", type=int, default=1000)
    args = parser.parse_args()
    if not (args.run / "samples.sqlite").exists():
        build_run(args.run, args.budgets)
    with open_run(args.run) as run:
        started = time.perf_counter()
        samples = run.samples()
        load_s = time.perf_counter() - started
        print(f"{len(samples):,} samples, {samples['problem_id'].nunique()} problems, "
              f"budgets {sorted(set(samples['budget']), key=str)}")
        # the Run caches its frame, so this times the analysis, figures and files alone
        started = time.perf_counter()
        out = write_report(run, args.run / "report", n_boot=args.n_boot)
        report_s = time.perf_counter() - started
    started = time.perf_counter()
    naive_majority(samples)
    naive_s = time.perf_counter() - started
    total_s = load_s + report_s
    print(f"load samples (Run.samples)        {load_s:8.2f} s")
    print(f"write_report after load           {report_s:8.2f} s  (n_boot={args.n_boot}) -> {out}")
    print(f"ttc report total                  {total_s:8.2f} s")
    print(f"naive MC majority@k, one curve    {naive_s:8.2f} s  (20 draws per problem, budget, k)")
    print(f"ratio write_report / load         {report_s / load_s:8.2f}x")
    print(f"ratio naive / write_report        {naive_s / report_s:8.2f}x "
          f"(naive: one curve, Monte-Carlo, no intervals; report: all curves exact + CIs)")


if __name__ == "__main__":
    main()
