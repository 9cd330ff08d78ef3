"""Per-problem exact estimates, curves over k with problem-bootstrap intervals, paired gaps.

The unit of every analysis is one problem's exact value of a metric at one budget and k
(``per_problem_values``). Curves average those over problems; intervals resample
*problems* with replacement, because problems are the sampled units whose variation
dominates (resampling samples within a problem is biased for majority vote and ignores
problem-to-problem spread). Every bootstrap draws from an explicit seeded
``numpy.random.Generator``, so a curve is reproducible bit for bit.

Input contract (``samples``): one row per sample with ``problem_id``, ``subject``,
``budget``, ``sample_index``, ``status`` ("ok" | "censored" | "failed"),
``answer_class`` (hashable; None = no answer) and ``correct`` (bool or float credit).
Failed rows are dropped (they will be re-requested; the count is in
``result.attrs["n_failed_dropped"]``); censored rows stay as samples. A missing
``correct`` is read as 0 for a row without an answer and is an error otherwise.
Optional ``scores``: ``problem_id, budget, sample_index, scorer, score``.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Hashable, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ttc.estimators import (
    best_of_k,
    majority_at_k,
    pass_at_k,
    weighted_majority_at_k,
)

__all__ = [
    "DEFAULT_METRICS",
    "SAMPLE_COLUMNS",
    "SCORE_COLUMNS",
    "bootstrap_mean_ci",
    "compute_curves",
    "paired_difference",
    "per_problem_values",
]

SAMPLE_COLUMNS = (
    "problem_id",
    "subject",
    "budget",
    "sample_index",
    "status",
    "answer_class",
    "correct",
)
SCORE_COLUMNS = ("problem_id", "budget", "sample_index", "scorer", "score")
#: "best_of" and "weighted_majority" expand to one metric per scorer ("best_of:<scorer>");
#: name one scorer as "best_of:<scorer>" to restrict. "mean" (k = 1) is always included.
DEFAULT_METRICS = ("majority", "pass", "best_of", "weighted_majority")
_KEYS = ("budget", "metric", "k")
FloatArray = NDArray[np.float64]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _clean_samples(samples: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Validate the samples contract, drop failed rows, add a float ``_credit`` column."""
    absent = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if absent:
        raise ValueError(f"samples lacks columns {absent}; needs {list(SAMPLE_COLUMNS)}")
    bad = set(samples["status"].unique()) - {"ok", "censored", "failed"}
    if bad:
        raise ValueError(f"unknown status values {sorted(map(str, bad))}")
    failed = samples["status"] == "failed"
    frame = samples.loc[~failed, list(SAMPLE_COLUMNS)].copy()
    answers = [None if _missing(a) else a for a in frame["answer_class"]]
    frame["answer_class"] = pd.Series(answers, index=frame.index, dtype=object)
    credit = pd.to_numeric(frame["correct"].astype(object), errors="coerce").astype(float)
    no_answer = frame["answer_class"].isna().to_numpy()
    unknown = credit.isna().to_numpy() & ~no_answer
    if unknown.any():
        row = frame.loc[unknown].iloc[0]
        raise ValueError(
            f"correct is missing for an answered, non-failed sample "
            f"(problem {row['problem_id']!r}, budget {row['budget']!r}, "
            f"sample {row['sample_index']})"
        )
    frame["_credit"] = credit.fillna(0.0).to_numpy()
    if frame.duplicated(["problem_id", "budget", "sample_index"]).any():
        raise ValueError("samples holds duplicate (problem_id, budget, sample_index) rows")
    return frame, int(failed.sum())


def _scorer_metrics(metrics: Sequence[str], scorers: list[str], negative: set[str]) -> list[str]:
    """Expand metric names; unknown names and scorers fail loudly.

    A generic "weighted_majority" skips (with a warning) scorers with negative scores,
    which cannot be vote weights; naming such a scorer explicitly is an error.
    """
    out = ["mean"]
    for name in metrics:
        base, _, scorer = name.partition(":")
        if base in ("majority", "pass", "mean") and not scorer:
            out.append(base)
        elif base in ("best_of", "weighted_majority"):
            if scorer and scorer not in scorers:
                raise ValueError(f"metric {name!r}: no scores for scorer {scorer!r}")
            chosen = [scorer] if scorer else scorers
            if base == "weighted_majority" and negative & set(chosen):
                if scorer:
                    raise ValueError(
                        f"metric {name!r}: scorer {scorer!r} has negative scores, "
                        f"which cannot be vote weights (map them to [0, 1] first)"
                    )
                warnings.warn(
                    f"weighted_majority skipped for scorers with negative scores "
                    f"{sorted(negative & set(chosen))} (vote weights must be nonnegative)",
                    stacklevel=3,
                )
                chosen = [c for c in chosen if c not in negative]
            out += [f"{base}:{c}" for c in chosen]
        else:
            raise ValueError(f"unknown metric {name!r}")
    return list(dict.fromkeys(out))


