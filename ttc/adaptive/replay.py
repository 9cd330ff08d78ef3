"""Replay stop rules on stored samples: per-problem expectations, then problem-bootstrap points.

For each problem the replay gives the expected final-answer credit, samples and tokens
of a rule over uniformly random sample orders (``replay_pool``: exact where the DP is
small, else random orders with a standard error). A ``Point`` averages those over
problems, with a percentile interval from resampling *problems* (``ttc.curves``'s one
bootstrap engine; every point of a replay uses the same resamples, so points compare
pairwise). ``full_run`` is the reference: plurality vote over every stored sample
(majority@n, exact) and the whole majority@k curve for the trade-off figure.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ttc.adaptive.exact import replay_exact
from ttc.adaptive.montecarlo import replay_monte_carlo
from ttc.adaptive.pool import FloatArray, Outcome, Pool
from ttc.adaptive.rules import StopRule
from ttc.bootstrap import ProblemBootstrap
from ttc.errors import UserInputError
from ttc.estimators import majority_at_k

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FullRun",
    "Point",
    "Problems",
    "full_run",
    "point_from_outcomes",
    "problems_from_frame",
    "replay_pool",
    "replay_rule",
]


@dataclass(frozen=True, slots=True)
class Problems:
    """The pools of one budget of a run, in problem order, with their source rows."""

    ids: list[str]
    pools: list[Pool]
    #: row labels of each problem's samples in the frame they came from
    rows: list[list[Any]]
    budget: Any = None


def problems_from_frame(frame: pd.DataFrame, *, tokens: str = "output_tokens") -> Problems:
    """Pools from a samples frame (``problem_id``, ``answer_class``, ``correct``, tokens).

    Failed rows are refused: a replay needs every sample of the plan drawn.
    """
    need = {"problem_id", "answer_class", "correct", tokens}
    missing = need - set(frame.columns)
    if missing:
        raise ValueError(f"samples frame lacks columns {sorted(missing)}")
    if "status" in frame.columns:
        failed = int((frame["status"] == "failed").sum())
        if failed:
            raise UserInputError(
                f"{failed} samples failed and were never drawn; finish the run (run the same "
                f"ttc sweep again) before replaying a stop rule on it"
            )
    ids: list[str] = []
    pools: list[Pool] = []
    rows: list[list[Any]] = []
    for pid, group in frame.groupby("problem_id", sort=False):
        answers = [None if _missing(a) else a for a in group["answer_class"]]
        raw = list(group["correct"])
        if any(a is not None and _missing(c) for a, c in zip(answers, raw, strict=True)):
            raise UserInputError(f"problem {pid!r}: an answered sample has no verdict; "
                                 f"regrade the run (ttc grade RUN) first")
        correct = [0.0 if _missing(c) else float(c) for c in raw]
        ids.append(str(pid))
        pools.append(Pool.from_answers(answers, correct, group[tokens].to_numpy(float)))
        rows.append(list(group.index))
    if not pools:
        raise UserInputError("no samples to replay")
    return Problems(ids, pools, rows)


def problem_interval(values: FloatArray, *, n_boot: int, seed: int,
                     level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a mean over problems, resampling problems: the project's one
    bootstrap engine, seeded alike for every point so that points compare pairwise."""
    res = ProblemBootstrap(len(values), n_boot=n_boot, seed=seed, level=level).mean(
        values, bounds=(0.0, 1.0))
    return float(res.low), float(res.high)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _problem_rng(seed: int, index: int, tag: str) -> np.random.Generator:
    return np.random.default_rng([seed, index, zlib.crc32(tag.encode())])


#: candidate transitions (DP states x columns, summed over layers) the exact replay may
#: weigh before random orders take over: a few tens of milliseconds, about what 2,000
#: random orders cost, so no problem costs much more than sampling would
MAX_WORK = 100_000


def replay_pool(pool: Pool, rule: StopRule, *, max_work: int = MAX_WORK, n_orders: int = 2000,
                rng: np.random.Generator) -> Outcome:
    """Exact (DP over count states) within ``max_work`` states, else ``n_orders`` orders."""
    exact = replay_exact(pool, rule, max_work=max_work)
    if exact is not None:
        return exact
    return replay_monte_carlo(pool, rule, n_orders=n_orders, rng=rng)


@dataclass(frozen=True, slots=True)
class Point:
    """One rule setting averaged over problems, with a problem-bootstrap interval."""

    param: dict[str, Any]
    accuracy: float
    ci_low: float
    ci_high: float
    mean_samples: float
    mean_tokens: float
    token_savings: float
    #: share of problems computed exactly (the rest: random orders)
    exact_share: float = 1.0
    #: standard error of ``accuracy`` from the random orders (0 when all exact)
    mc_stderr: float = 0.0
    per_problem: FloatArray = field(default_factory=lambda: np.zeros(0), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"param": self.param, "accuracy": self.accuracy, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "mean_samples": self.mean_samples,
                "mean_tokens": self.mean_tokens, "token_savings": self.token_savings}


