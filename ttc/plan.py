"""What a sweep still has to request: counted arithmetically, generated lazily.

A sweep is ``problems x budgets x samples`` cells, some already stored. ``make_plan``
counts the missing ones and projects their tokens and cost from per-(problem, budget)
counts alone, so ``--dry-run`` of a billion-sample config answers in milliseconds;
``PlannedJobs`` then yields the missing cells one at a time as workers ask for them,
so a real sweep holds no list of jobs either.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from ttc.config import Budget, Config, config_error
from ttc.config_rules import MAX_CELLS
from ttc.problems import Problem
from ttc.providers.base import Provider, TraceWatch
from ttc.store import SampleKey, budget_label

__all__ = ["Job", "PlannedJobs", "SweepPlan", "job_for", "make_plan"]


@dataclass(frozen=True, slots=True)
class Job:
    problem: Problem
    budget: Budget
    sample_index: int
    order: tuple[int, ...] | None
    #: makes a fresh trace watch per attempt (an online trace rule); None: unwatched
    watch: Callable[[], TraceWatch] | None = field(default=None, compare=False)


def job_for(
    config: Config, problem: Problem, budget: Budget, index: int, base: tuple[int, ...] | None
) -> Job:
    """The job of one cell; ``base`` is the problem's stored choice order (per-sample
    shuffling derives each sample's own order from the seed)."""
    from ttc.prompts import choice_order

    mode = config.dataset.shuffle_choices
    if mode == "sample" and problem.kind == "mcq":
        base = choice_order(problem, mode=mode, seed=config.sweep.seed, sample_index=index)
    return Job(problem, budget, index, base)


class PlannedJobs:
    """The missing cells in budget, problem, sample order; ``len`` without generating.

    ``done`` holds every cell not to request: stored ones, and ones waiting on a
    provider batch (``pending``), which no sweep may send again.
    """

    def __init__(
        self,
        config: Config,
        problems: Sequence[Problem],
        orders: dict[str, tuple[int, ...] | None],
        done: set[SampleKey],
        missing: int,
        stored: Counter[tuple[str, str]] | None = None,
    ) -> None:
        self._config = config
        self._problems = problems
        self._orders = orders
        self._done = done
        self._missing = missing
        self._stored = stored or Counter()

    def groups(self) -> Iterator[tuple[Job, int]]:
        """``(first sample's job, cells missing)`` per (budget, problem), in job order,
        without generating every job (for projections)."""
        samples = self._config.sweep.samples
        for budget in self._config.sweep.budgets:
            label = budget_label(budget)
            for problem in self._problems:
                n = samples - self._stored[(problem.id, label)]
                if n > 0:
                    yield job_for(self._config, problem, budget, 0, self._orders[problem.id]), n

    def __len__(self) -> int:
        return self._missing

    def __bool__(self) -> bool:
        return self._missing > 0

    def __iter__(self) -> Iterator[Job]:
        cfg = self._config
        mode, samples = cfg.dataset.shuffle_choices, cfg.sweep.samples
        done = self._done
        for budget in cfg.sweep.budgets:
            label = budget_label(budget)
            for problem in self._problems:
                base = self._orders[problem.id]
                per_sample = mode == "sample" and problem.kind == "mcq"
                for i in range(samples):
                    if done and (problem.id, label, i) in done:
                        continue
                    yield job_for(cfg, problem, budget, i, base) if per_sample else Job(
                        problem, budget, i, base)


@dataclass(slots=True)
class SweepPlan:
    """What a sweep will request: the missing samples and their projected size."""

    total: int
    done: int
    jobs: PlannedJobs
    projected_input_tokens: int = 0
    projected_output_tokens: int = 0
    projected_cost: float = 0.0
    per_budget: dict[str, int] = field(default_factory=dict)
    #: stored samples graded under another rule than this sweep's (regraded before it runs)
    regrade: int = 0
    #: cells of this sweep waiting on a provider batch (neither done nor to request)
    pending: int = 0


def make_plan(
    config: Config,
    problems: Sequence[Problem],
    orders: dict[str, tuple[int, ...] | None],
    done: set[SampleKey],
    provider: Provider,
    pending: set[SampleKey] | None = None,
) -> SweepPlan:
    """Count and project the missing cells in O(problems x budgets), never per sample.

    ``pending`` cells wait on a provider batch: counted apart, never planned again.
    """
    samples = config.sweep.samples
    total = len(problems) * len(config.sweep.budgets) * samples
    if total > MAX_CELLS:  # every count below stays an exact machine integer (len() too)
        raise config_error(config, "sweep.samples",
                           f"{len(problems):,} problems x {len(config.sweep.budgets)} budgets x "
                           f"{samples:,} samples is {total:,} cells, above the {MAX_CELLS:,} "
                           f"one run can hold")
    ids = {p.id for p in problems}
    labels = {budget_label(b) for b in config.sweep.budgets}

    def ours(keys: set[SampleKey]) -> Counter[tuple[str, str]]:
        return Counter((pid, label) for pid, label, i in keys
                       if i < samples and pid in ids and label in labels)

    waiting = ours(pending - done) if pending else Counter()
    stored = ours(done) + waiting
    if pending:
        done = done | pending
    per_budget: dict[str, int] = {}
    in_tokens = out_tokens = missing = 0
    for budget in config.sweep.budgets:
        label = budget_label(budget)
        count = 0
        for problem in problems:
            n = samples - stored[(problem.id, label)]
            count += n
            in_tokens += n * (len(problem.question) // 4 + 60)
        if count:
            per_budget[label] = count
        out_tokens += count * provider.max_output_tokens(budget)
        missing += count
    m = config.model
    cost = (in_tokens * m.price_input_per_mtok + out_tokens * m.price_output_per_mtok) / 1e6
    jobs = PlannedJobs(config, problems, orders, done if stored else set(), missing, stored)
    n_pending = sum(waiting.values())
    return SweepPlan(total, total - missing - n_pending, jobs, in_tokens, out_tokens, cost,
                     per_budget, pending=n_pending)
