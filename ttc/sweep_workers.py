"""The online side of a sweep: a fixed pool of workers drawing and storing samples.

Each worker takes a job (from the plan's lazy iterator, or from an online stop rule's
``Waves``), draws it through ``ttc.retry`` (every attempt within the rate limits, a
slot of the adaptive concurrency limit and one deadline), grades it (``Recorder``)
and commits it before it takes the next (``ttc.commit``).

A fatal error that every further request would hit (bad key, unknown model, a gateway
refusing the sweep: ``SweepAborted``) stops the sweep without throwing paid work away:
``Halt`` refuses every request not yet sent, at once, while those already sent run to
their end (each within ``sweep.timeout_s``) and are stored; then the error ends the
sweep. What failed attempts of a refused retry had wasted is stored with its cell, as
a failed sample. A cancellation during that drain (a second stop: Ctrl-C, SIGTERM)
abandons what is still in flight; what completed is stored all the same, and the
fatal error still ends the sweep. A disk that gave up (``StoreWriteError``) ends it at
once: nothing more can be stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ttc.commit import Committer
from ttc.concurrency import AdaptiveLimit
from ttc.config import Config
from ttc.plan import Job
from ttc.progress import AttemptTokens, SweepProgress
from ttc.providers.base import Completion, Provider
from ttc.ratelimit import RequestLimiter, TokenBucket
from ttc.recorder import Recorder, SweepResult
from ttc.retry import (
    AttemptsFailed,
    Halt,
    Halted,
    SweepAborted,
    call_with_retries,
    drain_notice,
)
from ttc.store import SampleRecord

if TYPE_CHECKING:
    from ttc.adaptive.online import Waves

__all__ = ["Workers"]


class Workers:
    """The worker pool of one online sweep (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        provider: Provider,
        recorder: Recorder,
        committer: Committer[SampleRecord],
        bar: SweepProgress,
        result: SweepResult,
        limit: AdaptiveLimit,
    ) -> None:
        self.config = config
        self.provider = provider
        self.recorder = recorder
        self.committer = committer
        self.bar = bar
        self.result = result
        self.limit = limit
        self.halt = Halt()
        self._requests = RequestLimiter(config.sweep.requests_per_minute)
        self._tokens = TokenBucket(config.sweep.tokens_per_minute)

    async def run(self, workers: int, *, jobs: Iterator[Job] | None = None,
                  waves: Waves | None = None) -> None:
        """Draw every job (of ``jobs``, or as ``waves`` release them) with ``workers``
        workers; raise what stopped the sweep."""
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(self._wave_worker(waves) if waves is not None
                                      else self._worker(jobs or iter(())))
        except asyncio.CancelledError:
            if self.halt.reason is None:
                raise
            raise self.halt.reason from None  # stopped twice: the first reason ends it
        if self.halt.reason is not None:
            raise self.halt.reason

    async def _worker(self, jobs: Iterator[Job]) -> None:
        try:
            for job in jobs:
                await self._store(await self._sample(job))  # on disk before the next job
        except Halted:
            return

    async def _wave_worker(self, waves: Waves) -> None:
        """``_worker`` for an online stop rule: jobs come from the wave scheduler, which
        hears of every stored record before it releases what the rule needs next."""
        try:
            while True:
                with self.halt.waiting():
                    job = await waves.next_job()
                if job is None:
                    return
                record = await self._sample(job)
                await self._store(record)
                await waves.finish(job, record)
        except Halted:
            return

    async def _store(self, record: SampleRecord) -> None:
        await self.committer.commit(record)
        self.result.count(record)
        self.bar.advance(record)

    async def _sample(self, job: Job) -> SampleRecord:
        """Draw one sample; raises ``Halted`` when the sweep stops before it was sent."""
        provider, recorder, watch = self.provider, self.recorder, job.watch

        async def call(live: AttemptTokens) -> Completion:
            return await provider.complete(recorder.request(
                job, on_tokens=live, watch=watch() if watch is not None else None))

        try:
            done = await call_with_retries(
                call, sweep=self.config.sweep, requests=self._requests, tokens=self._tokens,
                reserve=provider.max_output_tokens(job.budget) // 2, progress=self.bar,
                limit=self.limit, writable=self.committer.wait_writable, halt=self.halt)
        except AttemptsFailed as exc:
            return self.recorder.failed(job, str(exc), attempts=exc.attempts,
                                        wasted=exc.wasted, provider=provider)
        except SweepAborted as exc:
            self._stop(exc)
            if not exc.output_tokens:
                raise Halted from None  # nothing paid for this cell: nothing to store
            return self.recorder.failed(job, str(exc), attempts=exc.attempts,
                                        wasted=exc.output_tokens, provider=provider)
        return await self.recorder.record(job, done.result, provider, attempts=done.attempts,
                                          latency=done.latency, wasted=done.wasted)

    def _stop(self, reason: SweepAborted) -> None:
        """No new request from now on; the ones in flight finish and are stored."""
        first = self.halt.reason is None
        self.halt.halt(reason)
        if first and self.limit.in_flight:
            self.bar.note(drain_notice(reason, f"the {self.limit.in_flight:,} requests",
                                       self.config.sweep.timeout_s))
