"""Per-problem exact estimates, curves over k with problem-bootstrap intervals, paired gaps.

The unit of every analysis is one problem's exact value of a metric at one budget and k
(``per_problem_values``). Curves average those over problems; intervals resample
*problems* with replacement (``ttc.bootstrap``), because problems are the sampled
units whose variation dominates (resampling samples within a problem is biased for
majority vote and ignores problem-to-problem spread). Every bootstrap draws from an
explicit seed, so a curve is reproducible bit for bit.

Input contract (``samples``): one row per sample with ``problem_id``, ``budget``,
``sample_index``, ``status`` ("ok" | "censored" | "failed"), ``correct`` (bool or
float credit) and, for voting, ``answer_class`` (hashable; None = no answer; or raw
``answer`` strings, clustered here); optional ``subject``. Failed rows are counted
and left out (they will be re-requested); censored rows stay as samples. A missing
``correct`` is read as 0 for a row without an answer and is an error otherwise.
Optional ``scores``: ``problem_id, budget, sample_index, scorer, score``; a metric
whose scorer did not score every sample of a problem has no value there (NaN policy
of ``ttc.bootstrap``), with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd

from ttc._frames import with_budget_dtype
from ttc._pass import DEFAULT_METRICS, PassResult, run_pass
from ttc._sources import SAMPLE_COLUMNS, SCORE_COLUMNS, frame_layout, frame_problems
from ttc.bootstrap import SIGN_CONVENTION, PairedDifference, ProblemBootstrap, paired_bootstrap
from ttc.config import Budget, budget_sort_key

__all__ = [
    "CURVE_COLUMNS",
    "DEFAULT_METRICS",
    "PAIRED_COLUMNS",
    "SAMPLE_COLUMNS",
    "SCORE_COLUMNS",
    "category_curves",
    "compare_runs",
    "compute_curves",
    "paired_difference",
    "per_problem_values",
]

CURVE_COLUMNS = ["budget", "metric", "k", "value", "ci_low", "ci_high", "subject", "n_problems"]
PAIRED_COLUMNS = ["first", "second", "difference", "ci_low", "ci_high", "pvalue", "n_problems"]
_KEYS = ("budget", "metric", "k")


def frame_pass(
    samples: pd.DataFrame, scores: pd.DataFrame | None = None, **kwargs: Any
) -> PassResult:
    """The analysis pass over a samples frame (``ttc._pass.run_pass``'s keywords)."""
    layout, frame = frame_layout(samples, scores)
    result = run_pass(layout, frame_problems(frame, layout), **kwargs)
    for note in result.notes:
        warnings.warn(note, stacklevel=3)
    return result


def long_frame(result: PassResult) -> pd.DataFrame:
    """``problem_id, subject, budget, metric, k, value, stderr``: one row per value."""
    parts = []
    n_p = len(result.problem_ids)
    for j, (cols, values, errs) in enumerate(zip(result.columns, result.values, result.stderr,
                                                 strict=True)):
        if not cols or n_p == 0:
            continue
        n_c = len(cols)
        part = pd.DataFrame({
            "problem_id": np.repeat(np.asarray(result.problem_ids, dtype=object), n_c),
            "subject": np.repeat(np.asarray(result.subjects, dtype=object), n_c),
            "budget_index": j,
            "metric": np.tile(np.asarray([m for m, _ in cols], dtype=object), n_p),
            "k": np.tile(np.asarray([k for _, k in cols], dtype=np.int64), n_p),
            "value": values.ravel(), "stderr": errs.ravel(),
        })
        parts.append(part[~np.isnan(part["value"].to_numpy())])
    columns = ["problem_id", "subject", "budget", "metric", "k", "value", "stderr"]
    if not parts:
        return with_budget_dtype(pd.DataFrame(columns=columns), result.budgets)
    out = pd.concat(parts, ignore_index=True)
    out["budget"] = [result.budgets[j] for j in out["budget_index"]]
    out = with_budget_dtype(out[columns], result.budgets)
    out["subject"] = out["subject"].astype(object)
    return out


def per_problem_values(
    samples: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ks: Sequence[int] | str | None = "all",
    n_mc: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Exact value of every metric at every k for every (problem, budget).

    Columns: ``problem_id, subject, budget, metric, k, value, stderr``. ``stderr`` is 0
    except for Monte Carlo weighted-majority values (``n_mc`` permutations, seeded from
    ``seed``). Metrics: ``mean`` (k = 1, mean credit), ``majority``, ``pass`` (pass@k for
    binary credit, expected best credit for graded), ``best_of:<scorer>`` and
    ``weighted_majority:<scorer>`` (scores as nonnegative vote weights; the generic name
    skips, with a warning, scorers that have negative scores). ``ks``: "all" (default,
    1..n where n is the smallest sample count among that budget's problems, so every
    point of a curve averages the same problems), "log2", or explicit ks, which must
    not exceed any problem's n. ``attrs["n_failed_dropped"]`` counts failed rows.
    """
    result = frame_pass(samples, scores, metrics=metrics, ks=ks, n_mc=n_mc, seed=seed)
    out = long_frame(result)
    out.attrs["n_failed_dropped"] = int(result.n_failed.sum())
    return out


# --------------------------------------------------------------------------- curves


def curve_frame(
    budgets: Sequence[Budget],
    columns: Sequence[Sequence[tuple[str, int]]],
    values: Sequence[np.ndarray],
    sets: Sequence[tuple[str, np.ndarray, ProblemBootstrap]],
) -> pd.DataFrame:
    """Mean over each problem set of every (budget, metric, k) column, with intervals.

    ``sets`` are (label, problem mask, that set's bootstrap). All columns of one set
    share its replicates, so the intervals of a curve (and of one accuracy reported in
    several places) are mutually consistent. Values are proportions: clipped to [0, 1].
    """
    keys = [(j, m, k) for j, cols in enumerate(columns) for m, k in cols]
    parts = []
    if keys:
        wide = np.concatenate([np.asarray(v, dtype=float).reshape(len(v), len(c))
                               for v, c in zip(values, columns, strict=True)], axis=1)
        for label, mask, boot in sets:  # one bootstrap product per problem set
            res = boot.mean(wide[mask], bounds=(0.0, 1.0))
            keep = np.asarray(res.n_problems) > 0
            parts.append(pd.DataFrame({
                "budget": [budgets[j] for (j, _, _), kept in zip(keys, keep, strict=True)
                           if kept],
                "metric": [m for (_, m, _), kept in zip(keys, keep, strict=True) if kept],
                "k": np.asarray([k for _, _, k in keys], dtype=np.int64)[keep],
                "value": res.estimate[keep], "ci_low": res.confidence_interval.low[keep],
                "ci_high": res.confidence_interval.high[keep], "subject": label,
                "n_problems": np.asarray(res.n_problems, dtype=np.int64)[keep],
            }))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=CURVE_COLUMNS)
    out = with_budget_dtype(out[CURVE_COLUMNS], budgets)
    for column in ("k", "n_problems"):
        out[column] = out[column].astype(np.int64)
    return out


def subject_sets(
    subjects: Sequence[str | None], boot: ProblemBootstrap, *, by_subject: bool = True,
    chosen: Sequence[str] | None = None,
) -> list[tuple[str, np.ndarray, ProblemBootstrap]]:
    """"all", then one set per named subject (``chosen``: those only, in that order).

    Problems without a subject count only in "all"; each subject's bootstrap resamples
    that subject's problems (seeded by its name, so adding a subject changes no other).
    """
    everything = np.ones(len(subjects), dtype=bool)
    sets = [("all", everything, boot)]
    if not by_subject:
        return sets
    labels = list(chosen) if chosen is not None else sorted({s for s in subjects if s})
    for label in labels:
        mask = np.array([s == label for s in subjects], dtype=bool)
        if mask.all():  # the same problems as "all": the same draw, the same intervals
            sets.append((label, mask, boot))
        elif mask.any():
            sets.append((label, mask, boot.subset(mask, key=f"subject:{label}")))
    return sets


def _matrices(per: pd.DataFrame) -> tuple[list[Budget], list[list[tuple[str, int]]],
                                          list[np.ndarray], list[str], list[str | None]]:
    """Wide problems x (metric, k) matrices per budget from ``per_problem_values`` rows."""
    budgets = sorted(dict.fromkeys(per["budget"].tolist()), key=budget_sort_key)
    problems = list(dict.fromkeys(per["problem_id"].tolist()))
    first = per.drop_duplicates("problem_id").set_index("problem_id")["subject"]
    subjects = [None if not isinstance(first.get(p), str) else first.get(p) for p in problems]
    row = {p: i for i, p in enumerate(problems)}
    columns, values = [], []
    for budget in budgets:
        part = per[per["budget"] == budget]
        cols = list(dict.fromkeys(zip(part["metric"], part["k"].astype(int), strict=True)))
        col = {c: i for i, c in enumerate(cols)}
        matrix = np.full((len(problems), len(cols)), np.nan)
        matrix[part["problem_id"].map(row).to_numpy(),
               [col[c] for c in zip(part["metric"], part["k"].astype(int), strict=True)]] = \
            part["value"].to_numpy(dtype=float)
        columns.append(cols)
        values.append(matrix)
    return budgets, columns, values, problems, subjects


def compute_curves(
    samples: pd.DataFrame | None,
    scores: pd.DataFrame | None = None,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ks: Sequence[int] | str | None = "all",
    by_subject: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    n_mc: int = 200,
    per_problem: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Mean over problems of each metric at each (budget, k), with problem-bootstrap CIs.

    Columns: ``budget, metric, k, value, ci_low, ci_high, subject, n_problems``;
    ``subject`` is "all", plus one row set per named subject when ``by_subject``
    (problems without a subject count only in "all"). A value resting on fewer than
    two problems has no interval (NaN). ``per_problem`` reuses values already computed
    by ``per_problem_values``.
    """
    per = per_problem
    if per is None:
        if samples is None:
            raise ValueError("compute_curves needs samples or per_problem")
        per = per_problem_values(samples, scores, metrics=metrics, ks=ks, n_mc=n_mc, seed=seed)
    budgets, columns, values, problems, subjects = _matrices(per)
    boot = ProblemBootstrap(len(problems), n_boot=n_boot, seed=seed, level=level)
    out = curve_frame(budgets, columns, values, subject_sets(subjects, boot,
                                                             by_subject=by_subject))
    out.attrs["n_failed_dropped"] = per.attrs.get("n_failed_dropped", 0)
    return out


def category_curves(analysis: Any, categories: Mapping[str, object], name: str
                    ) -> pd.DataFrame:
    """Curves of an ``Analysis`` per category of ``categories`` (problem id -> label).

    The per-problem values are the analysis's own (no second pass) and the bootstrap
    its settings' (``n_boot``, ``seed``, ``level``): "all" keeps the analysis curves'
    numbers, and each category resamples its own problems (a draw keyed by its name).
    Columns: ``CURVE_COLUMNS`` with ``subject`` renamed to ``name``; problems without
    a label count only in "all".
    """
    per = analysis.per_problem
    budgets, columns, values, problems, _subjects = _matrices(per)
    labels = [None if categories.get(p) is None else str(categories.get(p)) for p in problems]
    settings = analysis.settings
    boot = ProblemBootstrap(len(problems), n_boot=settings["n_boot"], seed=settings["seed"],
                            level=settings["level"])
    out = curve_frame(budgets, columns, values, subject_sets(labels, boot))
    return out.rename(columns={"subject": name})


# --------------------------------------------------------------------------- paired


@overload
def paired_difference(
    first: pd.DataFrame, second: pd.DataFrame, *, n_boot: int = ..., seed: int = ...,
    level: float = ..., on: Sequence[str] | None = ...,
) -> pd.DataFrame: ...
@overload
def paired_difference(
    first: np.ndarray | Sequence[float], second: np.ndarray | Sequence[float], *,
    n_boot: int = ..., seed: int = ..., level: float = ..., on: Sequence[str] | None = ...,
) -> PairedDifference: ...
def paired_difference(
    first: Any, second: Any, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95,
    on: Sequence[str] | None = None,
) -> pd.DataFrame | PairedDifference:
    """Mean of ``second - first`` over the problems both share, with a paired interval.

    The sign convention is ttc's one: second minus first (a later run minus an earlier
    one, a higher budget minus a lower, a scorer minus majority when passed in that
    order). Arrays: aligned per-problem values; returns a ``PairedDifference``
    (``estimate``, ``confidence_interval``, ``pvalue``, ``first``, ``second``, ``sign``).
    ``per_problem_values`` frames: matched on ``problem_id`` plus every key in ``on``
    (default: each of budget, metric, k that holds the same set of values on both
    sides, so budget-vs-budget, scorer-vs-majority and run-vs-run comparisons all work
    on filtered frames); returns one row per matched key with ``PAIRED_COLUMNS``, and
    ``attrs["sign"]``.
    """
    if not isinstance(first, pd.DataFrame) or not isinstance(second, pd.DataFrame):
        return paired_bootstrap(first, second, n_boot=n_boot, seed=seed, level=level)
    fa, fb = first, second
    if "subject" in fa.columns and (fa["subject"] == "all").any():
        raise ValueError("pass per_problem_values output, not curves")
    keys = list(on) if on is not None else [
        c for c in _KEYS if c in fa.columns and c in fb.columns
        and set(map(str, fa[c].unique())) == set(map(str, fb[c].unique()))
    ]
    left = fa[["problem_id", *keys, "value"]].astype({k: object for k in keys})
    right = fb[["problem_id", *keys, "value"]].astype({k: object for k in keys})
    merged = left.merge(right, on=["problem_id", *keys], suffixes=("_first", "_second"))
    if merged.empty:
        raise ValueError(f"no shared problems when matching on problem_id + {keys}")
    if merged.duplicated(["problem_id", *keys]).any():
        raise ValueError(
            f"several values per problem when matching on {keys}: filter first or pass on=")
    rows = []
    groups = merged.groupby(keys, sort=False) if keys else [((), merged)]
    for key, group in groups:
        key_t = key if isinstance(key, tuple) else (key,)
        res = paired_bootstrap(group["value_first"], group["value_second"], n_boot=n_boot,
                               seed=seed, level=level)
        rows.append({**dict(zip(keys, key_t, strict=True)), "first": res.first,
                     "second": res.second, "difference": res.estimate,
                     "ci_low": res.confidence_interval.low,
                     "ci_high": res.confidence_interval.high, "pvalue": res.pvalue,
                     "n_problems": res.n_problems})
    out = pd.DataFrame(rows)
    out["n_problems"] = out["n_problems"].astype(np.int64)
    if "k" in out.columns:
        out["k"] = out["k"].astype(np.int64)
    out = with_budget_dtype(out)
    out.attrs["sign"] = SIGN_CONVENTION
    return out


def compare_runs(
    first: Any, second: Any, *, metric: str = "majority", k: int = 1, n_boot: int = 1000,
    seed: int = 0, level: float = 0.95,
) -> pd.DataFrame:
    """Paired difference (second minus first) of metric@k on shared problems, per budget.

    Pairing on problems removes problem difficulty from the comparison, so intervals
    are much tighter than two independent ones. Accepts ``Run`` objects (anything with
    ``per_problem(metrics=..., ks=...)``). Columns: budget, metric, k, then
    ``ttc.curves.PAIRED_COLUMNS``; ``attrs["sign"]`` states the convention. For one
    budget per category, several runs, imported runs and Holm adjustment, see
    ``ttc.compare`` (``ttc compare``).
    """
    def values(run: Any) -> pd.DataFrame:
        frame = run.per_problem(metrics=(metric,), ks=[k])
        frame = frame[(frame["metric"] == metric) & (frame["k"] == k)]
        return frame.assign(budget=frame["budget"].astype(object))[["problem_id", "budget",
                                                                    "metric", "k", "value"]]

    out = paired_difference(values(first), values(second), n_boot=n_boot, seed=seed,
                            level=level, on=["budget", "metric", "k"])
    out = out.sort_values("budget", key=lambda s: s.map(budget_sort_key), ignore_index=True)
    out = with_budget_dtype(out)
    out.attrs["sign"] = SIGN_CONVENTION
    return out