def point_from_outcomes(param: dict[str, Any], outcomes: Sequence[Outcome], *, full_tokens: float,
                        n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Point:
    """Average per-problem outcomes; the interval resamples problems (seeded: paired)."""
    acc = np.array([o.accuracy for o in outcomes])
    low, high = problem_interval(acc, n_boot=n_boot, seed=seed, level=level)
    tokens = float(np.mean([o.tokens for o in outcomes]))
    se = np.array([o.stderr for o in outcomes])
    return Point(
        param=dict(param), accuracy=float(acc.mean()), ci_low=low, ci_high=high,
        mean_samples=float(np.mean([o.samples for o in outcomes])), mean_tokens=tokens,
        token_savings=1.0 - tokens / full_tokens if full_tokens > 0 else 0.0,
        exact_share=float(np.mean([o.exact for o in outcomes])),
        mc_stderr=float(np.sqrt((se**2).sum()) / se.size), per_problem=acc,
    )


def replay_rule(problems: Problems, rule: StopRule, param: dict[str, Any], *, full_tokens: float,
                n_boot: int = 1000, seed: int = 0, max_work: int = MAX_WORK,
                n_orders: int = 2000,
                progress: Callable[[int], None] | None = None) -> Point:
    """One rule setting on every problem."""
    tag = repr(sorted(param.items()))
    outcomes = []
    for i, pool in enumerate(problems.pools):
        outcomes.append(replay_pool(pool, rule, max_work=max_work, n_orders=n_orders,
                                    rng=_problem_rng(seed, i, tag)))
        if progress is not None:
            progress(i + 1)
    return point_from_outcomes(param, outcomes, full_tokens=full_tokens, n_boot=n_boot,
                               seed=seed)


@dataclass(frozen=True, slots=True)
class FullRun:
    """The reference: every stored sample drawn, plurality vote (majority@n), and the curve."""

    accuracy: float
    ci_low: float
    ci_high: float
    mean_samples: float
    mean_tokens: float
    n_problems: int
    #: majority@k curve (k up to the smallest pool) with intervals and tokens per problem
    ks: list[int]
    curve: FloatArray
    curve_low: FloatArray
    curve_high: FloatArray
    curve_tokens: FloatArray
    budget: Any = None

    @property
    def metric(self) -> str:
        """``majority@n``; ``majority@all`` when problems hold different numbers of samples."""
        n = self.mean_samples
        return f"majority@{int(n)}" if float(n).is_integer() and self.ks[-1] == n \
            else "majority@all"

    def to_json(self) -> dict[str, Any]:
        budget = self.budget if isinstance(self.budget, (int, str)) or self.budget is None \
            else str(self.budget)
        return {"metric": self.metric, "accuracy": self.accuracy, "ci_low": self.ci_low,
                "ci_high": self.ci_high, "mean_samples": self.mean_samples,
                "mean_tokens": self.mean_tokens, "n_problems": self.n_problems,
                "budget": budget}


def full_run(problems: Problems, *, n_boot: int = 1000, seed: int = 0,
             level: float = 0.95) -> FullRun:
    """Majority@n of the whole run and the majority@k curve, both exact per problem."""
    n_min = min(p.n for p in problems.pools)
    ks = sorted({int(k) for k in np.unique(np.round(np.geomspace(1, n_min, 24)))} | {n_min})
    curves, finals, tokens, per_sample = [], [], [], []
    for pool in problems.pools:
        answers = [None if c < 0 else int(c) for c in pool.classes]
        correct = np.where(pool.classes >= 0, pool.credit[np.maximum(pool.classes, 0)], 0.0)
        curves.append(majority_at_k(answers, correct, ks))
        finals.append(float(majority_at_k(answers, correct, pool.n)))
        tokens.append(float(pool.tokens.sum()))
        per_sample.append(float(pool.tokens.mean()))
    matrix = np.array(curves)
    low, high = [], []
    for j in range(len(ks)):
        lo, hi = problem_interval(matrix[:, j], n_boot=n_boot, seed=seed, level=level)
        low.append(lo)
        high.append(hi)
    acc = np.array(finals)
    a_lo, a_hi = problem_interval(acc, n_boot=n_boot, seed=seed, level=level)
    return FullRun(
        accuracy=float(acc.mean()), ci_low=a_lo, ci_high=a_hi,
        mean_samples=float(np.mean([p.n for p in problems.pools])),
        mean_tokens=float(np.mean(tokens)), n_problems=len(problems.pools), ks=ks,
        curve=matrix.mean(axis=0), curve_low=np.array(low), curve_high=np.array(high),
        curve_tokens=np.array(ks, dtype=float) * float(np.mean(per_sample)),
        budget=problems.budget,
    )
