"""Batch mode: every missing cell through the provider's batch API, exactly once across kills.

``BatchSweep.run`` does, in order:

1. **probe** the batch endpoints (a server without them is refused in one line naming
   ``sweep.mode`` before anything is sent);
2. **re-attach**: a batch recorded as ``submitting`` (its create call never answered:
   the process died, or the connection did) is looked up at the provider and adopted,
   or released when it was never created; every open batch is polled from here on;
3. **submit** the planned cells, packed within the provider's limits; before each
   create call the batch's token and every cell's custom id are committed to the store
   (``ttc.store._batches``), and the provider's batch id right after it answers;
4. **poll** every ``sweep.batch_poll_s`` until each batch ends, then **collect** its
   results as they download (``ttc.batch.results``): each goes through the provider's
   ``batch_result`` (the online parse, usage checks and text cap), is graded like an
   online sample, costs ``1 - model.batch_discount`` of the online price, and is
   committed together with its cell's marker. Errored and expired entries become failed samples; the
   retryable ones are submitted again in a new batch once theirs has ended, up to
   ``sweep.max_attempts`` per cell in one run (the next run retries the rest).

A kill at any point loses nothing paid for: cells stay pending until their result is
stored, and a restarted sweep (online or batch) never sends a pending cell again. A
full disk keeps results in memory and retries (``ttc.commit``); if it stays full the
sweep stops, and the unsaved results are read from the provider again next time.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from ttc.batch.ids import Entry, Packer, custom_id_for
from ttc.batch.results import BatchResults
from ttc.batch.wire import BatchAPI, BatchState, OffOriginError
from ttc.config import Config, config_error
from ttc.deadline import attempt_deadline
from ttc.errors import (
    APIError,
    ConnectionFailedError,
    FatalAPIError,
    MalformedResponseError,
    RedirectRefusedError,
    RequestTimeoutError,
    RetryableError,
)
from ttc.plan import Job
from ttc.providers.base import HTTPProvider, Provider
from ttc.recorder import Recorder, SweepResult
from ttc.retry import SweepAborted, backoff
from ttc.store import BatchRow, RunStore

if TYPE_CHECKING:
    from ttc.plan import SweepPlan
    from ttc.progress import SweepProgress

__all__ = ["BatchSweep"]

T = TypeVar("T")


class BatchSweep:
    """The batch side of one ``Sweep.run`` (see the module docstring): the sweep's
    ``Recorder`` builds each cell's request and record, its progress bar says what
    happens (``note``), its result tallies what was stored."""

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
        self.ledger = store.batches
        self.provider = provider
        self.bar = bar
        self.result = result
        #: outcomes into stored samples, and the cells to send again
        self.results = BatchResults(config, recorder, store, provider, bar, result)
        self.committer = self.results.committer
        self._api: BatchAPI | None = None
        self._probed = False

    # ------------------------------------------------------------ entry points
    async def run(self, plan: SweepPlan, replan: Callable[[], SweepPlan]) -> None:
        """Batch mode: submit the plan's cells, wait for every batch, store every result.

        ``replan`` plans again after re-attaching released cells (a batch never created).
        """
        if not plan.jobs and not self.ledger.has_open():
            return  # nothing missing, nothing waiting: no call to make
        self.committer.start()
        try:
            api = await self._ready()
            if await self._reattach(api):
                plan = replan()
                self.result.planned = len(plan.jobs)
            await self._submit_jobs(api, plan.jobs)
            await self._drain(api)
        finally:
            await self.results.close()

    async def collect_ended(self) -> bool:
        """Online mode: re-attach, store what ended batches hold, leave the rest waiting
        (the sweep says how many cells still wait: ``SweepResult.waiting``).

        Returns True when anything was found to re-attach to (the plan may have changed).
        """
        if not self.ledger.batches(open_only=True):
            return False
        self.committer.start()
        try:
            api = await self._ready()
            await self._reattach(api)
            for row in self.ledger.batches(open_only=True):
                await self._check(api, row)
        finally:
            await self.results.close()
        return True

    # ------------------------------------------------------------ setup
    async def _ready(self) -> BatchAPI:
        if self._api is None:
            api = self.provider.batch_api() if isinstance(self.provider, HTTPProvider) else None
            if api is None:
                raise config_error(self.config, "sweep.mode",
                                   f'sweep.mode = "batch": provider {self.provider.kind!r} '
                                   f'has no batch API; use sweep.mode = "online"')
            self._api = api
        if not self._probed:
            try:
                await self._call("reach the batch API", self._api.probe)
            except FatalAPIError as exc:
                base = self._api.wire.base_url
                if exc.status in (404, 405) and self.config.sweep.mode == "batch":
                    raise config_error(
                        self.config, "sweep.mode",
                        f'sweep.mode = "batch", but {base} has no batch API (HTTP '
                        f'{exc.status}); use sweep.mode = "online" for this server (nothing '
                        f"was sent)") from None
                if exc.status in (404, 405):
                    raise config_error(
                        self.config, "model.base_url",
                        f"cells of this run wait on provider batches, but {base} has no batch "
                        f"API (HTTP {exc.status}) to collect them from; point model.base_url "
                        f"at the server that took the batches (nothing was sent)") from None
                raise _abort(exc) from None
            self._probed = True
        return self._api

    async def _reattach(self, api: BatchAPI) -> int:
        """Settle batches whose create call never answered: adopt or release them.

        Returns how many were released (their cells are to be sent again).
        """
        released = 0
        for row in self.ledger.batches(open_only=True):
            if row.status != "submitting":
                continue
            found = await self._call(f"look up batch {row.token}", _finder(api, row, self._known()))
            if found is None:
                self.ledger.release(row.local_id, "never created at the provider")
                released += 1
                self._say(f"batch {row.token} was never created; its {row.requests:,} "
                          f"requests are sent again")
            else:
                self.ledger.mark_submitted(row.local_id, found, at=row.created_at)
                self._say(f"re-attached to batch {found} ({row.requests:,} requests)")
        return released

    # ------------------------------------------------------------ submitting
    async def _submit_jobs(self, api: BatchAPI, jobs: Iterable[Job]) -> None:
        packer = Packer(api.limits)
        for job in jobs:
            key = (job.problem.id, str(job.budget), job.sample_index)
            custom_id = custom_id_for(key)
            body = self._http.batch_body(self.recorder.request(job))
            entry = Entry(key, custom_id, api.encode(custom_id, body))
            try:
                full = packer.add(entry)
            except ValueError as exc:  # one request larger than a whole batch may be
                await self.results.save([self.results.failed(key, f"{api.provider} batch: {exc}")])
                continue
            if full:
                await self._submit(api, full)
        rest = packer.flush()
        if rest:
            await self._submit(api, rest)

    async def _submit(self, api: BatchAPI, entries: list[Entry]) -> None:
        await self.committer.wait_writable()  # no new batch while results cannot be stored
        token = f"ttc_{uuid.uuid4().hex}"
        size = api.limits.overhead + sum(len(e.line) + api.limits.separator for e in entries)
        local = self.ledger.record_intent(
            api.provider, token, [(e.key, e.custom_id) for e in entries], size)
        created_at = time.time()
        for entry in entries:
            self.results.attempts[entry.key] += 1
        try:
            state = await self._create(api, entries, token, created_at)
        except FatalAPIError as exc:
            self.ledger.release(local, str(exc))
            if exc.status in (401, 403) or isinstance(exc, (RedirectRefusedError, OffOriginError)):
                raise _abort(exc) from None
            await self.results.save([
                self.results.failed(e.key, f"{api.provider} batch create: {exc}")
                for e in entries])
            return
        self.ledger.mark_submitted(local, state.remote_id)
        self.ledger.observe(local, status=state.status, counts=state.counts, ended=False)
        self._say(f"submitted batch {state.remote_id} ({len(entries):,} requests, "
                  f"{size:,} bytes)")

    async def _create(
        self, api: BatchAPI, entries: list[Entry], token: str, created_at: float
    ) -> BatchState:
        """Create the batch, retrying what may be retried; a create whose answer was lost
        is looked up before it is ever sent again."""
        s = self.config.sweep
        for attempt in range(1, s.max_attempts + 1):
            try:
                with attempt_deadline(s.timeout_s):
                    return await api.submit(entries, token)
            except (RetryableError, TimeoutError) as raw:
                exc = _retryable(raw, s.timeout_s)
                if isinstance(exc, (ConnectionFailedError, RequestTimeoutError,
                                    MalformedResponseError)):
                    found = await self._call(f"look up batch {token}", lambda: api.find(
                        token, created_at, len(entries), self._known()))
                    if found is not None:
                        return await self._call(f"poll batch {found}",
                                                functools.partial(api.poll, found))
                if attempt == s.max_attempts:
                    raise FatalAPIError(f"{exc} (after {attempt} attempts)",
                                        status=exc.status) from None
                await asyncio.sleep(backoff(s, attempt, exc.retry_after))
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ waiting
    async def _drain(self, api: BatchAPI) -> None:
        """Poll until no batch is open; resubmit retryable failures as batches end."""
        while True:
            if self.results.again:
                again, self.results.again = self.results.again, []
                await self._submit_jobs(api, (self.results.job(key) for key in again))
            rows = self.ledger.batches(open_only=True)
            if not rows and not self.results.again:
                return
            for row in rows:
                await self._check(api, row)
            if not self.results.again and self.ledger.batches(open_only=True):
                await asyncio.sleep(self.config.sweep.batch_poll_s)

    async def _check(self, api: BatchAPI, row: BatchRow) -> bool:
        """Poll one batch; collect it if it ended. True when it was collected."""
        if row.remote_id is None:
            return False
        remote = row.remote_id
        try:
            state = await self._call(f"poll batch {remote}", lambda: api.poll(remote))
        except FatalAPIError as exc:
            if exc.status == 404:  # the API answers, but knows no such batch
                freed = self.ledger.release(row.local_id, f"unknown to the provider: {exc}")
                self._say(f"batch {remote} is unknown to {api.provider}; its {freed:,} "
                          f"pending requests are sent again")
                return False
            raise _abort(exc) from None
        self.ledger.observe(row.local_id, status=state.status, counts=state.counts,
                            ended=state.ended)
        if not state.ended:
            return False
        await self._collect(api, row, state)
        return True

    async def _collect(self, api: BatchAPI, row: BatchRow, state: BatchState) -> None:
        cells = self.ledger.pending_cells(row.local_id)
        s = self.config.sweep
        if state.failure:
            await self.results.save([self.results.failed(k, state.failure)
                                     for k in cells.values()])
            cells = {}
        attempt = 0
        while cells:
            attempt += 1
            try:
                async with contextlib.aclosing(api.results(state)) as chunks:
                    async for outcomes in chunks:
                        await self.results.save(
                            [await self.results.record(cells.pop(o.custom_id), o, state,
                                                       api.wire.scrub)
                             for o in outcomes if o.custom_id in cells])
                break
            except RetryableError as exc:
                if attempt >= s.max_attempts:
                    raise _abort(exc, f"the results of batch {state.remote_id} could not be "
                                 f"read; they stay with the provider") from None
                await asyncio.sleep(backoff(s, attempt, exc.retry_after))
                cells = self.ledger.pending_cells(row.local_id)  # stored ones stay stored
            except FatalAPIError as exc:
                raise _abort(exc, f"the results of batch {state.remote_id} could not be "
                             f"read; they stay with the provider") from None
        missing = [self.results.failed(key, f"{api.provider} batch missing: no result for this "
                                f"request (batch {state.remote_id})", retry=True)
                   for key in cells.values()]
        await self.results.save(missing)
        self.ledger.finish(row.local_id)
        tally = ", ".join(f"{n:,} {k}" for k, n in sorted(state.counts.items()) if n)
        self._say(f"batch {state.remote_id} {state.status}{': ' + tally if tally else ''}")

    # ------------------------------------------------------------ plumbing
    @property
    def _http(self) -> HTTPProvider:
        assert isinstance(self.provider, HTTPProvider)  # _ready refused any other
        return self.provider

    async def _call(self, what: str, send: Callable[[], Awaitable[T]]) -> T:
        """One control call (probe, poll, look-up) under ``sweep.timeout_s``, retried."""
        s = self.config.sweep
        for attempt in range(1, s.max_attempts + 1):
            try:
                with attempt_deadline(s.timeout_s):
                    return await send()
            except (RetryableError, TimeoutError) as raw:
                exc = _retryable(raw, s.timeout_s)
                if attempt == s.max_attempts:
                    raise _abort(exc, f"could not {what} after {attempt} attempts; every "
                                 f"batch stays attached") from None
                await asyncio.sleep(backoff(s, attempt, exc.retry_after))
        raise AssertionError("unreachable")

    def _known(self) -> frozenset[str]:
        return frozenset(r.remote_id for r in self.ledger.batches() if r.remote_id)

    def _say(self, line: str) -> None:
        self.bar.note(line)


def _finder(api: BatchAPI, row: BatchRow, known: frozenset[str]) -> Callable[
        [], Awaitable[str | None]]:
    return lambda: api.find(row.token, row.created_at, row.requests, known)


def _retryable(exc: BaseException, timeout_s: float) -> RetryableError:
    if isinstance(exc, RetryableError):
        return exc
    return RequestTimeoutError(f"no response within {timeout_s:g}s (sweep.timeout_s)")


def _abort(exc: APIError, context: str = "") -> APIError:
    """The error that ends a batch sweep (exit 1); the run stays attached to its batches."""
    text = f"{context}: {exc}" if context else str(exc)
    return SweepAborted(f"{text}; run the same command to resume (nothing is sent twice)",
                        status=exc.status)
