"""One run's side of a comparison: one metric@k at one budget, per problem, from the one pass.

``ttc compare`` needs, per run, the exact per-problem value of ONE (metric, k) at ONE
budget, each problem's category and its gold answer. The values come from the analysis
pass (``ttc._pass.run_pass``) fed from the store problem by problem, restricted to the
chosen budget: another budget of the same run (one still being swept, with fewer
samples per problem) neither costs a pass nor limits the k that can be compared. Private:
``ttc.comparison`` is the surface.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc._pass import run_pass
from ttc._sources import Layout, Plan, store_layout, store_positions, store_problems
from ttc.config import Budget, budget_sort_key, parse_budget
from ttc.errors import UserInputError

if TYPE_CHECKING:
    from ttc.run import Run

__all__: list[str] = []

METRIC_BASES = ("majority", "pass", "mean", "best_of", "weighted_majority")


@dataclass(frozen=True)
class RunInfo:
    """What a comparison needs to know about a run before its pass."""

    run: Run
    layout: Layout
    cells: dict[str, list[str]]

    @property
    def name(self) -> str:
        return str(self.run.path)

    def n_min(self, budget: Budget) -> int:
        """The fewest graded samples any problem has at ``budget`` (0: none)."""
        return self.layout.n_min[self.layout.budgets.index(budget)]

    def n_max(self, budget: Budget) -> int:
        return self.layout.n_max[self.layout.budgets.index(budget)]


@dataclass(frozen=True)
class Side:
    """One run's values at the comparison point; arrays are in the run's problem order."""

    label: str
    path: Path
    model: str
    created_at: float | None
    origin: str  # "sweep", or "import (inspect)" etc.
    budget: Budget
    n_min: int
    n_max: int
    problem_ids: list[str]
    values: np.ndarray  # NaN = this problem has no value (see ``notes``)
    categories: dict[str, str | None]
    golds: dict[str, tuple[str, str]]  # problem id -> (gold answer, kind)
    notes: list[str] = field(default_factory=list)


def check_metric(metric: str) -> None:
    base, _, scorer = metric.partition(":")
    if base not in METRIC_BASES or (base in ("best_of", "weighted_majority")) != bool(scorer):
        raise UserInputError(
            f"unknown metric {metric!r}; use majority, pass, mean, best_of:SCORER or "
            f"weighted_majority:SCORER")


def run_info(run: Run) -> RunInfo:
    """The run's layout (budgets, samples per problem, scorers); refuses agent runs."""
    if run.meta.get("agent"):
        raise UserInputError(
            f"{run.path} is an agent run: compare step curves instead, with "
            f"ttc.agent.analysis.compare_step_curves(run_a, run_b) (the paired gap at each "
            f"step budget; see docs/agents.md)")
    layout, cells = store_layout(run.store, run.active_scorers())
    if not layout.budgets:
        raise UserInputError(f"{run.path}: the run holds no samples")
    return RunInfo(run, layout, cells)


def _budget_list(value: Budget | Sequence[Budget] | None, n: int) -> list[Budget] | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise UserInputError(f"--budget lists {len(value)} budgets for {n} runs; give one "
                                 f"budget for all runs or one per run")
        return [parse_budget(b) for b in value]
    return [parse_budget(value)] * n


def choose_budgets(infos: Sequence[RunInfo], budget: Budget | Sequence[Budget] | None
                   ) -> tuple[list[Budget], list[str]]:
    """One budget per run: given, else the highest budget every run has, else each
    run's highest (said in a note, since the runs then differ in more than the model)."""
    chosen = _budget_list(budget, len(infos))
    notes: list[str] = []
    if chosen is not None:
        for info, b in zip(infos, chosen, strict=True):
            if b not in info.layout.budgets:
                have = ", ".join(map(str, info.layout.budgets))
                raise UserInputError(f"{info.name} has no budget {b}; it has: {have}")
        return chosen, notes
    shared = set(infos[0].layout.budgets)
    for info in infos[1:]:
        shared &= set(info.layout.budgets)
    if shared:
        top = max(shared, key=budget_sort_key)
        return [top] * len(infos), notes
    chosen = [info.layout.budgets[-1] for info in infos]
    notes.append("the runs share no budget; each is compared at its highest ("
                 + ", ".join(f"{i.name}: {b}" for i, b in zip(infos, chosen, strict=True))
                 + "); pass --budget to choose")
    return chosen, notes


def choose_k(infos: Sequence[RunInfo], budgets: Sequence[Budget], metric: str,
             k: int | None) -> int:
    """``k`` as given (checked against every run), else the largest k every problem of
    every run can supply at its budget (so all runs are compared at the same k)."""
    for info, b in zip(infos, budgets, strict=True):
        if info.n_min(b) == 0:
            raise UserInputError(f"{info.name} has no graded sample at budget {b}")
    if metric == "mean":
        if k not in (None, 1):
            raise UserInputError("metric mean is the one-sample accuracy: it has k = 1 only")
        return 1
    fewest = min(info.n_min(b) for info, b in zip(infos, budgets, strict=True))
    if k is None:
        return fewest
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserInputError(f"k must be a positive integer, got {k!r}")
    for info, b in zip(infos, budgets, strict=True):
        if k > info.n_min(b):
            raise UserInputError(
                f"{info.name} has only {info.n_min(b)} graded sample(s) for some problem at "
                f"budget {b}: k = {k} cannot be estimated there (use --k {fewest} or less)")
    return k


