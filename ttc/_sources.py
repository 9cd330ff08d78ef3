"""Where the analysis pass gets its samples: one problem at a time, as columns.

Two sources produce the same ``ProblemSamples``: the run store (SQL, read in primary
key order so no sort and no whole-run frame is ever built: memory is one problem's
samples plus the per-problem results) and a samples frame (notebooks, tests,
imported data). ``Layout`` is what must be known before the pass: the budgets, each
budget's smallest per-problem sample count (which bounds the ks of a curve), the
scorers and the plan. Everything here is private; ``ttc.analysis`` is the surface.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from ttc.config import Budget, budget_sort_key, parse_budget
from ttc.errors import UserInputError

if TYPE_CHECKING:
    from ttc.store import RunStore

__all__: list[str] = []

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]
#: status codes of the pass; a branch adding a status adds it here. ``stopped``: a trace
#: an online rule cut mid-stream (drawn and paid for, but no answer: never graded)
STATUSES = {"ok": 0, "censored": 1, "failed": 2, "stopped": 3}
FAILED = STATUSES["failed"]
CENSORED = STATUSES["censored"]
STOPPED = STATUSES["stopped"]


class AnalysisInputError(UserInputError, ValueError):
    """Samples the analysis cannot use as they are (ungraded answers, unknown statuses)."""


@dataclass(slots=True)
class ProblemSamples:
    """Every stored sample of one problem, as columns sorted by (budget, sample_index)."""

    problem_id: str
    subject: str | None
    budget: IntArray  # index into Layout.budgets
    sample_index: IntArray
    status: IntArray  # STATUSES codes
    answers: list[Hashable | None] | None  # vote classes; None = the source has no answers
    correct: FloatArray  # credit; NaN = no verdict
    thinking: IntArray
    output: IntArray
    scores: dict[str, FloatArray] = field(default_factory=dict)  # NaN = unscored


@dataclass(frozen=True)
class Plan:
    """The cells a run's stored config asked for: problems x budgets x samples."""

    n_problems: int
    budgets: tuple[Budget, ...]
    samples: int
    inferred: bool = False  # no stored plan: the rectangle the stored samples span

    @property
    def cells(self) -> int:
        return self.n_problems * len(self.budgets) * self.samples


@dataclass(frozen=True)
class Layout:
    budgets: list[Budget]
    n_min: list[int]  # per budget: fewest graded samples any problem has there (0: none)
    n_max: list[int]
    scorers: list[str]
    negative_scorers: frozenset[str]
    plan: Plan
    n_problems: int
    n_samples: int = 0


def _missing(value: object) -> bool:
    """None, NaN or pd.NA: what pandas and SQL use for "no value"."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _status_codes(values: Sequence[Any]) -> IntArray:
    try:
        return np.fromiter((STATUSES[v] for v in values), dtype=np.int64, count=len(values))
    except KeyError as exc:
        raise AnalysisInputError(f"unknown sample status {exc.args[0]!r}") from None


def _plan_from(meta: Mapping[str, Any], n_problems: int, budgets: list[Budget],
               spanned: int) -> Plan:
    sweep = dict(meta.get("config", {}) or {}).get("sweep") or {}
    if sweep.get("budgets") and sweep.get("samples"):
        return Plan(int(meta.get("n_problems") or n_problems),
                    tuple(parse_budget(b) for b in sweep["budgets"]), int(sweep["samples"]))
    return Plan(n_problems, tuple(budgets), spanned, inferred=True)


# ---------------------------------------------------------------- the run store


def _db(store: RunStore) -> sqlite3.Connection:
    """The store's connection (RunStore has no public cursor; reads only, never writes)."""
    return store._db  # noqa: SLF001


def _sql_cells(db: sqlite3.Connection
               ) -> tuple[dict[str, list[int]], dict[str, list[str]], int, int]:
    """Graded samples per (problem, budget), each problem's budget labels, the sample
    count and the most drawn (not failed) samples of any cell: one scan in key order."""
    per_budget: dict[str, list[int]] = {}
    cells: dict[str, list[str]] = {}
    total = 0
    rows = db.execute("SELECT problem_id, budget, SUM(status NOT IN ('failed', 'stopped')), "
                      "SUM(status != 'failed'), COUNT(*) FROM samples GROUP BY problem_id, budget")
    spanned = 0
    for pid, label, graded, drawn, count in rows:
        cells.setdefault(pid, []).append(label)
        per_budget.setdefault(label, []).append(int(graded))
        spanned = max(spanned, int(drawn))
        total += int(count)
    return per_budget, cells, total, spanned


