"""Score against steps: exact per-problem values at each step budget, problem-bootstrap bands.

At step budget s a trajectory's pass@1 is the largest reward of its first s steps (1 when
it solved the task by step s) and its milestones are the milestones reached by step s.
In "truncate" runs one trajectory serves every s (valid because the agent was never
told a budget); a trajectory counts at s once it has ended or has taken at least s steps,
so a killed or failed run never contributes a truncated guess. In "separate" runs the
trajectory told s is the only one read at s. Per problem, the value is the mean over
its samples (the exact expectation of pass@1 for that problem); curves average problems
and their intervals resample problems, one bootstrap draw per curve so the band is
consistent along the step axis.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from ttc.bootstrap import ProblemBootstrap, paired_bootstrap
from ttc.config import budget_sort_key, parse_budget

__all__ = [
    "STEP_CURVE_KEYS",
    "compare_step_curves",
    "step_curve_rows",
    "step_curves",
    "step_values",
    "steps_frame",
    "steps_to_success",
    "tokens_per_step",
]

STEP_CURVE_KEYS = ("budget", "steps", "metric", "value", "ci_low", "ci_high")


def _agent_meta(run: Any) -> dict[str, Any]:
    meta = run.meta.get("agent") if hasattr(run, "meta") else None
    if not meta:
        from ttc.errors import UserInputError

        raise UserInputError(f"{getattr(run, 'path', run)}: not an agent run (no [agent] meta)")
    return dict(meta)


def steps_frame(run: Any, *, with_text: bool = False) -> pd.DataFrame:
    """One row per stored step of an agent run (the per-step export table)."""
    from ttc.agent.steps import StepStore
    from ttc.store import DB_NAME

    with StepStore(run.path / DB_NAME) as store:
        return store.steps_frame(with_text=with_text)


def _trajectories(run: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    from ttc.agent.steps import StepStore
    from ttc.store import DB_NAME

    with StepStore(run.path / DB_NAME) as store:
        return store.trajectories_frame(), store.steps_frame()


def step_values(run: Any) -> pd.DataFrame:
    """Per-problem values: ``problem_id, budget, steps, metric, value, n_samples``.

    ``metric`` is "pass@1" and, when the environment reports milestones, "milestones".
    """
    meta = _agent_meta(run)
    budgets = [int(s) for s in meta["step_budgets"]]
    traj, steps = _trajectories(run)
    keys = ["problem_id", "budget", "horizon", "sample_index"]
    has_milestones = bool(len(steps)) and (steps["milestones"] != "[]").any()
    by_key = {k: g for k, g in steps.groupby(keys, sort=False)} if len(steps) else {}
    rows: list[tuple[Any, ...]] = []
    for t in traj.to_dict("records"):
        pid, label, horizon, status = t["problem_id"], t["budget"], int(t["horizon"]), t["status"]
        group = by_key.get((pid, label, horizon, int(t["sample_index"])))
        rewards = np.zeros(0)
        reached = np.zeros(0)
        if group is not None:
            group = group.sort_values("step")
            rewards = np.maximum.accumulate(group["reward"].to_numpy(dtype=float))
            reached = np.cumsum([len(json.loads(m)) for m in group["milestones"]])
        n = int(rewards.size)
        points = [horizon] if horizon else budgets
        for s in points:
            if horizon and status not in ("ended", "capped"):
                continue  # a told budget is only read off a finished trajectory
            if not horizon and not (status == "ended" or n >= s):
                continue  # not yet known whether it succeeds within s
            upto = min(s, n)
            rows.append((pid, label, s, "pass@1", float(rewards[upto - 1]) if upto else 0.0))
            if has_milestones:
                count = float(reached[upto - 1]) if upto else 0.0
                rows.append((pid, label, s, "milestones", count))
    frame = pd.DataFrame(rows, columns=["problem_id", "budget", "steps", "metric", "value"])
    out = (frame.groupby(["problem_id", "budget", "steps", "metric"], sort=False)["value"]
           .agg(["mean", "size"]).reset_index()
           .rename(columns={"mean": "value", "size": "n_samples"}))
    out["budget"] = out["budget"].map(parse_budget).astype(object)
    return out


def step_curves(run: Any, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
                ) -> pd.DataFrame:
    """Mean over problems at each (thinking budget, step budget, metric) with a 95% band.

    Columns: ``budget, steps, metric, value, ci_low, ci_high, n_problems``. A problem
    with no valid trajectory at some s is left out at that s (``n_problems`` says so);
    with fewer than two problems at some s there is no interval (NaN bounds).
    """
    return curves_from_values(step_values(run), n_boot=n_boot, seed=seed, level=level)


def curves_from_values(values: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> pd.DataFrame:
    """``step_curves`` from per-problem values (one bootstrap draw per budget and metric)."""
    columns = [*STEP_CURVE_KEYS, "n_problems"]
    parts = []
    for (budget, metric), part in values.groupby(["budget", "metric"], sort=False):
        wide = part.pivot_table(index="problem_id", columns="steps", values="value")
        matrix = wide.to_numpy(dtype=float)
        boot = ProblemBootstrap(matrix.shape[0], n_boot=n_boot, seed=seed, level=level)
        res = boot.subset(np.ones(matrix.shape[0], bool), f"{budget}|{metric}").mean(
            matrix, bounds=(0.0, 1.0) if metric == "pass@1" else None)
        parts.append(pd.DataFrame({
            "budget": pd.Series([budget] * matrix.shape[1], dtype=object),
            "steps": np.asarray(wide.columns, dtype=np.int64),
            "metric": metric, "value": res.estimate,
            "ci_low": res.low, "ci_high": res.high,
            "n_problems": np.asarray(res.n_problems, dtype=int),
        }))
    if not parts:
        return pd.DataFrame(columns=columns)
    out = pd.concat(parts, ignore_index=True)[columns]
    order = out["budget"].map(budget_sort_key)
    return (out.assign(_o=order).sort_values(["metric", "_o", "steps"], kind="stable")
            .drop(columns="_o").reset_index(drop=True))


def step_curve_rows(curves: pd.DataFrame) -> list[dict[str, Any]]:
    """``summary.json``'s ``step_curves``: exactly the keys of ``STEP_CURVE_KEYS``."""
    rows = []
    for r in curves.to_dict("records"):
        budget = r["budget"]
        rows.append({
            "budget": int(budget) if isinstance(budget, int | np.integer) else str(budget),
            "steps": int(r["steps"]), "metric": str(r["metric"]),
            **{k: (None if not np.isfinite(r[k]) else float(r[k]))
               for k in ("value", "ci_low", "ci_high")},
        })
    return rows