def categories_of(run: Run, pass_subjects: Mapping[str, str | None], by: str | None
                  ) -> dict[str, str | None]:
    """Each problem's category: its subject (after the run's ``subject_map``), or the
    value of a key of its stored metadata (``--by level``)."""
    if by is None:
        return {pid: None for pid in pass_subjects}
    if by == "subject":
        mapping = (run.config.get("dataset") or {}).get("subject_map") or {}
        return {pid: None if s is None else str(mapping.get(s, s))
                for pid, s in pass_subjects.items()}
    out: dict[str, str | None] = {}
    for problem, _order in run.problems():
        value = problem.meta.get(by)
        out[problem.id] = None if value is None or (isinstance(value, float)
                                                    and math.isnan(value)) else str(value)
    return out


def meta_keys(run: Run) -> set[str]:
    keys: set[str] = set()
    for problem, _order in run.problems():
        keys.update(problem.meta)
    return keys


def read_side(info: RunInfo, *, label: str, budget: Budget, metric: str, k: int,
              by: str | None, n_mc: int, seed: int) -> Side:
    """The run's exact per-problem values of ``metric@k`` at ``budget`` (one pass)."""
    run, layout = info.run, info.layout
    j = layout.budgets.index(budget)
    cells = {pid: labs for pid, labels in info.cells.items()
             if (labs := [lab for lab in labels if parse_budget(lab) == budget])}
    sub = Layout([budget], [layout.n_min[j]], [layout.n_max[j]], layout.scorers,
                 layout.negative_scorers,
                 Plan(len(cells), (budget,), layout.n_max[j], inferred=True), len(cells))
    active = run.active_scorers()
    positions = store_positions(run.store)
    try:
        result = run_pass(sub, store_problems(run.store, sub, cells, active), metrics=[metric],
                          ks=[k], n_mc=n_mc, seed=seed,
                          order=lambda ids: [positions.get(i, len(positions)) for i in ids])
    except ValueError as exc:  # a scorer the run lacks, negative vote weights
        scorers = ", ".join(layout.scorers) or "none"
        raise UserInputError(f"{info.name}: {exc} (scored in this run: {scorers})") from None
    column = result.columns[0].index((metric, k))
    values = result.values[0][:, column].astype(float)
    if np.isnan(values).all():
        why = "; ".join(result.notes) or "no problem has a value"
        raise UserInputError(f"{info.name}: no value of {metric}@{k} at budget {budget} ({why})")
    meta = run.store.run_meta()
    origin = str(meta.origin)
    if meta.origin == "import":
        origin = f"import ({(meta.import_info or {}).get('harness', '?')})"
    subjects = dict(zip(result.problem_ids, result.subjects, strict=True))
    golds = {p.id: (p.answer, p.kind) for p, _order in run.problems()}
    return Side(
        label=label, path=run.path, model=meta.model_name, created_at=meta.created_at,
        origin=origin, budget=budget, n_min=layout.n_min[j], n_max=layout.n_max[j],
        problem_ids=list(result.problem_ids), values=values,
        categories=categories_of(run, subjects, by), golds=golds,
        notes=[f"{label}: {note}" for note in result.notes],
    )


def gold_mismatches(first: Side, other: Side, shared: Sequence[str]) -> list[str]:
    """Shared problems whose gold answers differ (string, then ttc's equivalence)."""
    from ttc.grading import is_equivalent

    differ = []
    for pid in shared:
        if pid not in first.golds or pid not in other.golds:
            continue
        (ga, kind_a), (gb, kind_b) = first.golds[pid], other.golds[pid]
        if ga.strip() == gb.strip():
            continue
        if kind_a != kind_b or not is_equivalent(ga, gb, kind_a):  # type: ignore[arg-type]
            differ.append(pid)
    return differ


def default_labels(sides_models: Sequence[tuple[str, Path]]) -> list[str]:
    """The model name; the run folder's name is added where two runs share a model."""
    names = [m for m, _ in sides_models]
    out = []
    for model, path in sides_models:
        out.append(model if names.count(model) == 1 else f"{model} ({path.name})")
    if len(set(out)) < len(out):  # same model and folder name under different parents
        out = [f"{name} #{i + 1}" for i, name in enumerate(out)]
    return out


def resolve_labels(labels: Sequence[str] | Mapping[str, str] | None,
                   runs: Sequence[tuple[str, Path]], given: Sequence[str]) -> list[str]:
    """Labels in run order: defaults, a list, or ``{key: label}`` where key is the run's
    letter (A, B, ...), its path as given, or its folder name."""
    out = default_labels(runs)
    if labels is None:
        return out
    if not isinstance(labels, Mapping):
        if len(labels) != len(runs):
            raise UserInputError(f"{len(labels)} labels for {len(runs)} runs")
        out = [str(x) for x in labels]
    else:
        for key, name in labels.items():
            index = _run_index(str(key), runs, given)
            out[index] = str(name)
    if len(set(out)) < len(out):
        raise UserInputError(f"run labels must differ: {', '.join(out)}")
    return out


def _run_index(key: str, runs: Sequence[tuple[str, Path]], given: Sequence[str]) -> int:
    letters = [chr(ord("A") + i) for i in range(len(runs))]
    if key in letters:
        return letters.index(key)
    for candidates in (list(given), [str(p) for _, p in runs], [p.name for _, p in runs]):
        if candidates.count(key) == 1:
            return candidates.index(key)
    raise UserInputError(f"--label {key}=...: no run {key!r}; name a run by its letter "
                         f"({', '.join(letters)}), its path or its folder name")


def date_text(created_at: float | None) -> str:
    if created_at is None:
        return "unknown"
    import datetime as dt

    return dt.datetime.fromtimestamp(created_at, tz=dt.UTC).strftime("%Y-%m-%d")


def budget_value(budget: Any) -> Any:
    """A budget as JSON writes it: an int for tokens, a name for an effort level."""
    return int(budget) if isinstance(budget, (int, np.integer)) else str(budget)
