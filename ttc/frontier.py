"""Compute-matched frontiers and s1 budget control, from per-problem arrays.

The frontier answers "at equal compute, should the model think longer or sample
more?": every (budget, k) combination is placed at its expected total tokens per
problem, with a problem-bootstrap interval on its accuracy. Budget control is s1's
three numbers (Muennighoff et al. 2025, section 3.2). Both read the per-problem
arrays of one analysis pass (``ttc.analysis``), never the samples again.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ttc.bootstrap import ProblemBootstrap
from ttc.config import Budget

__all__ = [
    "FRONTIER_COLUMNS",
    "BudgetControl",
    "budget_control",
    "frontier_frame",
    "pareto_mask",
]

FRONTIER_COLUMNS = ["strategy", "metric", "budget", "k", "tokens", "accuracy", "ci_low",
                    "ci_high", "n_problems", "pareto"]


def pareto_mask(tokens: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """True where no other point has at most the tokens and strictly more accuracy (or
    the same accuracy for strictly fewer tokens)."""
    t, acc = np.asarray(tokens, dtype=float), np.asarray(accuracy, dtype=float)
    order = np.lexsort((-acc, t))
    mask = np.zeros(len(t), dtype=bool)
    best = -np.inf
    for i in order:
        if acc[i] > best:
            mask[i] = True
            best = acc[i]
    return mask


def frontier_frame(
    budgets: Sequence[Budget],
    generated: np.ndarray,
    columns: Sequence[Sequence[tuple[str, int]]],
    values: Sequence[np.ndarray],
    bootstrap: ProblemBootstrap,
    *,
    metrics: Sequence[str] | None = None,
    scorer_tokens: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Accuracy against expected total tokens per problem for every (budget, k).

    ``generated`` is problems x budgets mean output tokens (which include thinking);
    ``columns[j]`` / ``values[j]`` are budget j's (metric, k) columns and their
    problems x columns values. A k-subset costs k times the mean generated tokens per
    sample at that budget, plus ``k * scorer_tokens[name]`` for metrics that score
    samples. Rows come in three strategies: ``serial`` (k = 1, every budget),
    ``parallel`` (the lowest budget, every k) and ``both`` (every combination);
    ``pareto`` marks combinations no other combination beats at equal or lower cost.
    By default every metric but ``pass`` (an oracle, not a strategy) and ``mean``
    (majority@1) is used.
    """
    scorer_tokens = scorer_tokens or {}
    keys: list[tuple[str, int, int]] = []  # (metric, budget index, k)
    parts: list[np.ndarray] = []
    for j, (cols, matrix) in enumerate(zip(columns, values, strict=True)):
        for c, (metric, k) in enumerate(cols):
            chosen = metric in metrics if metrics is not None else metric not in ("pass",
                                                                                    "mean")
            if chosen and not np.isnan(matrix[:, c]).all():
                keys.append((metric, j, k))
                parts.append(matrix[:, c])
    if not keys:
        return pd.DataFrame(columns=FRONTIER_COLUMNS)
    matrix = np.column_stack(parts)
    res = bootstrap.mean(matrix, bounds=(0.0, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_sample = np.nanmean(generated, axis=0) if generated.size else np.zeros(len(budgets))
    cost = [k * (per_sample[j] + (scorer_tokens.get(m.split(":", 1)[1], 0.0) if ":" in m
                                  else 0.0)) for m, j, k in keys]
    out = pd.DataFrame({
        "metric": [m for m, _, _ in keys], "budget_index": [j for _, j, _ in keys],
        "k": np.array([k for _, _, k in keys], dtype=np.int64), "tokens": cost,
        "accuracy": res.estimate, "ci_low": res.confidence_interval.low,
        "ci_high": res.confidence_interval.high,
        "n_problems": np.asarray(res.n_problems, dtype=np.int64),
    })
    out["pareto"] = False
    for _metric, group in out.groupby("metric", sort=False):
        out.loc[group.index, "pareto"] = pareto_mask(group["tokens"].to_numpy(),
                                                     group["accuracy"].to_numpy())
    lowest = int(out["budget_index"].min())
    result = pd.concat([
        out[out["k"] == 1].assign(strategy="serial"),
        out[out["budget_index"] == lowest].assign(strategy="parallel"),
        out.assign(strategy="both"),
    ], ignore_index=True)
    result["budget"] = [budgets[j] for j in result["budget_index"]]
    return result[FRONTIER_COLUMNS].sort_values(["strategy", "metric", "tokens"], kind="stable",
                                                ignore_index=True)


@dataclass(frozen=True)
class BudgetControl:
    """s1's three numbers for a budget sweep (Muennighoff et al. 2025, section 3.2).

    ``control``: fraction of graded samples whose realized thinking stays within the
    cap (token budgets only; None when every budget is an effort level). ``scaling``:
    mean slope of accuracy per doubling of realized tokens between consecutive budgets;
    ``scaling_s1``: s1's own definition, the mean over all budget pairs of the accuracy
    gain per 1,000 realized tokens. ``performance``: the best accuracy reached.
    """

    control: float | None
    scaling: float | None
    scaling_s1: float | None
    performance: float
    control_by_budget: dict[str, float]


def budget_control(
    budgets: Sequence[Budget], acc: np.ndarray, tokens: np.ndarray, n_within: np.ndarray,
    n_graded: np.ndarray,
) -> BudgetControl:
    """From problems x budgets mean accuracy and tokens and per-budget sample counts."""
    by_budget: dict[str, float] = {}
    within = total = 0
    for j, budget in enumerate(budgets):
        if isinstance(budget, int) and n_graded[j] > 0:
            by_budget[str(budget)] = float(n_within[j] / n_graded[j])
            within, total = within + int(n_within[j]), total + int(n_graded[j])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        a = np.nanmean(acc, axis=0) if acc.size else np.full(len(budgets), np.nan)
        t = np.nanmean(tokens, axis=0) if tokens.size else np.full(len(budgets), np.nan)
    slopes, pairs = [], []
    for i in range(len(a) - 1):
        if t[i + 1] > 0 and t[i] > 0 and t[i + 1] != t[i]:
            slopes.append((a[i + 1] - a[i]) / (math.log2(t[i + 1]) - math.log2(t[i])))
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            if t[j] != t[i]:
                pairs.append((a[j] - a[i]) / (t[j] - t[i]) * 1000.0)
    slopes = [s for s in slopes if math.isfinite(s)]
    pairs = [p for p in pairs if math.isfinite(p)]
    return BudgetControl(
        control=within / total if total else None,
        scaling=float(np.mean(slopes)) if slopes else None,
        scaling_s1=float(np.mean(pairs)) if pairs else None,
        performance=float(np.nanmax(a)) if np.isfinite(a).any() else float("nan"),
        control_by_budget=by_budget,
    )