def steps_to_success(run: Any) -> pd.DataFrame:
    """Successful trajectories with the step of first success: ``budget, horizon, steps``."""
    _traj, steps = _trajectories(run)
    if steps.empty:
        return pd.DataFrame(columns=["budget", "horizon", "steps"])
    won = steps[steps["reward"] >= 1.0]
    first = (won.groupby(["problem_id", "budget", "horizon", "sample_index"])["step"].min()
             .reset_index().rename(columns={"step": "steps"}))
    first["budget"] = first["budget"].map(parse_budget).astype(object)
    return first[["budget", "horizon", "steps"]]


def tokens_per_step(run: Any) -> pd.DataFrame:
    """Mean input, output and thinking tokens at each step index, per thinking budget."""
    _traj, steps = _trajectories(run)
    cols = ["input_tokens", "output_tokens", "thinking_tokens"]
    out = steps.groupby(["budget", "step"])[cols].mean().reset_index()
    out["n"] = steps.groupby(["budget", "step"]).size().to_numpy()
    out["budget"] = out["budget"].map(parse_budget).astype(object)
    return out


def compare_step_curves(run_a: Any, run_b: Any, *, metric: str = "pass@1",
                        budget: Any = None, n_boot: int = 1000, seed: int = 0,
                        level: float = 0.95) -> pd.DataFrame:
    """Paired gap (b - a) at each shared step budget, on the problems both runs share.

    ``attrs["widening"]`` answers "does the gap widen with more steps?": the gap at the
    largest shared budget minus the gap at the smallest, with a paired problem-bootstrap
    interval (the same resampled problems for both ends), and ``supported`` saying
    whether the interval excludes zero.
    """
    va, vb = step_values(run_a), step_values(run_b)
    va, vb = va[va["metric"] == metric], vb[vb["metric"] == metric]
    if budget is None:
        shared_budgets = sorted(set(map(str, va["budget"])) & set(map(str, vb["budget"])))
        if not shared_budgets:
            raise ValueError("the runs share no thinking budget; pass budget=")
        budget = shared_budgets[0]
    va = va[va["budget"].map(str) == str(budget)]
    vb = vb[vb["budget"].map(str) == str(budget)]
    merged = va.merge(vb, on=["problem_id", "steps"], suffixes=("_a", "_b"))
    if merged.empty:
        raise ValueError("the runs share no (problem, step budget) values")
    rows = []
    for s, group in merged.groupby("steps", sort=True):
        res = paired_bootstrap(group["value_a"].to_numpy(float), group["value_b"].to_numpy(float),
                               n_boot=n_boot, seed=seed, level=level)  # b - a
        rows.append({"steps": int(str(s)), "metric": metric, "budget": budget,
                     "a": res.first, "b": res.second, "difference": res.estimate,
                     "ci_low": res.low, "ci_high": res.high,
                     "n_problems": int(res.n_problems)})
    out = pd.DataFrame(rows)
    measured = out["steps"].to_numpy(dtype=np.int64)
    lo_s, hi_s = int(measured.min()), int(measured.max())
    wide = merged.assign(gap=merged["value_b"] - merged["value_a"]).pivot_table(
        index="problem_id", columns="steps", values="gap")[[lo_s, hi_s]].dropna()
    widening: dict[str, Any] = {"from_steps": lo_s, "to_steps": hi_s}
    if lo_s == hi_s or wide.empty:
        widening["error"] = "needs two step budgets that both runs measured on shared problems"
    else:
        change = (wide[hi_s] - wide[lo_s]).to_numpy(dtype=float)
        spread = ProblemBootstrap(change.size, n_boot=n_boot, seed=seed, level=level).mean(change)
        low, high = spread.low, spread.high
        widening.update({"change": float(change.mean()), "ci_low": low, "ci_high": high,
                         "n_problems": int(change.size),
                         "supported": bool(low > 0 or high < 0)})
    out.attrs["widening"] = widening
    return out