def _score_columns(frame: pd.DataFrame, scores: pd.DataFrame | None) -> list[str]:
    """Attach one ``_score:<scorer>`` column per scorer; every kept sample needs a score."""
    if scores is None or scores.empty:
        return []
    absent = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if absent:
        raise ValueError(f"scores lacks columns {absent}; needs {list(SCORE_COLUMNS)}")
    names = [str(s) for s in dict.fromkeys(scores["scorer"])]
    key = ["problem_id", "budget", "sample_index"]
    for name in names:
        part = scores.loc[scores["scorer"] == name, [*key, "score"]]
        if part.duplicated(key).any():
            raise ValueError(f"scorer {name!r} has several scores for one sample")
        merged = frame[key].merge(part, on=key, how="left")
        values = merged["score"].astype(float).to_numpy()
        if np.isnan(values).any():
            raise ValueError(f"scorer {name!r} did not score every sample")
        frame[f"_score:{name}"] = values
    return names


def _rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator for one (budget, problem, scorer), independent of row order."""
    tag = zlib.crc32("|".join(map(str, parts)).encode("utf-8"))
    return np.random.default_rng([seed, tag])


def per_problem_values(
    samples: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ks: Sequence[int] | None = None,
    n_mc: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """Exact value of every metric at every k for every (problem, budget).

    Columns: ``problem_id, subject, budget, metric, k, value, stderr``. ``stderr`` is 0
    except for Monte Carlo weighted-majority values (``n_mc`` permutations, seeded from
    ``seed``). Metrics: ``mean`` (k = 1, mean credit), ``majority``, ``pass`` (pass@k for
    binary credit, expected best credit for graded), ``best_of:<scorer>`` and
    ``weighted_majority:<scorer>`` (scores as nonnegative vote weights; the generic name
    skips, with a warning, scorers that have negative scores). Default ks:
    1..n where n is the smallest sample count among that budget's problems, so every
    point of a curve averages the same problems; explicit ``ks`` must not exceed any
    problem's n.
    """
    frame, n_failed = _clean_samples(samples)
    scorers = _score_columns(frame, scores)
    negative = {n for n in scorers if (frame[f"_score:{n}"] < 0).any()}
    names = _scorer_metrics(metrics, scorers, negative)
    cols: dict[str, list[Any]] = {c: [] for c in ("problem_id", "subject", "budget", "metric")}
    k_parts: list[NDArray[np.int64]] = []
    v_parts: list[FloatArray] = []
    e_parts: list[FloatArray] = []

    def emit(
        pid: Any, subject: Any, budget: Any, metric: str, kk: Any, vals: Any, err: Any = 0.0
    ) -> None:
        kk = np.atleast_1d(np.asarray(kk, dtype=np.int64))
        for name, value in (
            ("problem_id", pid),
            ("subject", subject),
            ("budget", budget),
            ("metric", metric),
        ):
            cols[name].extend([value] * kk.size)
        k_parts.append(kk)
        v_parts.append(np.broadcast_to(np.asarray(vals, dtype=float), kk.shape).copy())
        e_parts.append(np.broadcast_to(np.asarray(err, dtype=float), kk.shape).copy())

    for budget, by_budget in frame.groupby("budget", sort=False):
        problems = list(by_budget.groupby("problem_id", sort=False))
        n_min = min(len(g) for _, g in problems)
        kk = np.arange(1, n_min + 1) if ks is None else np.asarray(list(ks), dtype=np.int64)
        if kk.size and (kk.min() < 1 or kk.max() > n_min):
            raise ValueError(
                f"ks must lie in 1..{n_min} at budget {budget!r} "
                f"(the fewest samples any problem has there)"
            )
        for pid, g in problems:
            g = g.sort_values("sample_index")
            answers: list[Hashable | None] = list(g["answer_class"])
            credit = g["_credit"].to_numpy()
            subject = g["subject"].iloc[0]
            subject = None if _missing(subject) else subject
            binary = bool(np.isin(credit, (0.0, 1.0)).all())
            for name in names:
                base, _, scorer = name.partition(":")
                if base == "mean":
                    emit(pid, subject, budget, name, 1, credit.mean())
                elif base == "majority":
                    emit(pid, subject, budget, name, kk, majority_at_k(answers, credit, kk))
                elif base == "pass":
                    value = (
                        pass_at_k(credit.size, int(credit.sum()), kk)
                        if binary
                        else best_of_k(credit, credit, kk)
                    )
                    emit(pid, subject, budget, name, kk, value)
                elif base == "best_of":
                    s = g[f"_score:{scorer}"].to_numpy()
                    emit(pid, subject, budget, name, kk, best_of_k(s, credit, kk))
                else:
                    s = g[f"_score:{scorer}"].to_numpy()
                    est = weighted_majority_at_k(
                        answers,
                        s,
                        credit,
                        kk,
                        n_mc=n_mc,
                        rng=_rng_for(seed, budget, pid, scorer),
                    )
                    emit(pid, subject, budget, name, kk, est.value, est.stderr)

    out = pd.DataFrame(cols)
    out["budget"] = pd.Series(cols["budget"], dtype=object)
    out["subject"] = pd.Series(cols["subject"], dtype=object)
    out["k"] = np.concatenate(k_parts) if k_parts else np.zeros(0, dtype=np.int64)
    out["value"] = np.concatenate(v_parts) if v_parts else np.zeros(0)
    out["stderr"] = np.concatenate(e_parts) if e_parts else np.zeros(0)
    out.attrs["n_failed_dropped"] = n_failed
    return out


# --------------------------------------------------------------------------- bootstrap


def _boot_counts(n_items: int, n_boot: int, rng: np.random.Generator) -> FloatArray:
    """``n_boot x n_items`` multiplicities of each item in each resample with replacement."""
    draws = rng.integers(0, n_items, size=(n_boot, n_items))
    flat = (draws + np.arange(n_boot)[:, None] * n_items).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_items).reshape(n_boot, n_items)
    return counts.astype(np.float64)


def _percentile_ci(
    matrix: FloatArray, n_boot: int, rng: np.random.Generator, level: float
) -> tuple[FloatArray, FloatArray]:
    """Percentile intervals of the column means of a (problems x columns) matrix."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError("n_boot must be positive")
    if np.isnan(matrix).any():
        raise ValueError("bootstrap input holds NaN: every problem needs every value")
    means = _boot_counts(matrix.shape[0], n_boot, rng) @ matrix / matrix.shape[0]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return np.asarray(low), np.asarray(high)