def store_layout(store: RunStore, active: Mapping[str, str]
                 ) -> tuple[Layout, dict[str, list[str]]]:
    """The layout of a stored run, and each problem's budget labels as stored."""
    db = _db(store)
    per_budget, cells, n_samples, spanned = _sql_cells(db)
    n_problems = len(cells)
    labels = sorted(per_budget, key=lambda lab: budget_sort_key(parse_budget(lab)))
    budgets = [parse_budget(lab) for lab in labels]
    n_min = [min((c for c in per_budget[lab] if c > 0), default=0) for lab in labels]
    n_max = [max(per_budget[lab], default=0) for lab in labels]
    negative, scored = set(), []
    for scorer, version in active.items():
        count, low = db.execute("SELECT COUNT(*), MIN(score) FROM scores WHERE scorer = ? "
                                "AND version = ?", (scorer, version)).fetchone()
        if count:
            scored.append(scorer)
        if low is not None and low < 0:
            negative.add(scorer)
    plan = _plan_from(store.meta(), n_problems, budgets, spanned)
    layout = Layout(budgets, n_min, n_max, sorted(scored), frozenset(negative), plan, n_problems,
                    n_samples)
    return layout, cells


def store_subjects(store: RunStore) -> list[str | None]:
    """The stored problems' subjects (to check a subject choice before a long pass)."""
    return [s for (s,) in _db(store).execute("SELECT DISTINCT subject FROM problems")]


def store_positions(store: RunStore) -> dict[str, int]:
    """Each stored problem's position: the run's own problem order."""
    return {pid: int(pos) for pid, pos in
            _db(store).execute("SELECT problem_id, position FROM problems")}


def store_problems(
    store: RunStore, layout: Layout, cells: Mapping[str, list[str]], active: Mapping[str, str],
) -> Iterator[ProblemSamples]:
    """Every problem's samples straight from SQL: one primary-key range read per (problem,
    budget), statuses decoded in SQL, so a row costs a few small Python objects."""
    from ttc.grading import cluster_answers

    db = _db(store)
    info = {pid: (subject, kind) for pid, subject, kind in
            db.execute("SELECT problem_id, subject, kind FROM problems")}
    code = {str(b): i for i, b in enumerate(layout.budgets)}
    scorers = list(layout.scorers)
    joins, params = [], []
    for i, name in enumerate(scorers):
        joins.append(f"LEFT JOIN scores sc{i} ON sc{i}.problem_id = s.problem_id AND "
                     f"sc{i}.budget = s.budget AND sc{i}.sample_index = s.sample_index AND "
                     f"sc{i}.scorer = ? AND sc{i}.version = ?")
        params += [name, active[name]]
    status = "CASE s.status " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in STATUSES.items())
    score_cols = "".join(f", sc{i}.score" for i in range(len(scorers)))
    query = (f"SELECT s.sample_index, {status} ELSE -1 END, s.answer, s.correct, "
             f"s.thinking_tokens, s.output_tokens{score_cols} FROM samples s {' '.join(joins)} "
             "WHERE s.problem_id = ? AND s.budget = ? ORDER BY s.sample_index")
    for pid, labels in cells.items():
        parts = sorted((code[str(parse_budget(label))],
                        list(zip(*db.execute(query, (*params, pid, label)).fetchall(),
                                 strict=True))) for label in labels)
        subject, kind = info.get(pid, (None, "math"))
        raw = [a for _, cols in parts for a in cols[2]]
        distinct = [a for a in dict.fromkeys(raw) if isinstance(a, str)]
        ids: dict[Any, Hashable | None] = dict(zip(
            distinct, cluster_answers(distinct, "mcq" if kind == "mcq" else "math"), strict=True))

        def column(i: int, dtype: Any, parts: list[Any] = parts) -> Any:
            return np.concatenate([np.asarray(cols[i], dtype=dtype) for _, cols in parts])

        statuses = column(1, np.int64)
        if (statuses < 0).any():
            bad = db.execute("SELECT status FROM samples WHERE problem_id = ? AND status NOT IN "
                             f"({', '.join('?' * len(STATUSES))}) LIMIT 1",
                             (pid, *STATUSES)).fetchone()[0]
            raise AnalysisInputError(f"unknown sample status {bad!r}")
        yield ProblemSamples(
            problem_id=str(pid), subject=subject if isinstance(subject, str) else None,
            budget=np.concatenate([np.full(len(cols[0]), j, dtype=np.int64)
                                   for j, cols in parts]),
            sample_index=column(0, np.int64), status=statuses,
            answers=[ids.get(a) for a in raw],
            correct=column(3, np.float64), thinking=column(4, np.int64),
            output=column(5, np.int64),
            scores={name: column(6 + i, np.float64) for i, name in enumerate(scorers)},
        )


# ---------------------------------------------------------------- frames

SAMPLE_COLUMNS = ("problem_id", "budget", "sample_index", "status", "correct")
SCORE_COLUMNS = ("problem_id", "budget", "sample_index", "scorer", "score")


