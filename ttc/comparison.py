"""``ttc compare``: runs against runs on the problems they share, per category, paired.

A comparison reads, for each run, the exact per-problem value of one metric@k at one
budget (``ttc._compare_sides``: the analysis pass restricted to that budget), keeps
the problems EVERY run has a value for (so each pair, each bar and each category rests
on one problem set; the dropped count is said), and computes, per category and overall:

* each run's mean with its problem-bootstrap interval (the bars), and
* for each pair of runs (consecutive ones, A -> B -> C, plus first -> last with three
  or more), the paired difference ``b - a`` (later run minus earlier, in the order the
  runs were given), its interval and a two-sided p-value from the same replicates
  (``ttc.bootstrap.paired_bootstrap``: problems are resampled as pairs).

Bars and differences of one category share ONE bootstrap draw (``curves.subject_sets``:
the draw of "all", or a subset draw keyed by the category's name), so a bar's interval
and the difference's come from the same resampled problem sets. With more than
``HOLM_ABOVE`` categories the per-category p-values of a pair are one family of tests:
their Holm-adjusted values (``holm_adjust``) and a flag at the interval's level stand
beside the raw ones (raw intervals are not adjusted; read the flag). The overall row
is the primary test and is not adjusted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ttc._compare_sides import (
    RunInfo,
    Side,
    budget_value,
    check_metric,
    choose_budgets,
    choose_k,
    date_text,
    gold_mismatches,
    meta_keys,
    read_side,
    resolve_labels,
    run_info,
)
from ttc._render import metric_name
from ttc.bootstrap import SIGN_CONVENTION, ProblemBootstrap, paired_bootstrap
from ttc.config import Budget
from ttc.curves import subject_sets
from ttc.errors import UserInputError

if TYPE_CHECKING:
    from ttc.run import Run

__all__ = [
    "COMPARE_KEYS",
    "HOLM_ABOVE",
    "ROW_KEYS",
    "SIGN",
    "Comparison",
    "build_comparison",
    "compare",
    "holm_adjust",
    "run_pairs",
]

#: every output says it: text, JSON, figure captions
SIGN = (f"later run minus earlier: diff = value_b - value_a, b after a in the order the runs "
        f"were given ({SIGN_CONVENTION})")
#: the JSON object's keys, exactly
COMPARE_KEYS = ("metric", "k", "budget", "sign", "rows")
#: each row's required keys, in order; extra keys follow
ROW_KEYS = ("a", "b", "subject", "value_a", "value_b", "diff", "ci_low", "ci_high", "p_value",
            "n_problems")
EXTRA_KEYS = ("budget_a", "budget_b", "level", "p_holm", "holm_significant", "degenerate")
VALUE_COLUMNS = ["run", "subject", "value", "ci_low", "ci_high", "n_problems"]
#: more categories than this: Holm-adjusted p-values are shown beside the raw ones
HOLM_ABOVE = 3


@dataclass(frozen=True)
class Comparison:
    """The result of ``build_comparison``: frames for a notebook, dicts for files."""

    metric: str
    k: int
    by: str | None
    budgets: list[Budget]  # per run, in order
    runs: pd.DataFrame  # one row per run: label, model, date, origin, budget, samples, path
    values: pd.DataFrame  # VALUE_COLUMNS: each run's mean per category (the bars)
    rows: pd.DataFrame  # ROW_KEYS + EXTRA_KEYS: paired differences per pair and category
    categories: list[str]
    n_problems: int  # shared problems every number rests on
    n_dropped: int  # problems some run lacks, or has no value for
    settings: dict[str, Any]  # n_boot, seed, level
    notes: list[str] = field(default_factory=list)
    sign: str = SIGN

    @property
    def labels(self) -> list[str]:
        return [str(x) for x in self.runs["label"]]

    @property
    def holm_shown(self) -> bool:
        return len(self.categories) > HOLM_ABOVE

    @property
    def budget(self) -> Any:
        """One budget when every run is compared at the same one, else the list."""
        values = [budget_value(b) for b in self.budgets]
        return values[0] if len(set(map(str, values))) == 1 else values

    @property
    def metric_text(self) -> str:
        return metric_name(self.metric, self.k)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object: keys exactly ``COMPARE_KEYS``; rows ``ROW_KEYS`` first."""
        rows = [{key: _json(row[key]) for key in (*ROW_KEYS, *EXTRA_KEYS)}
                for row in self.rows.to_dict("records")]
        return {"metric": self.metric, "k": self.k, "budget": self.budget, "sign": self.sign,
                "rows": rows}

    def text(self) -> str:
        from ttc._compare_text import comparison_text

        return comparison_text(self)