def bootstrap_mean_ci(
    values_by_problem: NDArray[np.floating[Any]] | Sequence[float],
    *,
    n_boot: int = 1000,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean over problems (resampling problems)."""
    values = np.asarray(values_by_problem, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("values_by_problem must be a non-empty 1-D array")
    low, high = _percentile_ci(values[:, None], n_boot, rng, level)
    return float(low[0]), float(high[0])


def compute_curves(
    samples: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ks: Sequence[int] | None = None,
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
    (problems without a subject count only in "all"). All columns of one problem set
    share one bootstrap draw, so the intervals of a curve are mutually consistent.
    ``per_problem`` reuses values already computed by ``per_problem_values``.
    """
    per = per_problem
    if per is None:
        per = per_problem_values(samples, scores, metrics=metrics, ks=ks, n_mc=n_mc, seed=seed)
    rng = np.random.default_rng(seed)
    parts: list[pd.DataFrame] = []
    for budget, part in per.groupby("budget", sort=False):
        problems = list(dict.fromkeys(part["problem_id"]))
        columns = list(dict.fromkeys(zip(part["metric"], part["k"], strict=True)))
        row_of = {p: i for i, p in enumerate(problems)}
        col_of = {c: j for j, c in enumerate(columns)}
        wide = np.full((len(problems), len(columns)), np.nan)
        wide[
            part["problem_id"].map(row_of).to_numpy(),
            [col_of[c] for c in zip(part["metric"], part["k"], strict=True)],
        ] = part["value"]
        subj = part.groupby("problem_id", sort=False)["subject"].first().reindex(problems)
        sets: list[tuple[str, NDArray[np.bool_]]] = [("all", np.ones(len(problems), dtype=bool))]
        if by_subject:
            named = sorted({str(s) for s in subj if not _missing(s)})
            sets += [(s, np.array([not _missing(x) and str(x) == s for x in subj])) for s in named]
        for label, mask in sets:
            matrix = wide[mask]
            low, high = _percentile_ci(matrix, n_boot, rng, level)
            parts.append(
                pd.DataFrame(
                    {
                        "budget": pd.Series([budget] * len(columns), dtype=object),
                        "metric": [c[0] for c in columns],
                        "k": np.array([c[1] for c in columns], dtype=np.int64),
                        "value": matrix.mean(axis=0),
                        "ci_low": low,
                        "ci_high": high,
                        "subject": label,
                        "n_problems": int(mask.sum()),
                    }
                )
            )
    order = ["budget", "metric", "k", "value", "ci_low", "ci_high", "subject", "n_problems"]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=order)
    out = out[order]
    out.attrs["n_failed_dropped"] = per.attrs["n_failed_dropped"]
    return out