def _frame_scores(frame: pd.DataFrame, scores: pd.DataFrame | None) -> list[str]:
    """Attach one ``_score:<scorer>`` column per scorer (NaN = unscored)."""
    if scores is None or scores.empty:
        return []
    absent = [c for c in SCORE_COLUMNS if c not in scores.columns]
    if absent:
        raise ValueError(f"scores lacks columns {absent}; needs {list(SCORE_COLUMNS)}")
    names = [str(s) for s in dict.fromkeys(scores["scorer"])]
    key = ["problem_id", "_budget", "sample_index"]
    scores = scores.assign(_budget=scores["budget"].map(lambda b: str(parse_budget(b))))
    for name in names:
        part = scores.loc[scores["scorer"] == name, [*key, "score"]]
        if part.duplicated(key).any():
            raise ValueError(f"scorer {name!r} has several scores for one sample")
        merged = frame[key].merge(part, on=key, how="left")
        frame[f"_score:{name}"] = merged["score"].astype(float).to_numpy()
    return names


def frame_layout(
    samples: pd.DataFrame, scores: pd.DataFrame | None
) -> tuple[Layout, pd.DataFrame]:
    """The layout of a samples frame, and the prepared frame ``frame_problems`` reads."""
    absent = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if absent:
        raise ValueError(f"samples lacks columns {absent}; needs {list(SAMPLE_COLUMNS)}")
    frame = pd.DataFrame({c: samples[c].to_numpy(dtype=object) for c in samples.columns
                          if c in (*SAMPLE_COLUMNS, "subject", "answer_class", "answer", "kind",
                                   "thinking_tokens", "output_tokens")})
    frame["_budget"] = [str(parse_budget(b)) for b in frame["budget"]]
    frame["_status"] = _status_codes(list(frame["status"]))
    if frame.duplicated(["problem_id", "_budget", "sample_index"]).any():
        raise ValueError("samples holds duplicate (problem_id, budget, sample_index) rows")
    names = _frame_scores(frame, scores)
    labels = sorted(dict.fromkeys(frame["_budget"]),
                    key=lambda lab: budget_sort_key(parse_budget(lab)))
    graded = frame[~frame["_status"].isin((FAILED, STOPPED))]
    counts = graded.groupby(["_budget", "problem_id"], sort=False).size()
    n_min = [int(counts[lab].min()) if lab in counts.index.get_level_values(0) else 0
             for lab in labels]
    n_max = [int(counts[lab].max()) if lab in counts.index.get_level_values(0) else 0
             for lab in labels]
    drawn = frame[frame["_status"] != FAILED].groupby(["_budget", "problem_id"]).size()
    spanned = int(drawn.max()) if len(drawn) else 0  # stopped traces were drawn too
    negative = frozenset(n for n in names if (frame[f"_score:{n}"] < 0).any())
    budgets = [parse_budget(lab) for lab in labels]
    n_problems = int(frame["problem_id"].nunique())
    plan = Plan(n_problems, tuple(budgets), spanned, inferred=True)
    frame["_b"] = frame["_budget"].map({lab: i for i, lab in enumerate(labels)})
    layout = Layout(budgets, n_min, n_max, names, negative, plan, n_problems, len(frame))
    return layout, frame


def frame_problems(frame: pd.DataFrame, layout: Layout) -> Iterator[ProblemSamples]:
    """Every problem of a prepared frame, in first-seen order."""
    from ttc.grading import cluster_answers

    has_classes = "answer_class" in frame.columns
    for pid, g in frame.groupby("problem_id", sort=False):
        g = g.sort_values(["_b", "sample_index"], kind="stable")
        answers: list[Hashable | None] | None = None
        if has_classes:
            answers = [None if _missing(a) else a for a in g["answer_class"]]
        elif "answer" in g.columns:
            raw = [a if isinstance(a, str) else None for a in g["answer"]]
            kind = str(g["kind"].iloc[0]) if "kind" in g.columns else "math"
            ids = cluster_answers(raw, "mcq" if kind == "mcq" else "math")
            answers = list(ids)
        subject = g["subject"].iloc[0] if "subject" in g.columns else None
        correct = [math.nan if _missing(c) else float(c) for c in g["correct"]]
        yield ProblemSamples(
            problem_id=str(pid), subject=None if _missing(subject) else str(subject),
            budget=g["_b"].to_numpy(dtype=np.int64),
            sample_index=g["sample_index"].to_numpy(dtype=np.int64),
            status=g["_status"].to_numpy(dtype=np.int64), answers=answers,
            correct=np.asarray(correct, dtype=np.float64),
            thinking=_ints(g, "thinking_tokens"), output=_ints(g, "output_tokens"),
            scores={n: g[f"_score:{n}"].to_numpy(dtype=np.float64) for n in layout.scorers},
        )


def _ints(g: pd.DataFrame, column: str) -> IntArray:
    if column not in g.columns:
        return np.zeros(len(g), dtype=np.int64)
    values = [0 if _missing(v) else int(v) for v in g[column]]
    return np.asarray(values, dtype=np.int64)

