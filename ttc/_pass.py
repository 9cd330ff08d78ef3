"""The analysis pass: every problem once, every per-problem number computed from it.

For each problem (``ttc._sources``) and budget the pass computes what every later
table, curve, fit and figure needs: sample counts (graded, failed, censored, within
the cap, binding), mean credit and tokens, and the exact value of every metric at
every k (calling ``ttc.estimators`` per problem and budget). Only these per-problem
results are kept (problems x budgets arrays, problems x (metric, k) matrices, and the
realized thinking tokens for the budget figure), so memory grows with problems, not
with samples. Private: ``ttc.analysis`` is the surface.
"""

from __future__ import annotations

import warnings
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from ttc._sources import (
    CENSORED,
    FAILED,
    STOPPED,
    AnalysisInputError,
    FloatArray,
    IntArray,
    Layout,
    Plan,
    ProblemSamples,
    frame_layout,
    frame_problems,
    store_layout,
    store_positions,
    store_problems,
)
from ttc.config import Budget
from ttc.estimators import best_of_k, majority_at_k, pass_at_k, weighted_majority_at_k

if TYPE_CHECKING:
    import pandas as pd

    from ttc.run import Run

__all__: list[str] = []

#: "best_of" and "weighted_majority" expand to one metric per scorer ("best_of:<scorer>");
#: "mean" (k = 1: the single-sample accuracy) is always included.
DEFAULT_METRICS = ("majority", "pass", "best_of", "weighted_majority")
#: a sample "binds" when it was cut off or used at least this share of its cap
BINDS_AT = 0.98


@dataclass
class PassResult:
    """Per-problem results of one pass; rows are problems, in the run's own order."""

    budgets: list[Budget]
    problem_ids: list[str]
    subjects: list[str | None]
    n: IntArray  # problems x budgets: graded samples (neither failed nor stopped)
    n_failed: IntArray
    n_censored: IntArray
    n_binds: IntArray
    n_within: IntArray  # realized thinking <= cap (token budgets only)
    acc: FloatArray  # mean credit; NaN where a problem has no graded sample
    tokens: FloatArray  # mean realized thinking tokens
    generated: FloatArray  # mean output tokens (which include thinking)
    columns: list[list[tuple[str, int]]]  # per budget: (metric, k) of each value column
    values: list[FloatArray]  # per budget: problems x columns, NaN = no value
    stderr: list[FloatArray]
    thinking: list[IntArray]  # per budget: realized thinking tokens of graded samples
    plan: Plan
    plan_done: int = 0
    plan_failed: int = 0
    notes: list[str] = field(default_factory=list)
    #: problems x budgets: traces an online rule stopped (drawn, paid, no answer; they
    #: are in no accuracy, like failed samples, but they are done: never drawn again)
    n_stopped: IntArray | None = None


def expand_metrics(metrics: Sequence[str], layout: Layout) -> list[str]:
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
            if scorer and scorer not in layout.scorers:
                raise ValueError(f"metric {name!r}: no scores for scorer {scorer!r}")
            chosen = [scorer] if scorer else list(layout.scorers)
            negative = layout.negative_scorers & set(chosen)
            if base == "weighted_majority" and negative:
                if scorer:
                    raise ValueError(f"metric {name!r}: scorer {scorer!r} has negative scores, "
                                     f"which cannot be vote weights (map them to [0, 1] first)")
                warnings.warn(f"weighted_majority skipped for scorers with negative scores "
                              f"{sorted(negative)} (vote weights must be nonnegative)",
                              stacklevel=4)
                chosen = [c for c in chosen if c not in negative]
            out += [f"{base}:{c}" for c in chosen]
        else:
            raise ValueError(f"unknown metric {name!r}")
    return list(dict.fromkeys(out))


def choose_ks(layout: Layout, ks: Sequence[int] | str | None) -> list[IntArray]:
    """Per budget: explicit ``ks`` (checked), ``"all"`` (1..n) or ``"log2"`` (default).

    ``n`` is the fewest graded samples any problem has at that budget, so every point
    of a curve averages the same problems. ``"log2"``: powers of two up to n, and n
    (a log2 axis needs no more: 10,000 samples give 15 points, not 10,000).
    """
    out = []
    for budget, n in zip(layout.budgets, layout.n_min, strict=True):
        if ks is None or ks == "log2":
            kk = [2**i for i in range(n.bit_length()) if 2**i <= n]
            kk = kk if not kk or kk[-1] == n else [*kk, n]
        elif ks == "all":
            kk = list(range(1, n + 1))
        else:
            kk = sorted({int(k) for k in ks})
            if kk and n and (kk[0] < 1 or kk[-1] > n):
                raise ValueError(f"ks must lie in 1..{n} at budget {budget!r} "
                                 f"(the fewest samples any problem has there)")
            kk = kk if n else []
        out.append(np.asarray(kk, dtype=np.int64))
    return out


