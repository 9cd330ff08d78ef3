"""Per-problem tables, budget control, compute-matched frontiers and run comparisons.

The unit of analysis is the problem: per-problem arrays (problems x budgets) are
built once from the samples frame, and every interval comes from resampling
PROBLEMS with an explicit seeded ``np.random.Generator``, because problems, not
samples, are what a benchmark draws from a population. Accuracy is plotted against
the REALIZED thinking tokens (models often stop before their cap), so named effort
levels, which have no cap, fit on the same axis. The fits themselves live in
``ttc.fits`` and are re-exported here, so a notebook needs one import.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc.config import Budget, budget_sort_key
from ttc.fits import (
    CoverageFit,
    ExtrapolationWarning,
    FitComparison,
    LogLinearFit,
    SigmoidFit,
    boot_means,
    boot_weights,
    compare_fits,
    fit_coverage_law,
    fit_log_linear,
    fit_sigmoid,
    percentile_ci,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BudgetControl",
    "BudgetTable",
    "CoverageFit",
    "ExtrapolationWarning",
    "FitComparison",
    "LogLinearFit",
    "SigmoidFit",
    "budget_control_metrics",
    "budget_sort_key",
    "budget_summary",
    "budget_table",
    "compare_fits",
    "compare_runs",
    "compute_frontier",
    "fit_coverage_law",
    "fit_log_linear",
    "fit_samples",
    "fit_sigmoid",
    "boot_means",
    "boot_weights",
    "pareto_mask",
]



# ---------------------------------------------------------------- per-problem arrays


@dataclass(frozen=True)
class BudgetTable:
    """Per-problem means at each budget; NaN where a problem has no graded sample there.

    ``acc``, ``tokens`` (mean realized thinking tokens) and ``generated`` (mean output
    tokens, which include thinking in every ttc provider) are ``problems x budgets``.
    """

    budgets: list[Budget]
    problem_ids: list[str]
    subjects: list[str | None]
    acc: np.ndarray
    tokens: np.ndarray
    generated: np.ndarray
    n_graded: np.ndarray
    n_censored: np.ndarray
    n_failed: np.ndarray


def budget_table(samples: pd.DataFrame) -> BudgetTable:
    """Aggregate a samples frame (``Run.samples()``); failed samples are counted, not used."""
    import pandas as pd

    frame = samples[["problem_id", "budget", "status", "correct", "thinking_tokens",
                     "output_tokens"]].copy()
    subjects = (samples.drop_duplicates("problem_id").set_index("problem_id")["subject"]
                if "subject" in samples else pd.Series(dtype=object))
    budgets = sorted(frame["budget"].unique().tolist(), key=budget_sort_key)
    problem_ids = list(dict.fromkeys(frame["problem_id"].tolist()))
    frame["b"] = frame["budget"].map({b: i for i, b in enumerate(budgets)}).astype(int)
    frame["p"] = frame["problem_id"].map({p: i for i, p in enumerate(problem_ids)}).astype(int)
    failed = frame["status"].eq("failed").to_numpy()
    shape = (len(problem_ids), len(budgets))
    n_failed = np.bincount(frame["b"].to_numpy()[failed], minlength=len(budgets))
    ok = frame[~failed]
    p, b = ok["p"].to_numpy(), ok["b"].to_numpy()
    flat = p * len(budgets) + b
    size = shape[0] * shape[1]

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(flat, weights=values.astype(float), minlength=size).reshape(shape)

    n = total(np.ones(len(ok)))
    # bool, or float credit for partially right answers; missing counts as wrong
    correct = pd.to_numeric(ok["correct"], errors="coerce").astype(float).fillna(0.0).to_numpy()
    thinking = ok["thinking_tokens"].fillna(0).to_numpy(dtype=float)
    output = np.maximum(ok["output_tokens"].fillna(0).to_numpy(dtype=float), thinking)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.where(n > 0, total(correct) / n, np.nan)
        tokens = np.where(n > 0, total(thinking) / n, np.nan)
        generated = np.where(n > 0, total(output) / n, np.nan)
    censored = total(ok["status"].eq("censored").to_numpy()).sum(axis=0)
    return BudgetTable(
        budgets=budgets, problem_ids=problem_ids,
        subjects=[_none_if_nan(subjects.get(pid)) for pid in problem_ids],
        acc=acc, tokens=tokens, generated=generated, n_graded=n,
        n_censored=censored.astype(int), n_failed=n_failed.astype(int),
    )


def _none_if_nan(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def budget_summary(
    samples: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """One row per budget: accuracy with a problem-bootstrap CI, realized tokens, censoring."""
    import pandas as pd

    table = budget_table(samples)
    rng = np.random.default_rng(seed)
    boot = boot_means(boot_weights(len(table.problem_ids), n_boot, rng), table.acc)
    low, high = percentile_ci(boot, level)
    rows = []
    for j, budget in enumerate(table.budgets):
        graded = int(table.n_graded[:, j].sum())
        rows.append({
            "budget": budget,
            "accuracy": float(np.nanmean(table.acc[:, j])),
            "ci_low": float(low[j]), "ci_high": float(high[j]),
            "mean_thinking_tokens": float(np.nanmean(table.tokens[:, j])),
            "mean_output_tokens": float(np.nanmean(table.generated[:, j])),
            "censored_fraction": float(table.n_censored[j] / graded) if graded else 0.0,
            "n_problems": int((table.n_graded[:, j] > 0).sum()),
            "n_samples": graded,
            "n_failed": int(table.n_failed[j]),
        })
    return pd.DataFrame(rows)


def fit_samples(
    samples: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> LogLinearFit:
    """``fit_log_linear`` straight from a samples frame (what ``Run.fit()`` should call)."""
    table = budget_table(samples)
    return fit_log_linear(table.tokens, table.acc, n_boot=n_boot, seed=seed, level=level)


# ---------------------------------------------------------------- s1 budget control


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


def budget_control_metrics(samples: pd.DataFrame) -> BudgetControl:
    """Control, scaling and performance of a sweep's samples (failed samples excluded)."""
    graded = samples[samples["status"] != "failed"]
    by_budget: dict[str, float] = {}
    within = total = 0
    for budget, group in graded.groupby("budget", sort=False):
        if not isinstance(budget, int | np.integer):
            continue
        inside = int((group["thinking_tokens"].to_numpy() <= int(budget)).sum())
        by_budget[str(budget)] = inside / len(group)
        within, total = within + inside, total + len(group)
    table = budget_table(samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        acc = np.nanmean(table.acc, axis=0)
        tok = np.nanmean(table.tokens, axis=0)
    slopes, pairs = [], []
    for i in range(len(acc) - 1):
        if tok[i + 1] > 0 and tok[i] > 0 and tok[i + 1] != tok[i]:
            slopes.append((acc[i + 1] - acc[i]) / (math.log2(tok[i + 1]) - math.log2(tok[i])))
    for i in range(len(acc)):
        for j in range(i + 1, len(acc)):
            if tok[j] != tok[i]:
                pairs.append((acc[j] - acc[i]) / (tok[j] - tok[i]) * 1000.0)
    return BudgetControl(
        control=within / total if total else None,
        scaling=float(np.mean(slopes)) if slopes else None,
        scaling_s1=float(np.mean(pairs)) if pairs else None,
        performance=float(np.nanmax(acc)) if len(acc) else float("nan"),
        control_by_budget=by_budget,
    )


# ---------------------------------------------------------------- compute matching


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


def compute_frontier(
    samples: pd.DataFrame,
    per_problem: pd.DataFrame,
    *,
    metrics: Sequence[str] | None = None,
    scorer_tokens: dict[str, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Accuracy against expected total tokens per problem for every (budget, k).

    A k-subset costs k times the mean generated tokens per sample at that budget (output
    tokens, which include thinking), plus ``k * scorer_tokens[name]`` for metrics that
    score samples. Rows come in three strategies: ``serial`` (k = 1, every budget),
    ``parallel`` (the lowest budget, every k) and ``both`` (every combination);
    ``pareto`` marks combinations no other combination beats at equal or lower cost.
    ``per_problem`` is ``ttc.curves.per_problem_values`` output; by default every metric
    but ``pass`` (an oracle, not a strategy) and ``mean`` (majority@1) is used.
    """
    import pandas as pd

    table = budget_table(samples)
    scorer_tokens = scorer_tokens or {}
    frame = per_problem
    if "subject" in frame.columns and (frame["subject"] == "all").any():
        frame = frame[frame["subject"] == "all"]
    chosen = list(metrics) if metrics is not None else [
        m for m in dict.fromkeys(frame["metric"]) if m not in ("pass", "mean")
    ]
    frame = frame[frame["metric"].isin(chosen)]
    columns = list(dict.fromkeys(zip(frame["metric"], frame["budget"], frame["k"], strict=True)))
    if not columns:
        return pd.DataFrame(columns=["strategy", "metric", "budget", "k", "tokens", "accuracy",
                                     "ci_low", "ci_high", "pareto"])
    pos = {pid: i for i, pid in enumerate(table.problem_ids)}
    col = {c: j for j, c in enumerate(columns)}
    matrix = np.full((len(table.problem_ids), len(columns)), np.nan)
    rows_i = frame["problem_id"].map(pos).to_numpy()
    cols_j = [col[c] for c in zip(frame["metric"], frame["budget"], frame["k"], strict=True)]
    matrix[rows_i, cols_j] = frame["value"].to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = np.nanmean(matrix, axis=0)
        per_sample = dict(zip(table.budgets, np.nanmean(table.generated, axis=0), strict=True))
    weights = boot_weights(matrix.shape[0], n_boot, np.random.default_rng(seed))
    low, high = percentile_ci(boot_means(weights, matrix), level)
    out = pd.DataFrame({
        "metric": [c[0] for c in columns], "budget": pd.Series([c[1] for c in columns],
                                                              dtype=object),
        "k": [int(c[2]) for c in columns], "accuracy": point, "ci_low": low, "ci_high": high,
    })
    scorer_cost = [scorer_tokens.get(m.split(":", 1)[1], 0.0) if ":" in m else 0.0
                   for m in out["metric"]]
    out["tokens"] = out["k"] * (out["budget"].map(per_sample).astype(float) + scorer_cost)
    out["pareto"] = False
    for _metric, group in out.groupby("metric", sort=False):
        out.loc[group.index, "pareto"] = pareto_mask(group["tokens"].to_numpy(),
                                                     group["accuracy"].to_numpy())
    lowest = table.budgets[0]
    parts = [
        out[out["k"] == 1].assign(strategy="serial"),
        out[out["budget"].map(lambda b: b == lowest).astype(bool)].assign(strategy="parallel"),
        out.assign(strategy="both"),
    ]
    result = pd.concat(parts, ignore_index=True)
    order = ["strategy", "metric", "budget", "k", "tokens", "accuracy", "ci_low", "ci_high",
             "pareto"]
    return result[order].sort_values(["strategy", "metric", "tokens"], kind="stable",
                                     ignore_index=True)


# ---------------------------------------------------------------- paired comparison


def compare_runs(
    run_a: Any,
    run_b: Any,
    *,
    metric: str = "majority",
    k: int = 1,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    """Paired difference (b - a) of a metric@k on the problems both runs share, per budget.

    Pairing on problems removes problem difficulty from the comparison, so intervals are
    much tighter than two independent ones. Accepts ``Run`` objects (or anything with
    ``per_problem(metrics=..., ks=...)``).
    """
    import pandas as pd

    from ttc.curves import paired_difference

    def values(run: Any) -> pd.DataFrame:
        frame = run.per_problem(metrics=(metric,), ks=[k])
        if "subject" in frame.columns and (frame["subject"] == "all").any():
            frame = frame[frame["subject"] == "all"]
        frame = frame[(frame["metric"] == metric) & (frame["k"] == k)]
        return frame[["problem_id", "budget", "value"]]

    merged = values(run_a).merge(values(run_b), on=["problem_id", "budget"], suffixes=("_a", "_b"))
    rows = []
    for budget in sorted(merged["budget"].unique().tolist(), key=budget_sort_key):
        group = merged[merged["budget"] == budget]
        a = group["value_a"].to_numpy(dtype=float)
        b = group["value_b"].to_numpy(dtype=float)
        diff = _as_interval(paired_difference(b, a, n_boot=n_boot, seed=seed, level=level))
        rows.append({"budget": budget, "metric": metric, "k": k, "n_problems": len(group),
                     "a": float(a.mean()), "b": float(b.mean()), "difference": diff[0],
                     "ci_low": diff[1], "ci_high": diff[2]})
    return pd.DataFrame(rows)


def _as_interval(result: Any) -> tuple[float, float, float]:
    """Normalise ``paired_difference``'s result to (estimate, low, high)."""
    if isinstance(result, dict):
        est: Any = result.get("difference", result.get("value", result.get("mean")))
        return float(est), float(result["ci_low"]), float(result["ci_high"])
    if hasattr(result, "ci_low"):
        est = getattr(result, "difference", getattr(result, "value", float("nan")))
        return float(est), float(result.ci_low), float(result.ci_high)
    est, low, high = result
    return float(est), float(low), float(high)
