"""The online half: the sampler draws each (problem, budget) in waves and stops when the rule does.

``Waves`` hands the sweep's workers one job at a time (``next_job``) and is told of
every stored record (``finish``). Each (problem, budget) is a ``Group``:

* sample-level rules (ESC, Adaptive-Consistency) see the answers in **sample-index
  order**: sample i's class is fed once samples 0..i-1 are in, and the rule is asked
  after each. A wave is the samples the rule certainly needs next (``wave_size``: no
  sample is started that the rule would not have drawn), so the decisions are a
  function of the first answers in index order alone: the same online, on resume, and
  in the offline replay of that order. Classes come from the grader's equivalence over
  the answers fed so far (``cluster_answers``, as the replay's ``answer_class``).
* DeepConf: samples ``0..warmup-1`` run to the end; the bar is the ``percentile`` of
  their lowest group confidences (``deepconf_bar``); every later sample streams under a
  ``ConfidenceWatch`` that stops it at the first full window whose mean confidence is
  below the bar. A stopped trace is stored with status ``stopped``.
* ``prefix:SCORER``: every sample streams under a ``PrefixWatch`` that scores the
  thinking so far every ``every`` tokens and stops the trace below ``threshold``.

A failed sample halts its group (the rule cannot decide without it); the next run
retries it and the group goes on. Stored samples are fed before anything is drawn,
so a resumed sweep finishes exactly what the rule had not stopped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ttc.adaptive.deepconf import ConfidenceMonitor, TraceConfidence, deepconf_bar
from ttc.adaptive.logprobs import decode_logprobs, from_openai_content, token_confidence
from ttc.adaptive.online_config import base_rule, online_params
from ttc.adaptive.rules import StopRule
from ttc.adaptive.usage import answer_classes, first_stop
from ttc.adaptive.waves import wave_size
from ttc.config import Budget, Config
from ttc.plan import Job, job_for
from ttc.problems import Problem
from ttc.providers.base import PartialStream, Provider, TraceWatch
from ttc.store import RunStore, SampleKey, SampleRecord, budget_label

__all__ = ["ConfidenceWatch", "PrefixWatch", "Stored", "Waves", "WavesSummary", "make_waves"]

_FAILED = object()  # a failed sample: the group waits for the next run


@dataclass(frozen=True, slots=True)
class Stored:
    """What the scheduler needs of a stored sample."""

    status: str
    answer: str | None
    logprobs: bytes | None = None


class ConfidenceWatch:
    """DeepConf online for one streamed attempt: stop once a window's mean confidence
    falls below the bar (``ConfidenceMonitor`` on each new token's top-k row)."""

    def __init__(self, window: int, bar: float, k: int) -> None:
        self.monitor = ConfidenceMonitor(window, bar)
        self.k = k
        self._seen = 0

    def __call__(self, stream: PartialStream) -> bool:
        items = stream.logprob_items()
        if len(items) <= self._seen:
            return False
        rows = from_openai_content(items[self._seen:], self.k)
        self._seen = len(items)
        return any(self.monitor.add(row) for row in rows)


@dataclass
class Group:
    """One (problem, budget): what is known of its samples and what the rule decided."""

    problem: Problem
    budget: Budget
    order: tuple[int, ...] | None
    n: int
    known: dict[int, Any] = field(default_factory=dict)  # index -> answer | None | _FAILED
    logprobs: dict[int, bytes | None] = field(default_factory=dict)
    released: set[int] = field(default_factory=set)  # handed out, not yet known
    fed: int = 0
    classes: list[Hashable | None] = field(default_factory=list)
    done: bool = False
    halted: bool = False
    bar: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class WavesSummary:
    """What the rule saved so far, for the sweep's result line."""

    groups: int = 0
    stopped_groups: int = 0  # decided by the rule before the pool's end
    skipped: int = 0  # cells never drawn because the rule stopped first
    halted: int = 0  # groups waiting on a failed sample (next run)


class Waves:
    """The wave scheduler of one sweep (see the module docstring)."""

    def __init__(self, config: Config, problems: Sequence[Problem],
                 orders: dict[str, tuple[int, ...] | None], stored: dict[SampleKey, Stored],
                 pending: Iterable[SampleKey] = (), *, top_logprobs: int = 0,
                 watch_factory: Callable[[Group], Callable[[], TraceWatch]] | None = None,
                 ) -> None:
        assert config.adaptive is not None
        self.config = config
        self.kind = base_rule(config.adaptive.rule)
        self.params = online_params(config.adaptive, config.sweep.samples)
        self.rule: StopRule | None = None
        if self.kind in ("esc", "adaptive_consistency"):
            from ttc.adaptive.command import make_rule

            p = self.params
            self.rule = make_rule(self.kind, {**p, "min": p["min_samples"],
                                              "max": p["max_samples"]})
        self.k = top_logprobs
        self._watch_factory = watch_factory
        #: the prefix rule's scorer (the sweep closes it)
        self.scorer: Any = None
        n = config.sweep.samples
        waiting = set(pending)
        self.groups: list[Group] = []
        for budget in config.sweep.budgets:
            label = budget_label(budget)
            for problem in problems:
                g = Group(problem, budget, orders[problem.id], n)
                for i in range(n):
                    key = (problem.id, label, i)
                    s = stored.get(key)
                    if key in waiting:
                        g.known[i] = _FAILED  # with a provider batch: not ours to draw
                    elif s is not None and s.status != "failed":
                        g.known[i] = None if s.status == "stopped" else s.answer
                        g.logprobs[i] = s.logprobs
                self.groups.append(g)
        self._by_key = {(g.problem.id, budget_label(g.budget)): g for g in self.groups}
        self._ready: deque[tuple[Group, int]] = deque()
        self._in_flight = 0
        self._wake = asyncio.Condition()
        self.summary = WavesSummary(groups=len(self.groups))

    # ------------------------------------------------------------ workers' side
    async def start(self) -> int:
        """Feed what is stored and release every group's first wave; the jobs ready."""
        for g in self.groups:
            await self._advance(g, front=False)
        return len(self._ready)

    async def next_job(self) -> Job | None:
        """The next sample to draw, waiting while in-flight samples may release more;
        None once nothing is left."""
        async with self._wake:
            while not self._ready:
                if self._in_flight == 0:
                    return None
                await self._wake.wait()
            g, i = self._ready.popleft()
            self._in_flight += 1
        job = job_for(self.config, g.problem, g.budget, i, g.order)
        if self.kind in ("deepconf", "prefix") and self._needs_watch(g, i):
            assert self._watch_factory is not None
            job = Job(job.problem, job.budget, job.sample_index, job.order,
                      watch=self._watch_factory(g))
        return job

    async def finish(self, job: Job, record: SampleRecord | None) -> None:
        """A drawn sample is stored (None: its worker gave up); release what follows."""
        g = self._group(job)
        i = job.sample_index
        g.released.discard(i)
        if record is None or record.status == "failed":
            g.known[i] = _FAILED
        else:
            g.known[i] = None if record.status == "stopped" else record.answer
            g.logprobs[i] = record.logprobs
        try:
            await self._advance(g, front=True)
        finally:
            async with self._wake:
                self._in_flight -= 1
                self._wake.notify_all()

    # ------------------------------------------------------------ the rules
    def _group(self, job: Job) -> Group:
        return self._by_key[(job.problem.id, budget_label(job.budget))]

    async def _advance(self, g: Group, *, front: bool) -> None:
        async with g.lock:
            if g.done or g.halted:
                return
            if self.kind in ("esc", "adaptive_consistency"):
                wave = await self._sample_rule(g)
            elif self.kind == "deepconf":
                wave = self._deepconf(g)
            else:
                wave = [i for i in range(g.n) if i not in g.known and i not in g.released]
                g.done = True
            g.released.update(wave)
            async with self._wake:
                if front:
                    self._ready.extendleft((g, i) for i in reversed(wave))
                else:
                    self._ready.extend((g, i) for i in wave)
                if wave:
                    self._wake.notify_all()

    async def _sample_rule(self, g: Group) -> list[int]:
        assert self.rule is not None
        fed = g.fed
        while fed < g.n and fed in g.known:
            if g.known[fed] is _FAILED:
                g.halted = True
                self.summary.halted += 1
                return []
            fed += 1
        if fed > g.fed:
            g.fed = fed
            answers = [g.known[i] for i in range(fed)]
            g.classes = await asyncio.to_thread(answer_classes, answers, g.problem.kind)
            fired = first_stop(self.rule, g.classes)
            if fired is not None:
                return self._close(g, fired)
        if g.fed >= g.n:
            return self._close(g, g.n)
        if g.released:
            return []  # the wave is still out; decide when it is in
        size = wave_size(self.rule, g.classes, g.n - g.fed)
        return [i for i in range(g.fed, g.fed + size) if i not in g.known]

    def _close(self, g: Group, used: int) -> list[int]:
        g.done = True
        if used < g.n:
            self.summary.stopped_groups += 1
            self.summary.skipped += sum(1 for i in range(used, g.n) if i not in g.known)
        return []

    def _deepconf(self, g: Group) -> list[int]:
        m = min(int(self.params["warmup"]), g.n)
        warm = [i for i in range(m) if i not in g.known and i not in g.released]
        if warm or any(i in g.released for i in range(m)):
            return warm
        if any(g.known[i] is _FAILED for i in range(m)):
            g.halted = True
            self.summary.halted += 1
            return []
        if g.bar is None:
            g.bar = self._bar(g, m)
        g.done = True
        return [i for i in range(m, g.n) if i not in g.known and i not in g.released]

    def _bar(self, g: Group, m: int) -> float:
        """The percentile of the warm-up traces' lowest group confidence (traces whose
        server sent no logprobs are left out; none at all: no bar, nothing stopped)."""
        window = int(self.params["window"])
        lowest = []
        for i in range(m):
            blob = g.logprobs.get(i)
            if blob is None:
                continue
            conf = token_confidence(decode_logprobs(blob))
            if conf.size:
                lowest.append(TraceConfidence.from_confidence(conf, window).lowest)
        if not lowest:
            return -np.inf
        return deepconf_bar(lowest, float(self.params["percentile"]))

    def _needs_watch(self, g: Group, i: int) -> bool:
        if self.kind == "prefix":
            return True
        return i >= int(self.params["warmup"]) and g.bar is not None and np.isfinite(g.bar)


def deepconf_watch(window: int, k: int) -> Callable[[Group], Callable[[], TraceWatch]]:
    """Watch factories for DeepConf: a fresh monitor per attempt at the group's bar."""
    def for_group(g: Group) -> Callable[[], TraceWatch]:
        bar = float(g.bar) if g.bar is not None else -np.inf
        return lambda: ConfidenceWatch(window, bar, k)

    return for_group


class PrefixWatch:
    """A prefix scorer online: every ``every`` tokens, score the thinking so far (the
    answer text for a model without a reasoning field) and stop the trace below
    ``threshold``. The stream waits for the score, as a synchronous classifier would."""

    def __init__(self, scorer: Any, problem: Problem, label: str, every: int,
                 threshold: float) -> None:
        self.scorer = scorer
        self.problem = problem
        self.label = label
        self.every = every
        self.threshold = threshold
        self.next_at = every
        self.checks = 0

    def __call__(self, stream: PartialStream) -> bool | Any:
        thinking, output = stream.tokens()
        n = thinking or output
        if n < self.next_at:
            return False
        self.next_at = (n // self.every + 1) * self.every
        return self._check(stream.thinking_so_far(), n)

    async def _check(self, prefix: str, tokens: int) -> bool:
        from ttc.scorers.base import ScorableSample

        self.checks += 1
        record = SampleRecord(self.problem.id, self.label, 0, "ok", text=prefix,
                              thinking=prefix, thinking_tokens=tokens)
        scores = await self.scorer([ScorableSample(self.problem, record)])
        score = scores[0] if scores else None
        return score is not None and np.isfinite(score) and float(score) < self.threshold


def prefix_watch(scorer: Any, every: int, threshold: float
                 ) -> Callable[[Group], Callable[[], TraceWatch]]:
    """Watch factories for a prefix scorer (one scorer shared by every trace)."""
    def for_group(g: Group) -> Callable[[], TraceWatch]:
        label = budget_label(g.budget)
        return lambda: PrefixWatch(scorer, g.problem, label, every, threshold)

    return for_group


def make_waves(config: Config, store: RunStore, problems: Sequence[Problem],
               provider: Provider) -> Waves:
    """The wave scheduler of a sweep, fed with every stored sample of its run."""
    adaptive = config.adaptive
    assert adaptive is not None
    params = online_params(adaptive, config.sweep.samples)
    deepconf = adaptive.rule == "deepconf"
    stored = {r.key: Stored(r.status, r.answer, r.logprobs)
              for r in store.iter_samples(with_logprobs=deepconf)}
    orders = {p.id: order for p, order in store.problems()}
    k = int(getattr(provider, "top_logprobs", 0) or config.sweep.top_logprobs)
    scorer = None
    factory = None
    if deepconf:
        factory = deepconf_watch(int(params["window"]), k)
    elif adaptive.rule.startswith("prefix:"):
        from ttc.scorers.base import make_scorer

        name = adaptive.rule.split(":", 1)[1]
        entry = next(s for s in config.scorers if s.name == name)
        scorer = make_scorer(entry, model_config=config.model)
        factory = prefix_watch(scorer, int(params["every"]), float(params["threshold"]))
    waves = Waves(config, problems, orders, stored, store.batches.pending_keys(),
                  top_logprobs=k, watch_factory=factory)
    waves.scorer = scorer
    return waves
