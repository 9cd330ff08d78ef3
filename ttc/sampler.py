"""The sweep engine: every (problem, budget, sample) drawn once, resumably, within rate limits.

``Sweep.run`` validates, claims the run directory and plans what the store lacks
(``ttc.sweep_prepare``; the plan is ``ttc.plan``'s: counted, not enumerated), then a
fixed pool of workers (``ttc.sweep_workers``) pulls jobs from one lazy iterator (no
task per sample, so 250k-sample sweeps cost no memory up front). Each attempt takes a
slot of the adaptive concurrency limit (``ttc.concurrency``: 429s and 529s shrink it),
and retryable errors are retried with exponential backoff and full jitter, honouring
the server's retry hints (``ttc.retry``). Each finished sample is graded
(``ttc.recorder``) and committed before its worker takes the next job
(``ttc.commit``), so ``kill -9`` loses only what is in flight and a full disk stops
new requests at once. Cancellation (Ctrl-C, SIGTERM) stores what completed; a fatal
error (bad key, unknown model) sends nothing more but lets what is in flight finish
and be stored.

With ``[adaptive]`` the workers take their jobs from ``ttc.adaptive.online.Waves``
instead: each (problem, budget) is drawn in waves the stop rule certainly needs, and a
trace rule's watch rides along with each request to stop its stream (status
``stopped``).

``sweep.mode = "batch"`` hands the same plan to ``ttc.batch`` (the providers' batch
APIs), which shares the ``Recorder`` (the same request bytes, the same grading); cells
waiting on a batch are never planned by either mode, and an online sweep first folds
in the results of batches that have ended and says how many cells still wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ttc.commit import Committer
from ttc.concurrency import AdaptiveLimit
from ttc.config import Config
from ttc.errors import StoreWriteError
from ttc.lock import Holder
from ttc.plan import Job, SweepPlan
from ttc.problems import Problem
from ttc.progress import SweepProgress
from ttc.providers.base import Provider
from ttc.recorder import Recorder, SweepResult
from ttc.retry import SweepAborted
from ttc.store import RunStore, SampleRecord
from ttc.sweep_prepare import Claim, prepare, prepare_dry, replan
from ttc.sweep_record import StateWriter
from ttc.sweep_workers import Workers

__all__ = ["Job", "SweepAborted", "SweepPlan", "SweepResult", "Sweep"]


class Sweep:
    """One configured sweep over one run directory."""

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        *,
        provider: Provider | None = None,
        progress: bool = False,
        confirmed: bool = False,
        wait: bool = False,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self._provider = provider
        #: print progress and notices to stderr (the command line without --quiet)
        self.progress = progress
        #: a plan above ``sweep.confirm_above`` samples runs only when confirmed (--yes)
        self.confirmed = confirmed
        #: queue behind another writer of the run directory instead of refusing (--wait)
        self.wait = wait
        #: told who holds the run directory when ``wait`` has to wait
        self.on_wait: Callable[[Holder | None], None] | None = None
        #: what each cell sends and how its answer is stored (shared with batch mode)
        self.recorder = Recorder(config)
        self._committer: Committer[SampleRecord] | None = None
        self._limit = AdaptiveLimit(max(1, config.sweep.concurrency),
                                    enabled=config.sweep.adaptive_concurrency)

    def prepare(self) -> tuple[RunStore, list[Problem], Provider, SweepPlan]:
        """Validate everything, claim the run directory and plan (``ttc.sweep_prepare``)."""
        return prepare(self.config, self.run_dir, self._provider,
                       Claim(wait=self.wait, on_wait=self.on_wait, confirmed=self.confirmed))

    def prepare_dry(self) -> tuple[None, list[Problem], Provider, SweepPlan]:
        """Like ``prepare`` but writes nothing and needs no key or lock: for ``--dry-run``."""
        return prepare_dry(self.config, self.run_dir, self._provider)

    async def run(self) -> SweepResult:
        """Draw every missing sample; safe to cancel at any point."""
        store, problems, provider, plan = self.prepare()
        result = SweepResult(planned=len(plan.jobs), regraded=plan.regrade)
        from ttc.grading import decided_in_process, default_grader

        # gold answers that only the symbolic checker can settle: start its worker now
        if plan.jobs and any(
            p.kind == "math" and not decided_in_process("0", p.answer) for p in problems
        ):
            default_grader().warm_up()  # symbolic grading's worker starts while requests fly
        started = time.monotonic()
        bar = SweepProgress(total=plan.total, done=plan.done, enabled=self.progress,
                            upper_bound=self.config.adaptive is not None)
        committer = self._committer = Committer(store, store.write_samples)
        state = StateWriter(store, self._limit)
        scorer: Any = None  # the scorer of an online ``prefix:SCORER`` rule
        try:
            if self.config.sweep.mode == "batch" or store.batches.has_open():
                from ttc.batch.runner import BatchSweep

                batches = BatchSweep(self.config, self.recorder, store, provider, bar, result)
                if self.config.sweep.mode == "batch":
                    with bar:
                        await batches.run(plan, lambda: replan(self.config, store, problems,
                                                               provider))
                    return result
                if await batches.collect_ended():  # online: fold in batches that ended
                    plan = replan(self.config, store, problems, provider)
                    result.planned = len(plan.jobs)
            result.pending = plan.pending  # left to their batches (batch mode waits for them)
            if result.pending:
                bar.note(result.waiting())
            if not plan.jobs:  # nothing missing: no server to start, no request to send
                return result
            waves = None
            if self.config.adaptive is not None:
                from ttc.adaptive.online import make_waves

                waves = make_waves(self.config, store, problems, provider)
                scorer = waves.scorer
                if not await waves.start():  # the rule needs nothing more
                    result.planned, result.skipped = 0, waves.summary.skipped
                    return result
            await provider.start()
            workers = min(self.config.sweep.concurrency, max(1, len(plan.jobs)))
            if provider.max_concurrency is not None:
                workers = min(workers, max(1, provider.max_concurrency))
            self._limit = AdaptiveLimit(workers, enabled=self.config.sweep.adaptive_concurrency)
            state.limit = self._limit
            committer.start()
            pool = Workers(self.config, provider, self.recorder, committer, bar, result,
                           self._limit)
            ticker = asyncio.create_task(self._tick(bar, state))
            try:
                with bar:
                    await pool.run(workers, jobs=iter(plan.jobs), waves=waves)
            finally:
                ticker.cancel()
                if waves is not None:
                    result.skipped = waves.summary.skipped
        except* (StoreWriteError, SweepAborted) as stopped:
            # a full disk outranks an abort: it says how many paid answers are unsaved
            first = sorted(stopped.exceptions, key=lambda e: not isinstance(e, StoreWriteError))
            raise first[0] from None
        finally:
            try:
                await committer.aclose()  # what completed is stored, even on Ctrl-C
                if plan.jobs:
                    state.write(finished=True)
            finally:
                result.elapsed_s = time.monotonic() - started
                result.concurrency = self._limit.limit
                result.min_concurrency = self._limit.min_limit
                result.concurrency_ceiling = self._limit.ceiling
                store.close()
                await provider.aclose()
                close = getattr(scorer, "aclose", None)
                if close is not None:
                    await close()
        return result

    async def _tick(self, bar: SweepProgress, state: StateWriter) -> None:
        """Once a second: the progress line (printed even when stalled) and the run's state."""
        while True:
            await asyncio.sleep(1.0)
            bar.set_concurrency(self._limit.limit, self._limit.ceiling)
            state.maybe_write()

