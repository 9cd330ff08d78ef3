"""Backtest of the two pass@k forecasters on held-out k, in one run.

Each forecaster sees only n_fit samples per problem (a random subset) and forecasts
coverage (pass@k averaged over problems) at k > n_fit; the truth is the exact pass@k
(``ttc.estimators.pass_at_k``) computed on ALL of each problem's samples.

- Coverage law (Brown et al. 2024, ``ttc.coverage.fit_coverage_law``): log pass@k = a k^b
  fitted to the mean exact pass@k at k = 1..n_fit.
- Distributional (Schaeffer et al. 2025, ``ttc.forecast.fit_beta_coverage``): a Beta
  fitted by beta-binomial maximum likelihood to the per-problem counts c_i of n_fit,
  forecasting 1 - B(alpha, beta + k) / B(alpha, beta).

Data:
- recorded: ../shared/data/recorded/math_cot_100.jsonl, 100 MATH problems x 8 real
  samples (small: n_fit = 2 or 4, held-out k up to 8);
- sim-beta: SIMULATED, 500 problems x 10,000 samples, per-problem success rates drawn
  from a known Beta(0.3, 2.0) (the Beta model is true here, so this shows its best case);
- sim-mixture: SIMULATED, 500 problems x 10,000 samples, 25% of problems unsolvable
  (p = 0) and the rest Beta(0.5, 1.5): a Beta cannot represent the point mass at 0, so
  this shows how each method fails when the model is wrong.

Every row repeats the fit on ``--reps`` disjoint random subsets and reports the mean
absolute error, and how often each method's 95% problem-bootstrap interval covered the
truth. The ratio is law error / Beta error (> 1: the Beta forecaster was closer).

    python benchmarks/forecast_backtest.py [--reps 20] [--n-boot 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ttc.coverage import fit_coverage_law
from ttc.estimators import pass_at_k
from ttc.forecast import fit_beta_coverage

__all__ = ["Dataset", "backtest", "main", "recorded", "simulated"]

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "recorded" / "math_cot_100.jsonl"


@dataclass(frozen=True)
class Dataset:
    """Per-sample correctness, problems x samples (equal sample counts)."""

    name: str
    correct: np.ndarray  # bool, problems x samples


def recorded() -> Dataset | None:
    if not DATA.exists():
        return None
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]
    return Dataset("recorded", np.array([r["score"] for r in rows], dtype=bool))


def simulated(name: str, n_problems: int, n_samples: int, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    if name == "sim-beta":
        p = rng.beta(0.3, 2.0, n_problems)
    else:
        p = np.where(rng.random(n_problems) < 0.25, 0.0, rng.beta(0.5, 1.5, n_problems))
    return Dataset(name, rng.random((n_problems, n_samples)) < p[:, None])


def _coverage(correct: np.ndarray, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean exact pass@k over problems and the per-problem matrix (problems x ks)."""
    n = correct.shape[1]
    per = np.stack([pass_at_k(n, int(c), ks) for c in correct.sum(axis=1)])
    return per.mean(axis=0), per


def backtest(data: Dataset, n_fit: int, eval_ks: np.ndarray, reps: int, n_boot: int,
             seed: int) -> dict[str, np.ndarray]:
    """Errors and interval hits of both forecasters over ``reps`` random subsets."""
    rng = np.random.default_rng(seed)
    n_problems, n = data.correct.shape
    truth, _ = _coverage(data.correct, eval_ks)
    out = {key: np.zeros((reps, eval_ks.size)) for key in
           ("law", "beta", "law_hit", "beta_hit", "law_ok")}
    fit_ks = np.arange(1, n_fit + 1)
    for r in range(reps):
        # a random subset of n_fit samples per problem
        pick = np.argsort(rng.random((n_problems, n)), axis=1)[:, :n_fit]
        sub = np.take_along_axis(data.correct, pick, axis=1)
        c = sub.sum(axis=1)
        beta = fit_beta_coverage(c, np.full(n_problems, n_fit), n_boot=n_boot, seed=seed + r)
        fc = beta.forecast(eval_ks)
        out["beta"][r] = fc.point
        out["beta_hit"][r] = (fc.confidence_interval.low <= truth) & (
            truth <= fc.confidence_interval.high)
        mean, per = _coverage(sub, fit_ks)
        try:
            law = fit_coverage_law(fit_ks, mean, per_problem=per, n_boot=n_boot, seed=seed + r)
        except ValueError:
            out["law"][r] = np.nan  # fewer than two informative ks: no law to fit
            continue
        out["law"][r] = law.forecast(eval_ks)
        lo, hi = law.forecast_interval(eval_ks)
        out["law_hit"][r] = (lo <= truth) & (truth <= hi)
        out["law_ok"][r] = 1.0
    out["truth"] = truth
    return out