def _json(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is None or value is pd.NA:
        return None
    return value


def run_pairs(n: int) -> list[tuple[int, int]]:
    """Consecutive pairs (A -> B, B -> C, ...), plus first -> last with three or more runs."""
    out = [(i, i + 1) for i in range(n - 1)]
    return [*out, (0, n - 1)] if n >= 3 else out


def holm_adjust(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values; NaN entries are no test and stay NaN.

    Sorted ascending, the i-th of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``;
    rejecting where the adjusted value is at most alpha controls the family-wise error
    rate at alpha under any dependence between the tests.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out


def compare(
    runs: Sequence[Run | str | Path], *, metric: str = "majority", k: int | None = None,
    budget: Budget | Sequence[Budget] | None = None, by: str | None = None,
    labels: Sequence[str] | Mapping[str, str] | None = None, n_boot: int = 1000,
    seed: int = 0, level: float = 0.95,
) -> pd.DataFrame:
    """Paired differences (later run minus earlier) on shared problems, as a frame.

    One row per (pair, category): ``ROW_KEYS`` then ``EXTRA_KEYS`` (see
    ``build_comparison`` for the arguments). ``attrs`` holds ``sign``, ``metric``,
    ``k``, ``budget``, ``n_problems``, ``n_dropped`` and ``notes``; the runs table and
    each run's per-category values are on the ``Comparison`` that
    ``build_comparison`` returns.
    """
    result = build_comparison(runs, metric=metric, k=k, budget=budget, by=by, labels=labels,
                              n_boot=n_boot, seed=seed, level=level)
    out = result.rows.copy()
    out.attrs.update(sign=result.sign, metric=result.metric, k=result.k, budget=result.budget,
                     n_problems=result.n_problems, n_dropped=result.n_dropped,
                     notes=list(result.notes))
    return out


def build_comparison(
    runs: Sequence[Run | str | Path], *, metric: str = "majority", k: int | None = None,
    budget: Budget | Sequence[Budget] | None = None, by: str | None = None,
    labels: Sequence[str] | Mapping[str, str] | None = None, n_boot: int = 1000,
    seed: int = 0, level: float = 0.95, n_mc: int = 200,
) -> Comparison:
    """Compare runs (``Run`` objects or run directories) in the order given.

    ``metric``: majority, pass, mean, best_of:SCORER or weighted_majority:SCORER.
    ``k``: default the largest k every problem of every run supplies at its budget.
    ``budget``: one for all runs, or one per run; default the highest budget all runs
    share (else each run's highest, with a note). ``by``: None (overall only),
    "subject" (after each run's ``subject_map``) or a key of the problems' stored
    metadata (``"level"``). ``labels``: one per run, or ``{letter|path|folder: label}``;
    default the model name. Refuses (``UserInputError``) runs that share no problems,
    disagree on a shared problem's gold answer, or lack the metric, scorer or budget.
    """
    check_metric(metric)
    if len(runs) < 2:
        raise UserInputError("compare needs two or more runs")
    if n_boot < 2:
        raise UserInputError(f"the bootstrap needs at least 2 resamples, got {n_boot}")
    from ttc.run import Run, open_run

    opened: list[Run] = []
    try:
        objects: list[Run] = []
        for item in runs:
            if isinstance(item, Run):
                objects.append(item)
            else:
                opened.append(open_run(item))
                objects.append(opened[-1])
        infos = [run_info(run) for run in objects]
        budgets, notes = choose_budgets(infos, budget)
        kk = choose_k(infos, budgets, metric, k)
        given = [str(getattr(item, "path", item)) for item in runs]
        names = resolve_labels(labels, [(run.store.run_meta().model_name, run.path)
                                        for run in objects], given)
        _check_by(by, infos)
        sides = [read_side(info, label=name, budget=b, metric=metric, k=kk, by=by,
                           n_mc=n_mc, seed=seed)
                 for info, name, b in zip(infos, names, budgets, strict=True)]
    finally:
        for run in opened:
            run.close()
    return _assemble(sides, metric, kk, by, notes,
                     ProblemBootstrap(0, n_boot=n_boot, seed=seed, level=level))


def _check_by(by: str | None, infos: Sequence[RunInfo]) -> None:
    if by is None or by == "subject":
        return
    keys: set[str] = set()
    for info in infos:
        keys |= meta_keys(info.run)
    if by not in keys:
        known = ", ".join(["subject", *sorted(keys)])
        raise UserInputError(f"--by {by}: no problem of these runs has {by!r}; use one of: "
                             f"{known}")


def _shared(sides: Sequence[Side]) -> tuple[list[str], list[str]]:
    """Problem ids every run stores (first run's order), and all ids any run stores."""
    sets = [set(s.problem_ids) for s in sides]
    union = list(dict.fromkeys(pid for s in sides for pid in s.problem_ids))
    shared = [pid for pid in sides[0].problem_ids if all(pid in ids for ids in sets)]
    if not shared:
        described = ", ".join(f"{s.label} has {len(s.problem_ids)} (e.g. {s.problem_ids[0]!r})"
                              for s in sides)
        raise UserInputError(f"the runs share no problems ({described}): nothing to compare")
    return shared, union


def _assemble(sides: list[Side], metric: str, k: int, by: str | None, notes: list[str],
              template: ProblemBootstrap) -> Comparison:
    notes = [*notes, *(n for s in sides for n in s.notes)]
    shared, union = _shared(sides)
    first = sides[0]
    for side in sides[1:]:
        differ = gold_mismatches(first, side, shared)
        if differ:
            pid = differ[0]
            raise UserInputError(
                f"{first.label} and {side.label} give different gold answers for "
                f"{len(differ)} of {len(shared)} shared problems (e.g. {pid!r}: "
                f"{first.golds[pid][0]!r} vs {side.golds[pid][0]!r}): not the same problems")
    lookup = [dict(zip(s.problem_ids, s.values.tolist(), strict=True)) for s in sides]
    valued = [pid for pid in shared if not any(math.isnan(v[pid]) for v in lookup)]
    if not valued:
        raise UserInputError(f"no shared problem has a value of {metric}@{k} in every run")
    n_dropped = len(union) - len(valued)
    if len(shared) < len(union):
        counts = ", ".join(f"{s.label} {len(s.problem_ids)}" for s in sides)
        notes.append(f"problem sets differ ({counts} problems): {len(union) - len(shared)} "
                     f"problem(s) not in every run are dropped")
    if len(valued) < len(shared):
        notes.append(f"{len(shared) - len(valued)} shared problem(s) have no value of "
                     f"{metric}@{k} in some run (see above) and are dropped")
    if n_dropped:
        notes.append(f"compared on {len(valued)} of {len(union)} problems ({n_dropped} dropped)")
    matrix = np.array([[v[pid] for v in lookup] for pid in valued], dtype=float)
    categories, cat_notes = _categories(sides, valued, by)
    notes += cat_notes
    boot = ProblemBootstrap(len(valued), n_boot=template.n_boot, seed=template.seed,
                            level=template.level)
    sets = subject_sets(categories, boot, by_subject=by is not None)
    labels = [s.label for s in sides]
    values = _values(sets, matrix, labels)
    rows = _rows(sets, matrix, sides, boot)
    runs = pd.DataFrame([{
        "letter": chr(ord("A") + i), "label": s.label, "model": s.model,
        "date": date_text(s.created_at), "origin": s.origin, "budget": budget_value(s.budget),
        "samples": f"{s.n_min}" if s.n_min == s.n_max else f"{s.n_min}-{s.n_max}",
        "problems": len(s.problem_ids), "path": str(s.path)} for i, s in enumerate(sides)])
    return Comparison(
        metric=metric, k=k, by=by, budgets=[s.budget for s in sides], runs=runs,
        values=values, rows=rows, categories=[label for label, _, _ in sets[1:]],
        n_problems=len(valued), n_dropped=n_dropped,
        settings={"n_boot": boot.n_boot, "seed": boot.seed, "level": boot.level}, notes=notes)


def _categories(sides: Sequence[Side], problems: Sequence[str], by: str | None
                ) -> tuple[list[str | None], list[str]]:
    """Each problem's category: the first run's that names one; disagreements are noted."""
    if by is None:
        return [None] * len(problems), []
    out: list[str | None] = []
    disagree = 0
    for pid in problems:
        named = [s.categories.get(pid) for s in sides if s.categories.get(pid) is not None]
        out.append(named[0] if named else None)
        disagree += len(set(named)) > 1
    notes = []
    if disagree:
        notes.append(f"the runs disagree on the {by} of {disagree} problem(s); the first "
                     f"run's that names one is used")
    if not any(out):
        notes.append(f"no shared problem has a {by}: overall only")
    elif not all(out):
        notes.append(f"{sum(c is None for c in out)} problem(s) without a {by} count only "
                     f"in 'all'")
    return out, notes


def _values(sets: Sequence[tuple[str, np.ndarray, ProblemBootstrap]], matrix: np.ndarray,
            labels: Sequence[str]) -> pd.DataFrame:
    parts = []
    for name, mask, boot in sets:
        res = boot.mean(matrix[mask], bounds=(0.0, 1.0))
        parts.append(pd.DataFrame({
            "run": list(labels), "subject": name, "value": res.estimate,
            "ci_low": res.confidence_interval.low, "ci_high": res.confidence_interval.high,
            "n_problems": np.asarray(res.n_problems, dtype=np.int64)}))
    return pd.concat(parts, ignore_index=True)[VALUE_COLUMNS]


def _rows(sets: Sequence[tuple[str, np.ndarray, ProblemBootstrap]], matrix: np.ndarray,
          sides: Sequence[Side], boot: ProblemBootstrap) -> pd.DataFrame:
    alpha = 1.0 - boot.level
    records = []
    for i, j in run_pairs(len(sides)):
        block = []
        for name, mask, draw in sets:
            res = paired_bootstrap(matrix[mask, i], matrix[mask, j], n_boot=draw.n_boot,
                                   seed=draw.seed, level=draw.level)
            block.append({
                "a": sides[i].label, "b": sides[j].label, "subject": name,
                "value_a": res.first, "value_b": res.second, "diff": float(res.estimate),
                "ci_low": float(res.low), "ci_high": float(res.high),
                "p_value": float(res.pvalue), "n_problems": int(res.n_problems),
                "budget_a": budget_value(sides[i].budget),
                "budget_b": budget_value(sides[j].budget), "level": boot.level,
                "p_holm": math.nan, "holm_significant": None,
                "degenerate": bool(res.degenerate)})
        adjusted = holm_adjust([r["p_value"] for r in block[1:]])
        for row, p in zip(block[1:], adjusted, strict=True):
            row["p_holm"] = float(p)
            row["holm_significant"] = None if math.isnan(p) else bool(p <= alpha)
        records += block
    out = pd.DataFrame(records, columns=[*ROW_KEYS, *EXTRA_KEYS])
    out["n_problems"] = out["n_problems"].astype(np.int64)
    out["holm_significant"] = out["holm_significant"].astype(object)
    return out
