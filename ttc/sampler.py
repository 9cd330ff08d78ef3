"""The sweep engine: every (problem, budget, sample) drawn once, resumably, within rate limits.

``Sweep.run`` plans what the store lacks (``ttc.plan``: counted, not enumerated), then
a fixed pool of workers pulls jobs from one lazy iterator (no task per sample, so
250k-sample sweeps cost no memory up front). Each attempt takes a slot of the
adaptive concurrency limit (``ttc.concurrency``: 429s and 529s shrink it), and
retryable errors are retried with exponential backoff and full jitter, honouring the
server's retry hints (``ttc.retry``). Each finished sample is committed before its worker takes the
next job (``ttc.commit``), so ``kill -9`` loses only what is in flight and a full disk
stops new requests at once. Cancellation (Ctrl-C, SIGTERM) stores what completed.

With ``[adaptive]`` the workers take their jobs from ``ttc.adaptive.online.Waves``
instead: each (problem, budget) is drawn in waves the stop rule certainly needs, and a
trace rule's watch rides along with each request to stop its stream (status
``stopped``). Every attempt of every sample goes through ``ttc.retry``, the one retry
loop (shared with the agent loop).

``sweep.mode = "batch"`` hands the same plan to ``ttc.batch`` (the providers' batch
APIs); cells waiting on a batch are never planned by either mode, and an online sweep
first folds in the results of batches that have ended.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ttc.commit import Committer
from ttc.concurrency import AdaptiveLimit
from ttc.config import Config, config_error
from ttc.errors import ConfigError, StoreWriteError
from ttc.fsutil import user_path
from ttc.lock import Holder
from ttc.plan import Job, SweepPlan, make_plan
from ttc.problems import Problem
from ttc.progress import AttemptTokens, SweepProgress
from ttc.providers.base import Completion, Provider, SampleRequest
from ttc.ratelimit import RequestLimiter, TokenBucket
from ttc.retry import AttemptsFailed, SweepAborted, backoff, call_with_retries
from ttc.store import RunStore, SampleKey, SampleRecord, budget_label, grading_rule

if TYPE_CHECKING:
    from ttc.adaptive.online import Waves
from ttc.sweep_record import StateWriter, dataset_info, public_config, refuse_import

__all__ = ["Job", "SweepAborted", "SweepPlan", "SweepResult", "Sweep"]

@dataclass(slots=True)
class SweepResult:
    planned: int
    completed: int = 0
    failed: int = 0
    censored: int = 0
    #: traces an online trace rule stopped mid-stream (stored, paid, no answer)
    stopped: int = 0
    #: cells an online stop rule made unnecessary (never requested)
    skipped: int = 0
    cost: float = 0.0
    tokens: int = 0
    wasted_tokens: int = 0
    elapsed_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)
    #: stored samples regraded under this sweep's grading rule before it ran
    regraded: int = 0
    #: the adaptive concurrency limit at the end, its lowest point and its ceiling
    concurrency: int = 0
    min_concurrency: int = 0
    concurrency_ceiling: int = 0

    def count(self, record: SampleRecord) -> None:
        """Add one stored sample to the tallies."""
        if record.status == "failed":
            self.failed += 1
            key = (record.error or "error").split(":")[0][:60]
            self.errors[key] = self.errors.get(key, 0) + 1
        else:
            self.completed += 1
            self.censored += record.status == "censored"
            self.stopped += record.status == "stopped"
        self.cost += record.cost
        self.tokens += record.output_tokens
        self.wasted_tokens += record.wasted_output_tokens


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
        self._show_progress = progress
        #: a plan above ``sweep.confirm_above`` samples runs only when confirmed (--yes)
        self.confirmed = confirmed
        #: queue behind another writer of the run directory instead of refusing (--wait)
        self.wait = wait
        #: told who holds the run directory when ``wait`` has to wait
        self.on_wait: Callable[[Holder | None], None] | None = None
        self._rule = grading_rule(config.grading.number_fallback)
        self._prompts: dict[tuple[str, tuple[int, ...] | None], str] = {}
        self._bar: SweepProgress | None = None
        #: the scorer of an online ``prefix:SCORER`` rule (closed after the sweep)
        self._scorer: Any = None
        self._committer: Committer | None = None
        self._limit = AdaptiveLimit(max(1, config.sweep.concurrency),
                                    enabled=config.sweep.adaptive_concurrency)

    # ------------------------------------------------------------ planning
    def prepare(self) -> tuple[RunStore, list[Problem], Provider, SweepPlan]:
        """Validate everything, claim the run directory and plan the missing samples.

        Raises before any request: bad dataset, unset key, conflicting or imported run,
        another writer in the directory, an unconfirmed huge plan. Stored samples graded
        under another rule are regraded first, so one run never mixes two rules.
        """
        problems, provider, fingerprint, orders = self._load(check_key=True)
        self._check_size(problems)
        store = RunStore(self.run_dir, create=True, wait=self.wait, on_wait=self.on_wait)
        try:
            refuse_import(store)
            store.claim(fingerprint)
            store.put_problems(problems, orders)
            store.set_meta(
                config=public_config(self.config),
                n_problems=len(problems),
                dataset_info=dataset_info(self.config, fingerprint["dataset"], problems),
            )
            regraded = self._unify_grading(store)
            plan = make_plan(self.config, problems, orders, store.done_keys(), provider,
                             store.batches.pending_keys())
            plan.regrade = regraded
        except BaseException:
            store.close()
            raise
        return store, problems, provider, plan

    def prepare_dry(self) -> tuple[None, list[Problem], Provider, SweepPlan]:
        """Like ``prepare`` but writes nothing and needs no key or lock: for ``--dry-run``."""
        problems, provider, fingerprint, orders = self._load(check_key=False)
        done: set[SampleKey] = set()
        pending: set[SampleKey] = set()
        regrade = 0
        if (self.run_dir / "samples.sqlite").exists():
            with RunStore(self.run_dir, read_only=True) as store:
                refuse_import(store)
                store.check(fingerprint)
                done = store.done_keys()
                pending = store.batches.pending_keys()
                regrade = sum(n for rule, n in store.grading_rules().items()
                              if rule != self._rule)
        plan = make_plan(self.config, problems, orders, done, provider, pending)
        plan.regrade = regrade
        return None, problems, provider, plan

    def _check_size(self, problems: Sequence[Problem]) -> None:
        s = self.config.sweep
        total = len(problems) * len(s.budgets) * s.samples
        if total > s.confirm_above and not self.confirmed:
            raise config_error(
                self.config, "sweep.samples",
                f"this sweep plans {total:,} samples ({len(problems):,} problems x "
                f"{len(s.budgets)} budgets x {s.samples:,} samples), above sweep.confirm_above "
                f"= {s.confirm_above:,}; check the cost with --dry-run, then add --yes",
            )

    def _unify_grading(self, store: RunStore) -> int:
        """Regrade stored samples graded under another rule than this sweep's."""
        rules = store.grading_rules()
        if not any(rule != self._rule for rule in rules):
            return 0
        from ttc.regrade import regrade_run

        return regrade_run(store, number_fallback=self.config.grading.number_fallback).samples

    def _load(self, *, check_key: bool) -> tuple[
        list[Problem], Provider, dict[str, Any], dict[str, tuple[int, ...] | None]
    ]:
        from ttc.datasets import dataset_fingerprint, load_dataset
        from ttc.prompts import choice_order

        cfg = self.config
        problems = load_dataset(cfg.dataset, base_dir=cfg.base_dir)
        provider = self._provider
        if provider is None:
            from ttc.providers import make_provider

            model = cfg.model
            if model.path and not user_path(model.path).is_absolute():
                model = dataclasses.replace(model, path=str(cfg.base_dir / model.path))
            if check_key:
                model.api_key()  # a missing key fails here, before anything is written
            elif model.api_key_env and not os.environ.get(model.api_key_env):
                model = dataclasses.replace(model, api_key_env="")  # a plan needs no key
            provider = make_provider(model, sweep=cfg.sweep)
        for budget in cfg.sweep.budgets:
            try:
                provider.check_budget(budget)
            except ConfigError as exc:
                raise config_error(cfg, "sweep.budgets", str(exc)) from None
        fingerprint = {
            "model": provider.describe(),
            "dataset": dataset_fingerprint(cfg.dataset, base_dir=cfg.base_dir),
            "prompt": self.prompt_identity(),
        }
        orders = {
            p.id: choice_order(p, mode=cfg.dataset.shuffle_choices, seed=cfg.sweep.seed,
                               sample_index=0)
            for p in problems
        }
        return problems, provider, fingerprint, orders

    def prompt_identity(self) -> dict[str, Any]:
        from ttc.prompts import DEFAULT_TEMPLATES

        p, d = self.config.prompt, self.config.dataset
        return {
            "system": p.system,
            "math": p.math or DEFAULT_TEMPLATES["math"],
            "mcq": p.mcq or DEFAULT_TEMPLATES["mcq"],
            "shuffle_choices": d.shuffle_choices,
            "seed": self.config.sweep.seed,
        }

    # ------------------------------------------------------------ running
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
        bar = SweepProgress(total=plan.total, done=plan.done, enabled=self._show_progress)
        self._bar = bar
        committer = self._committer = Committer(store)
        state = StateWriter(store, self._limit)
        try:
            if self.config.sweep.mode == "batch" or store.batches.has_open():
                from ttc.batch.runner import BatchSweep

                batches = BatchSweep(self, store, provider, bar, result)
                if self.config.sweep.mode == "batch":
                    with bar:
                        await batches.run(plan, lambda: self.replan(store, problems, provider))
                    return result
                if await batches.collect_ended():  # online: fold in batches that ended
                    plan = self.replan(store, problems, provider)
                    result.planned = len(plan.jobs)
            if not plan.jobs:  # nothing missing: no server to start, no request to send
                return result
            waves = None
            if self.config.adaptive is not None:
                from ttc.adaptive.online import make_waves

                waves = make_waves(self.config, store, problems, provider)
                self._scorer = waves.scorer
                if not await waves.start():  # the rule needs nothing more
                    result.planned, result.skipped = 0, waves.summary.skipped
                    return result
            await provider.start()
            requests = RequestLimiter(self.config.sweep.requests_per_minute)
            tokens = TokenBucket(self.config.sweep.tokens_per_minute)
            jobs = iter(plan.jobs)
            workers = min(self.config.sweep.concurrency, max(1, len(plan.jobs)))
            if provider.max_concurrency is not None:
                workers = min(workers, max(1, provider.max_concurrency))
            self._limit = AdaptiveLimit(workers, enabled=self.config.sweep.adaptive_concurrency)
            state.limit = self._limit
            committer.start()
            ticker = asyncio.create_task(self._tick(bar, state))
            try:
                with bar:
                    async with asyncio.TaskGroup() as group:
                        for _ in range(workers):
                            group.create_task(
                                self._worker(jobs, provider, requests, tokens, result, bar)
                                if waves is None else
                                self._wave_worker(waves, provider, requests, tokens, result, bar)
                            )
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
                close = getattr(self._scorer, "aclose", None)
                if close is not None:
                    await close()
        return result

    def replan(self, store: RunStore, problems: list[Problem], provider: Provider) -> SweepPlan:
        """The plan again, after batch results changed what is stored or pending."""
        orders = {p.id: order for p, order in store.problems()}
        return make_plan(self.config, problems, orders, store.done_keys(), provider,
                         store.batches.pending_keys())

    async def _tick(self, bar: Any, state: StateWriter) -> None:
        """Once a second: the progress line (printed even when stalled) and the run's state."""
        while True:
            await asyncio.sleep(1.0)
            bar.set_concurrency(self._limit.limit, self._limit.ceiling)
            state.maybe_write()

    async def _worker(
        self,
        jobs: Iterator[Job],
        provider: Provider,
        requests: RequestLimiter,
        tokens: TokenBucket,
        result: SweepResult,
        bar: Any,
    ) -> None:
        assert self._committer is not None
        for job in jobs:
            record = await self._sample(job, provider, requests, tokens)
            await self._committer.commit(record)  # on disk before the next job is taken
            result.count(record)
            bar.advance(record)

    async def _wave_worker(
        self, waves: Waves, provider: Provider, requests: RequestLimiter, tokens: TokenBucket,
        result: SweepResult, bar: Any,
    ) -> None:
        """``_worker`` for an online stop rule: jobs come from the wave scheduler, which
        hears of every stored record before it releases what the rule needs next."""
        assert self._committer is not None
        while (job := await waves.next_job()) is not None:
            record = await self._sample(job, provider, requests, tokens)
            await self._committer.commit(record)
            result.count(record)
            bar.advance(record)
            await waves.finish(job, record)

    def _prompt(self, job: Job) -> str:
        from ttc.prompts import render_prompt

        key = (job.problem.id, job.order)
        text = self._prompts.get(key)
        if text is None:
            p = self.config.prompt
            template = (p.mcq if job.problem.kind == "mcq" else p.math) or None
            text = render_prompt(job.problem, template, job.order)
            self._prompts[key] = text
        return text

    def request_for(self, job: Job) -> SampleRequest:
        """The request of one cell (the same online and in a batch)."""
        return SampleRequest(
            problem=job.problem,
            prompt=self._prompt(job),
            budget=job.budget,
            sample_index=job.sample_index,
            system=self.config.prompt.system,
            seed=_sample_seed(self.config.sweep.seed, job),
            choice_order=job.order,
        )

    async def _sample(
        self, job: Job, provider: Provider, requests: RequestLimiter, tokens: TokenBucket
    ) -> SampleRecord:
        request = self.request_for(job)
        label = budget_label(job.budget)
        committer = self._committer
        watch = job.watch

        async def call(live: AttemptTokens) -> Completion:
            return await provider.complete(dataclasses.replace(
                request, on_tokens=live, watch=watch() if watch is not None else None))

        try:
            done = await call_with_retries(
                call, sweep=self.config.sweep, requests=requests, tokens=tokens,
                reserve=provider.max_output_tokens(job.budget) // 2,
                progress=self._bar,
                limit=self._limit,
                writable=committer.wait_writable if committer is not None else None)
        except AttemptsFailed as exc:
            return SampleRecord(
                problem_id=job.problem.id, budget=label, sample_index=job.sample_index,
                status="failed", attempts=exc.attempts, error=str(exc), choice_order=job.order,
                wasted_output_tokens=exc.wasted, cost=_waste_cost(provider, exc.wasted),
            )
        return await self._record(job, label, done.result, done.attempts, done.latency,
                                  provider, done.wasted)

    def _backoff(self, attempt: int, hint: float | None) -> float:
        """The retry loop's backoff (``ttc.retry.backoff``), for the batch runner's calls."""
        return backoff(self.config.sweep, attempt, hint)

    async def _record(
        self,
        job: Job,
        label: str,
        completion: Completion,
        attempts: int,
        latency: float,
        provider: Provider,
        wasted: int = 0,
    ) -> SampleRecord:
        answer: str | None = None
        correct: bool | None = None
        if not completion.stopped:  # a stopped trace has no answer to grade
            answer, correct = await _grade(
                completion.text, job.problem, job.order, self.config.grading.number_fallback
            )
        logprobs = None
        if completion.logprobs is not None:
            from ttc.adaptive.logprobs import encode_logprobs

            logprobs = encode_logprobs(completion.logprobs)
        return SampleRecord(
            problem_id=job.problem.id,
            budget=label,
            sample_index=job.sample_index,
            status="stopped" if completion.stopped else
            "censored" if completion.censored else "ok",
            answer=answer,
            correct=correct,
            text=completion.text,
            thinking=completion.thinking if self.config.sweep.store_thinking else None,
            input_tokens=completion.input_tokens,
            output_tokens=completion.output_tokens,
            thinking_tokens=completion.thinking_tokens,
            thinking_estimated=completion.thinking_estimated,
            stop_reason=completion.stop_reason,
            response_id=completion.response_id,
            latency_s=round(latency, 6),
            attempts=attempts,
            cost=provider.cost(completion) + _waste_cost(provider, wasted),
            choice_order=job.order,
            extra=completion.extra,
            created_at=time.time(),
            wasted_output_tokens=wasted,
            logprobs=logprobs,
            grading_rule=self._rule,
        )


def _waste_cost(provider: Provider, wasted: int) -> float:
    """What output tokens of failed attempts cost (a cut stream is billed all the same)."""
    return provider.cost(Completion(text="", output_tokens=wasted)) if wasted else 0.0


async def _grade(
    text: str, problem: Problem, order: tuple[int, ...] | None, number_fallback: bool = True
) -> tuple[str | None, bool]:
    """Grade inline when the fast path applies; hand symbolic cases to a thread."""
    from ttc.grading import decided_in_process, default_grader, extract_answer, grade

    if problem.kind == "mcq":
        return grade(text, problem, order)
    answer = extract_answer(text, "math", number_fallback=number_fallback)
    if answer is None:
        return None, False
    grader = default_grader()
    if decided_in_process(answer, problem.answer):
        return answer, grader.is_equivalent(answer, problem.answer, "math")
    verdict = await asyncio.to_thread(grader.is_equivalent, answer, problem.answer, "math")
    return answer, verdict


def _sample_seed(seed: int, job: Job) -> int:
    import zlib

    return zlib.crc32(f"{seed}|{job.problem.id}|{job.budget}|{job.sample_index}".encode())