def _rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator for one (budget, problem, scorer), independent of problem order."""
    return np.random.default_rng([seed, zlib.crc32("|".join(map(str, parts)).encode())])


class _Budget:
    """The column layout of one budget's value matrix."""

    def __init__(self, names: list[str], ks: IntArray) -> None:
        self.ks = ks
        self.columns: list[tuple[str, int]] = []
        self.slices: dict[str, slice] = {}
        for name in names:
            kk = [1] if name == "mean" else [int(k) for k in ks]
            start = len(self.columns)
            self.columns += [(name, k) for k in kk]
            self.slices[name] = slice(start, len(self.columns))


def run_pass(
    layout: Layout,
    problems: Iterable[ProblemSamples],
    *,
    metrics: Sequence[str] = DEFAULT_METRICS,
    ks: Sequence[int] | str | None = None,
    n_mc: int = 200,
    seed: int = 0,
    order: Callable[[list[str]], list[int]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> PassResult:
    """One pass over ``problems``; ``order`` maps problem ids to the output row order."""
    names = expand_metrics(metrics, layout)
    shapes = [_Budget(names, kk) for kk in choose_ks(layout, ks)]
    n_b = len(layout.budgets)
    planned = {str(b) for b in layout.plan.budgets}
    in_plan = [str(b) in planned for b in layout.budgets]
    caps = [b if isinstance(b, int) else None for b in layout.budgets]
    ids: list[str] = []
    subjects: list[str | None] = []
    counts: list[IntArray] = []
    means: list[FloatArray] = []
    vals: list[list[FloatArray]] = [[] for _ in range(n_b)]
    errs: list[list[FloatArray]] = [[] for _ in range(n_b)]
    thinking: list[list[IntArray]] = [[] for _ in range(n_b)]
    skipped: dict[tuple[str, int], list[str]] = {}
    plan_done = plan_failed = 0
    for done, ps in enumerate(problems, start=1):
        count = np.zeros((6, n_b), dtype=np.int64)
        mean = np.full((3, n_b), np.nan)
        rows = [np.full(len(s.columns), np.nan) for s in shapes]
        errors = [np.zeros(len(s.columns)) for s in shapes]
        for j in np.unique(ps.budget).tolist():
            sel = np.nonzero(ps.budget == j)[0]
            failed = ps.status[sel] == FAILED
            stopped = ps.status[sel] == STOPPED
            g = sel[~failed & ~stopped]
            count[1, j] = int(failed.sum())
            count[5, j] = int(stopped.sum())
            if in_plan[j]:
                inside = ps.sample_index[sel] < layout.plan.samples
                plan_done += int((inside & ~failed).sum())
                plan_failed += int((inside & failed).sum())
            if g.size == 0:
                continue
            credit, answers = _credit(ps, g, layout.budgets[j])
            think = ps.thinking[g]
            censored = ps.status[g] == CENSORED
            count[0, j], count[2, j] = g.size, int(censored.sum())
            cap = caps[j]
            if cap is not None:
                count[3, j] = int((censored | (think >= BINDS_AT * cap)).sum())
                count[4, j] = int((think <= cap).sum())
            mean[:, j] = (credit.mean(), think.mean(), np.maximum(ps.output[g], think).mean())
            thinking[j].append(think)
            _values(ps, g, credit, answers, shapes[j], rows[j], errors[j], names,
                    (seed, layout.budgets[j]), n_mc, _skipper(skipped, j))
        ids.append(ps.problem_id)
        subjects.append(ps.subject)
        counts.append(count)
        means.append(mean)
        for j in range(n_b):
            vals[j].append(rows[j])
            errs[j].append(errors[j])
        if progress is not None:
            progress(done)
    rank = order(ids) if order is not None else list(range(len(ids)))
    perm = np.argsort(np.asarray(rank, dtype=np.int64), kind="stable")
    cnt = np.stack(counts)[perm] if counts else np.zeros((0, 6, n_b), dtype=np.int64)
    avg = np.stack(means)[perm] if means else np.zeros((0, 3, n_b))
    result = PassResult(
        budgets=list(layout.budgets), problem_ids=[ids[i] for i in perm],
        subjects=[subjects[i] for i in perm],
        n=cnt[:, 0], n_failed=cnt[:, 1], n_censored=cnt[:, 2], n_binds=cnt[:, 3],
        n_within=cnt[:, 4], acc=avg[:, 0], tokens=avg[:, 1], generated=avg[:, 2],
        columns=[s.columns for s in shapes],
        values=[np.stack(v)[perm] if v else np.zeros((0, len(s.columns)))
                for v, s in zip(vals, shapes, strict=True)],
        stderr=[np.stack(e)[perm] if e else np.zeros((0, len(s.columns)))
                for e, s in zip(errs, shapes, strict=True)],
        thinking=[_concat(t) for t in thinking], plan=layout.plan,
        plan_done=plan_done, plan_failed=plan_failed, n_stopped=cnt[:, 5],
    )
    for (metric, j), reasons in skipped.items():
        reason = max(set(reasons), key=reasons.count)
        result.notes.append(f"{metric} at budget {layout.budgets[j]}: no value for "
                            f"{len(reasons)} problem(s) ({reason})")
    return result


def _skipper(skipped: dict[tuple[str, int], list[str]], j: int
             ) -> Callable[[tuple[str, str]], None]:
    """Record, per (metric, budget), why a problem has no value."""
    def skip(key: tuple[str, str]) -> None:
        skipped.setdefault((key[0], j), []).append(key[1])

    return skip


def _concat(parts: list[IntArray]) -> IntArray:
    if not parts:
        return np.zeros(0, dtype=np.int64)
    out = np.concatenate(parts)
    return out.astype(np.int32) if out.size and out.min() >= 0 and out.max() < 2**31 else out


def _credit(ps: ProblemSamples, g: IntArray, budget: Budget) -> tuple[FloatArray,
                                                                       list[object] | None]:
    """Credit of the graded samples; a missing verdict counts 0 only without an answer."""
    credit = ps.correct[g]
    answers = None if ps.answers is None else [ps.answers[t] for t in g]
    unknown = np.isnan(credit)
    outside = ~unknown & ((credit < 0.0) | (credit > 1.0))
    if outside.any():
        raise AnalysisInputError(
            f"credit must lie in [0, 1]: {float(credit[np.argmax(outside)])!r} for problem "
            f"{ps.problem_id!r} at budget {budget!r}")
    if unknown.any() and answers is not None:
        answered = unknown & np.fromiter((a is not None for a in answers), bool, len(answers))
        if answered.any():
            t = int(g[np.argmax(answered)])
            raise AnalysisInputError(
                f"correct is missing for an answered, non-failed sample (problem "
                f"{ps.problem_id!r}, budget {budget!r}, sample {int(ps.sample_index[t])}): "
                f"run `ttc grade` on the run first")
    return np.where(unknown, 0.0, credit), answers


def _values(
    ps: ProblemSamples, g: IntArray, credit: FloatArray, answers: list[object] | None,
    shape: _Budget, row: FloatArray, err: FloatArray, names: list[str],
    tag: tuple[int, Budget], n_mc: int, skip: Callable[[tuple[str, str]], None],
) -> None:
    """Exact per-problem value of every metric at every k of one budget, into ``row``."""
    kk = shape.ks
    binary = bool(np.isin(credit, (0.0, 1.0)).all())
    for name in names:
        base, _, scorer = name.partition(":")
        where = shape.slices[name]
        if base == "mean":
            row[where] = credit.mean()
            continue
        if kk.size == 0:
            continue
        if base == "pass":
            row[where] = (pass_at_k(credit.size, int(credit.sum()), kk) if binary
                          else best_of_k(credit, credit, kk))
            continue
        if base in ("majority", "weighted_majority") and answers is None:
            skip((name, "the samples carry no answers to vote on"))
            continue
        scores = ps.scores[scorer][g] if scorer else None
        if scores is not None and np.isnan(scores).any():
            skip((name, f"scorer {scorer!r} did not score every sample; run `ttc score`"))
            continue
        try:
            if base == "majority":
                row[where] = majority_at_k(answers, credit, kk)  # type: ignore[arg-type]
            elif base == "best_of":
                row[where] = best_of_k(scores, credit, kk)  # type: ignore[arg-type]
            else:
                est = weighted_majority_at_k(
                    answers, scores, credit, kk, n_mc=n_mc,  # type: ignore[arg-type]
                    rng=_rng_for(tag[0], tag[1], ps.problem_id, scorer))
                row[where], err[where] = est.value, est.stderr
        except ValueError as exc:  # an estimator that refuses this n says why
            skip((name, str(exc)))


def pass_over(
    source: Run | pd.DataFrame, scores: pd.DataFrame | None = None, *,
    metrics: Sequence[str] = DEFAULT_METRICS, ks: Sequence[int] | str | None = None,
    n_mc: int = 200, seed: int = 0, say: Callable[[str], None] = lambda _message: None,
) -> PassResult:
    """The per-problem pass over a run's store (problem by problem) or a samples frame."""
    import pandas as pd

    if isinstance(source, pd.DataFrame):
        layout, frame = frame_layout(source, scores)
        return run_pass(layout, frame_problems(frame, layout), metrics=metrics, ks=ks,
                        n_mc=n_mc, seed=seed)
    store = source.store
    active = source.active_scorers()
    layout, cells = store_layout(store, active)
    positions = store_positions(store)
    step = max(1, layout.n_problems // 10)
    say(f"{layout.n_samples:,} samples, {layout.n_problems:,} problems x "
        f"{len(layout.budgets)} budgets: estimators per problem")

    def tick(done: int) -> None:  # a pass of a few seconds needs no ticks
        if layout.n_samples >= 200_000 and done % step == 0 and done < layout.n_problems:
            say(f"  {done:,} of {layout.n_problems:,} problems")

    return run_pass(layout, store_problems(store, layout, cells, active), metrics=metrics,
                    ks=ks, n_mc=n_mc, seed=seed, progress=tick,
                    order=lambda ids: [positions.get(i, len(positions)) for i in ids])