# --------------------------------------------------------------------------- paired


def _paired(a: FloatArray, b: FloatArray, n_boot: int, seed: int, level: float) -> dict[str, float]:
    diff = a - b
    low, high = bootstrap_mean_ci(diff, n_boot=n_boot, rng=np.random.default_rng(seed), level=level)
    return {
        "difference": float(diff.mean()),
        "ci_low": low,
        "ci_high": high,
        "a": float(a.mean()),
        "b": float(b.mean()),
        "n_problems": float(diff.size),
    }


@overload
def paired_difference(
    per_problem_a: pd.DataFrame,
    per_problem_b: pd.DataFrame,
    *,
    n_boot: int = ...,
    seed: int = ...,
    level: float = ...,
    on: Sequence[str] | None = ...,
) -> pd.DataFrame: ...
@overload
def paired_difference(
    per_problem_a: NDArray[np.floating[Any]] | Sequence[float],
    per_problem_b: NDArray[np.floating[Any]] | Sequence[float],
    *,
    n_boot: int = ...,
    seed: int = ...,
    level: float = ...,
    on: Sequence[str] | None = ...,
) -> dict[str, float]: ...
def paired_difference(
    per_problem_a: Any,
    per_problem_b: Any,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    on: Sequence[str] | None = None,
) -> pd.DataFrame | dict[str, float]:
    """Mean of a - b over the problems both sides share, with a paired problem bootstrap CI.

    Pairing removes problem difficulty, so the interval is far tighter than two
    independent ones. Arrays: aligned per-problem values; returns a dict with
    ``difference, ci_low, ci_high, a, b, n_problems``. ``per_problem_values`` frames:
    matched on ``problem_id`` plus every key in ``on`` (default: each of budget, metric,
    k that holds the same set of values on both sides, so budget-vs-budget,
    scorer-vs-majority and run-vs-run comparisons all work on filtered frames); returns
    one row per matched key with the dict's fields.
    """
    if not isinstance(per_problem_a, pd.DataFrame) or not isinstance(per_problem_b, pd.DataFrame):
        a = np.asarray(per_problem_a, dtype=np.float64).ravel()
        b = np.asarray(per_problem_b, dtype=np.float64).ravel()
        if a.shape != b.shape or a.size == 0:
            raise ValueError(f"paired values must align and be non-empty: {a.size} vs {b.size}")
        return _paired(a, b, n_boot, seed, level)
    fa, fb = per_problem_a, per_problem_b
    if "subject" in fa.columns and (fa["subject"] == "all").any():
        raise ValueError("pass per_problem_values output, not curves")
    keys = (
        list(on)
        if on is not None
        else [
            c
            for c in _KEYS
            if c in fa.columns
            and c in fb.columns
            and set(map(str, fa[c].unique())) == set(map(str, fb[c].unique()))
        ]
    )
    merged = fa[["problem_id", *keys, "value"]].merge(
        fb[["problem_id", *keys, "value"]], on=["problem_id", *keys], suffixes=("_a", "_b")
    )
    if merged.empty:
        raise ValueError(f"no shared problems when matching on problem_id + {keys}")
    if merged.duplicated(["problem_id", *keys]).any():
        raise ValueError(
            f"several values per problem when matching on {keys}: filter first or pass on="
        )
    rows = []
    groups = merged.groupby(keys, sort=False) if keys else [((), merged)]
    for key, group in groups:
        key_t = key if isinstance(key, tuple) else (key,)
        res = _paired(
            group["value_a"].to_numpy(dtype=float),
            group["value_b"].to_numpy(dtype=float),
            n_boot,
            seed,
            level,
        )
        rows.append({**dict(zip(keys, key_t, strict=True)), **res})
    out = pd.DataFrame(rows)
    out["n_problems"] = out["n_problems"].astype(int)
    return out
