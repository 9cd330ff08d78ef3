"""What a batch sweep stores (``BatchResults``): each batch outcome made a sample, and
which cells go to the provider again.

An outcome with a body goes through the provider's ``batch_result`` (the online parse,
usage checks and text cap), is graded like an online sample and costs
``1 - model.batch_discount`` of the online price; errored and expired entries become
failed samples, the retryable ones queued for another batch up to
``sweep.max_attempts`` submissions per cell in one run. Records are committed through
a ``Committer`` (a full disk keeps them in memory and retries); a cell sent again is
counted once, by its last outcome.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING

from ttc.batch.wire import BatchState, Outcome
from ttc.commit import Committer
from ttc.config import Config, parse_budget
from ttc.errors import APIError, MalformedResponseError, RetryableError, StoreWriteError
from ttc.plan import Job, job_for
from ttc.providers.base import HTTPProvider, Provider
from ttc.recorder import Recorder, SweepResult
from ttc.store import RunStore, SampleKey, SampleRecord

if TYPE_CHECKING:
    from ttc.progress import SweepProgress

__all__ = ["BatchResults"]


class BatchResults:
    """Outcomes into stored samples for one ``BatchSweep`` (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        recorder: Recorder,
        store: RunStore,
        provider: Provider,
        bar: SweepProgress,
        result: SweepResult,
    ) -> None:
        self.config = config
        self.recorder = recorder
        self.store = store
        self.provider = provider
        self.bar = bar
        self.result = result
        self.committer: Committer[SampleRecord] = Committer(store, store.write_samples)
        #: what one batch sample costs relative to the same sample online
        self.price_factor = 1.0 - self.config.model.batch_discount
        self._problems = {p.id: (p, order) for p, order in store.problems()}
        #: submissions per cell in this run (``sweep.max_attempts`` caps them)
        self.attempts: Counter[SampleKey] = Counter()
        #: cells whose batch entry failed in a way another batch may fix
        self.again: list[SampleKey] = []
        self._queued: set[SampleKey] = set()

    async def record(self, key: SampleKey, outcome: Outcome, state: BatchState,
                     scrub: Callable[[APIError], object]) -> SampleRecord:
        """The sample an outcome makes; ``scrub`` blanks the key out of its error."""
        job = self.job(key)
        error = outcome.error
        if outcome.body is not None and isinstance(self.provider, HTTPProvider):
            try:
                completion = self.provider.batch_result(outcome.body, self.recorder.request(job))
            except APIError as exc:
                error = exc
            else:  # no latency: a batch's queueing time is no model latency
                return await self.recorder.record(job, completion, self.provider,
                                                  latency=None, price_factor=self.price_factor)
        if error is None:
            error = MalformedResponseError("no response body")
        scrub(error)
        return self.failed(key, f"{self.provider.kind} batch {outcome.kind}: {error} "
                           f"(batch {state.remote_id})", retry=isinstance(error, RetryableError))

    def failed(self, key: SampleKey, error: str, *, retry: bool = False) -> SampleRecord:
        """A failed sample; with ``retry``, the cell is queued for another batch while it
        has submissions left."""
        if retry and self.attempts[key] < self.config.sweep.max_attempts:
            self.again.append(key)
            self._queued.add(key)
        else:
            self._queued.discard(key)  # this failure is the cell's last word in this run
        return Recorder.failed(self.job(key), error[:500])

    def job(self, key: SampleKey) -> Job:
        problem, base = self._problems[key[0]]
        return job_for(self.config, problem, parse_budget(key[1]), key[2], base)

    async def save(self, records: list[SampleRecord]) -> None:
        """Commit records (one transaction for all); a full disk stops with a batch message."""
        if not records:
            return
        try:
            await asyncio.gather(*(self.committer.commit(r) for r in records))
        except StoreWriteError as exc:
            raise self.unsaved(exc) from None
        for record in records:
            if record.status == "failed" and record.key in self._queued:
                continue  # sent again in this run: its last outcome is the one counted
            self._queued.discard(record.key)
            self.result.count(record)
            self.bar.advance(record)

    async def close(self) -> None:
        try:
            await self.committer.aclose()
        except StoreWriteError as exc:
            raise self.unsaved(exc) from None

    def unsaved(self, exc: StoreWriteError) -> StoreWriteError:
        where = self.store.path.resolve().parent
        return StoreWriteError(
            f"cannot write to {self.store.path} ({exc.reason}); the batch results not yet "
            f"stored stay with the provider: free space on the filesystem of {where} and run "
            f"the same command to read them again (nothing is requested or paid twice)",
            unsaved=exc.unsaved, reason=exc.reason)