def _report(data: Dataset, n_fit: int, eval_ks: np.ndarray, res: dict[str, np.ndarray]) -> None:
    truth = res["truth"]
    ok = res["law_ok"][:, 0] > 0
    law_err = np.abs(res["law"][ok] - truth).mean(axis=0) if ok.any() else np.full(truth.size,
                                                                                   np.nan)
    beta_err = np.abs(res["beta"] - truth).mean(axis=0)
    print(f"\n{data.name}: {data.correct.shape[0]} problems x {data.correct.shape[1]} samples; "
          f"fit on n_fit = {n_fit} per problem, {len(res['beta'])} random subsets"
          + ("" if ok.all() else f" (coverage law fitted on {int(ok.sum())}: others had < 2 "
             "informative k)"))
    print(f"{'k':>6} {'truth':>7} {'law':>7} {'beta':>7} {'|err| law':>10} {'|err| beta':>10} "
          f"{'ratio':>6} {'law CI hit':>10} {'beta CI hit':>11}")
    for j, k in enumerate(eval_ks.tolist()):
        law_mean = np.nanmean(res["law"][ok, j]) if ok.any() else np.nan
        law_hit = res["law_hit"][ok, j].mean() if ok.any() else np.nan
        print(f"{k:>6} {truth[j]:7.4f} {law_mean:7.4f} {res['beta'][:, j].mean():7.4f} "
              f"{law_err[j]:10.4f} {beta_err[j]:10.4f} {law_err[j] / beta_err[j]:6.2f} "
              f"{law_hit:10.2f} {res['beta_hit'][:, j].mean():11.2f}")
    print(f"{'mean':>6} {'':7} {'':7} {'':7} {np.nanmean(law_err):10.4f} {beta_err.mean():10.4f} "
          f"{np.nanmean(law_err) / beta_err.mean():6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sim-problems", type=int, default=500)
    parser.add_argument("--sim-samples", type=int, default=10_000)
    args = parser.parse_args()
    t0 = time.perf_counter()
    rec = recorded()
    if rec is None:
        print(f"recorded data not found at {DATA}; skipping it")
    else:
        for n_fit in (2, 4):
            ks = np.arange(n_fit + 1, 9)
            _report(rec, n_fit, ks, backtest(rec, n_fit, ks, args.reps, args.n_boot, args.seed))
    for name in ("sim-beta", "sim-mixture"):
        data = simulated(name, args.sim_problems, args.sim_samples, args.seed)
        for n_fit in (10, 100):
            ks = np.array([k for k in (2 * n_fit, 4 * n_fit, 10 * n_fit, 1000, 10_000)
                           if n_fit < k <= args.sim_samples])
            ks = np.unique(ks)
            reps = min(args.reps, args.sim_samples // n_fit)
            _report(data, n_fit, ks, backtest(data, n_fit, ks, reps, args.n_boot, args.seed))
    print(f"\n({time.perf_counter() - t0:.1f} s; forecasts at k > {4}x n_fit are extrapolations "
          f"and say so in BetaForecast.extrapolated)")


if __name__ == "__main__":
    main()
