"""The sweep engine: every (problem, budget, sample) drawn once, resumably, within rate limits.

``Sweep.run`` plans what the store lacks, then a fixed pool of ``concurrency``
workers pulls jobs from one lazy iterator (no task per sample, so 250k-sample
sweeps cost no memory up front). Each job retries retryable errors with
exponential backoff and full jitter, honouring the server's retry hints; results
are graded and written in batches. Cancellation (Ctrl-C) flushes what completed,
so the work lost is at most what was in flight.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ttc.config import Budget, Config, config_error
from ttc.errors import (
    APIError,
    ConfigError,
    FatalAPIError,
    RedirectRefusedError,
    RequestTimeoutError,
    RetryableError,
)
from ttc.problems import Problem
from ttc.progress import AttemptTokens, SweepProgress
from ttc.providers.base import Completion, Provider, SampleRequest
from ttc.ratelimit import RequestLimiter, TokenBucket
from ttc.store import RunStore, SampleKey, SampleRecord, budget_label

__all__ = ["FLUSH_EVERY", "Job", "SweepAborted", "SweepPlan", "SweepResult", "Sweep"]

FLUSH_EVERY = 64
FLUSH_SECONDS = 0.02


class SweepAborted(APIError):
    """A fatal error that every further request would hit too (bad key, unknown model)."""


@dataclass(frozen=True, slots=True)
class Job:
    problem: Problem
    budget: Budget
    sample_index: int
    order: tuple[int, ...] | None


@dataclass(slots=True)
class SweepPlan:
    """What a sweep will request: the missing samples and their projected size."""

    total: int
    done: int
    jobs: list[Job]
    projected_input_tokens: int = 0
    projected_output_tokens: int = 0
    projected_cost: float = 0.0
    per_budget: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class SweepResult:
    planned: int
    completed: int = 0
    failed: int = 0
    censored: int = 0
    cost: float = 0.0
    tokens: int = 0
    elapsed_s: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


class Sweep:
    """One configured sweep over one run directory."""

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        *,
        provider: Provider | None = None,
        progress: bool = False,
    ) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self._provider = provider
        self._show_progress = progress
        self._buffer: list[SampleRecord] = []
        self._last_flush = time.monotonic()
        self._prompts: dict[tuple[str, tuple[int, ...] | None], str] = {}
        self._bar: SweepProgress | None = None

    # ------------------------------------------------------------ planning
    def prepare(self) -> tuple[RunStore, list[Problem], Provider, SweepPlan]:
        """Validate everything, claim the run directory and plan the missing samples.

        Raises before any request: bad dataset, unset key, conflicting run.
        """
        problems, provider, fingerprint, orders = self._load(check_key=True)
        store = RunStore(self.run_dir, create=True)
        try:
            store.claim(fingerprint)
            store.put_problems(problems, orders)
            store.set_meta(
                config=_public_config(self.config),
                n_problems=len(problems),
                dataset_info=_dataset_info(self.config, fingerprint["dataset"], problems),
            )
            plan = self._plan(problems, orders, store.done_keys(), provider)
        except BaseException:
            store.close()
            raise
        return store, problems, provider, plan

    def prepare_dry(self) -> tuple[None, list[Problem], Provider, SweepPlan]:
        """Like ``prepare`` but writes nothing and needs no key: for ``--dry-run``."""
        problems, provider, fingerprint, orders = self._load(check_key=False)
        done: set[SampleKey] = set()
        if (self.run_dir / "samples.sqlite").exists():
            with RunStore(self.run_dir) as store:
                store.check(fingerprint)
                done = store.done_keys()
        return None, problems, provider, self._plan(problems, orders, done, provider)

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
            if model.path and not Path(model.path).expanduser().is_absolute():
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

    def _plan(
        self,
        problems: Sequence[Problem],
        orders: dict[str, tuple[int, ...] | None],
        done: set[SampleKey],
        provider: Provider,
    ) -> SweepPlan:
        from ttc.prompts import choice_order

        cfg = self.config
        jobs: list[Job] = []
        per_budget: dict[str, int] = {}
        in_tokens = out_tokens = 0
        mode = cfg.dataset.shuffle_choices
        for budget in cfg.sweep.budgets:
            label = budget_label(budget)
            for problem in problems:
                for i in range(cfg.sweep.samples):
                    if (problem.id, label, i) in done:
                        continue
                    order = orders[problem.id]
                    if mode == "sample" and problem.kind == "mcq":
                        order = choice_order(problem, mode=mode, seed=cfg.sweep.seed,
                                             sample_index=i)
                    jobs.append(Job(problem, budget, i, order))
                    per_budget[label] = per_budget.get(label, 0) + 1
                    in_tokens += len(problem.question) // 4 + 60
                    out_tokens += provider.max_output_tokens(budget)
        total = len(problems) * len(cfg.sweep.budgets) * cfg.sweep.samples
        m = cfg.model
        cost = (in_tokens * m.price_input_per_mtok + out_tokens * m.price_output_per_mtok) / 1e6
        return SweepPlan(total, total - len(jobs), jobs, in_tokens, out_tokens, cost, per_budget)

    # ------------------------------------------------------------ running
    async def run(self) -> SweepResult:
        """Draw every missing sample; safe to cancel at any point."""
        store, problems, provider, plan = self.prepare()
        result = SweepResult(planned=len(plan.jobs))
        from ttc.grading import decided_in_process, default_grader

        # gold answers that only the symbolic checker can settle: start its worker now
        if plan.jobs and any(
            p.kind == "math" and not decided_in_process("0", p.answer) for p in problems
        ):
            default_grader().warm_up()  # symbolic grading's worker starts while requests fly
        started = time.monotonic()
        bar = SweepProgress(total=plan.total, done=plan.done, enabled=self._show_progress)
        self._bar = bar
        try:
            if not plan.jobs:  # nothing missing: no server to start, no request to send
                return result
            await provider.start()
            requests = RequestLimiter(self.config.sweep.requests_per_minute)
            tokens = TokenBucket(self.config.sweep.tokens_per_minute)
            jobs = iter(plan.jobs)
            workers = min(self.config.sweep.concurrency, max(1, len(plan.jobs)))
            if provider.max_concurrency is not None:
                workers = min(workers, max(1, provider.max_concurrency))
            flusher = asyncio.create_task(self._flush_periodically(store))
            try:
                with bar:
                    async with asyncio.TaskGroup() as group:
                        for _ in range(workers):
                            group.create_task(
                                self._worker(jobs, provider, requests, tokens, store, result, bar)
                            )
            finally:
                flusher.cancel()
        except* SweepAborted as aborted:
            raise aborted.exceptions[0] from None
        finally:
            self._flush(store)
            result.elapsed_s = time.monotonic() - started
            store.close()
            await provider.aclose()
        return result

    async def _worker(
        self,
        jobs: Iterator[Job],
        provider: Provider,
        requests: RequestLimiter,
        tokens: TokenBucket,
        store: RunStore,
        result: SweepResult,
        bar: Any,
    ) -> None:
        for job in jobs:
            record = await self._sample(job, provider, requests, tokens)
            self._buffer.append(record)
            if record.status == "failed":
                result.failed += 1
                key = (record.error or "error").split(":")[0][:60]
                result.errors[key] = result.errors.get(key, 0) + 1
            else:
                result.completed += 1
                result.censored += record.status == "censored"
            result.cost += record.cost
            result.tokens += record.output_tokens
            bar.advance(record)
            if len(self._buffer) >= FLUSH_EVERY or (
                time.monotonic() - self._last_flush > FLUSH_SECONDS
            ):
                self._flush(store)

    async def _flush_periodically(self, store: RunStore) -> None:
        """Bound what a ``kill -9`` can lose to what is in flight plus ~20 ms of results."""
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self._flush(store)

    def _flush(self, store: RunStore) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            store.write_samples(batch)
        self._last_flush = time.monotonic()

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

    async def _sample(
        self, job: Job, provider: Provider, requests: RequestLimiter, tokens: TokenBucket
    ) -> SampleRecord:
        sweep = self.config.sweep
        request = SampleRequest(
            problem=job.problem,
            prompt=self._prompt(job),
            budget=job.budget,
            sample_index=job.sample_index,
            system=self.config.prompt.system,
            seed=_sample_seed(sweep.seed, job),
            choice_order=job.order,
        )
        label = budget_label(job.budget)
        error: str | None = None
        attempt = 0
        while attempt < sweep.max_attempts:
            attempt += 1
            await requests.acquire()
            reserved = provider.max_output_tokens(job.budget) // 2
            await tokens.reserve(reserved)
            started = time.perf_counter()
            live = AttemptTokens(self._bar)  # streamed tokens, live in the progress line
            try:
                # the one total deadline of an attempt; providers and transports set none
                async with asyncio.timeout(sweep.timeout_s):
                    completion = await provider.complete(
                        dataclasses.replace(request, on_tokens=live)
                    )
            except (RetryableError, TimeoutError) as exc:
                if isinstance(exc, TimeoutError):
                    exc = RequestTimeoutError(f"no response within {sweep.timeout_s:g}s",
                                              output_tokens=live.output_tokens)
                tokens.settle(reserved, exc.output_tokens)
                error = str(exc)
                if attempt < sweep.max_attempts:
                    await asyncio.sleep(self._backoff(attempt, exc.retry_after))
                continue
            except FatalAPIError as exc:
                tokens.settle(reserved, exc.output_tokens)
                # bad key, unknown model, a redirect, or a backend that died (no HTTP
                # status): every further request would fail the same way
                if exc.status in (401, 403, 404, None) or isinstance(exc, RedirectRefusedError):
                    raise SweepAborted(str(exc), status=exc.status) from None
                error = str(exc)
                break
            finally:
                live.close()
            latency = time.perf_counter() - started
            tokens.settle(reserved, completion.input_tokens + completion.output_tokens)
            return await self._record(job, label, completion, attempt, latency, provider)
        return SampleRecord(
            problem_id=job.problem.id, budget=label, sample_index=job.sample_index,
            status="failed", attempts=attempt, error=error, choice_order=job.order,
        )

    def _backoff(self, attempt: int, hint: float | None) -> float:
        sweep = self.config.sweep
        ceiling = min(sweep.backoff_max_s, sweep.backoff_base_s * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        if hint is not None:
            delay = max(delay, min(hint, sweep.backoff_max_s * 5))
        return delay

    async def _record(
        self,
        job: Job,
        label: str,
        completion: Completion,
        attempts: int,
        latency: float,
        provider: Provider,
    ) -> SampleRecord:
        answer, correct = await _grade(
            completion.text, job.problem, job.order, self.config.grading.number_fallback
        )
        return SampleRecord(
            problem_id=job.problem.id,
            budget=label,
            sample_index=job.sample_index,
            status="censored" if completion.censored else "ok",
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
            cost=provider.cost(completion),
            choice_order=job.order,
            extra=completion.extra,
            created_at=time.time(),
        )


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


def _dataset_info(cfg: Config, sha256: str, problems: Sequence[Problem]) -> dict[str, Any]:
    """What ran, for reports: the source, its format and hash, the selection, the subjects."""
    d = cfg.dataset
    source = d.path or f"builtin:{d.builtin}"
    subjects = sorted({p.subject for p in problems if p.subject})
    selection = {"limit": d.limit, "subjects": d.subjects, "sample": d.sample, "seed": d.seed}
    info: dict[str, Any] = {"source": source, "format": d.format, "sha256": sha256,
                            "n_problems": len(problems), "subjects": subjects,
                            "selection": selection}
    if d.builtin:
        info["params"] = {"size": d.size, "difficulty": d.difficulty, "seed": d.seed}
    return info


def _public_config(cfg: Config) -> dict[str, Any]:
    """The config as stored with the run: no secrets (only the key's variable name).

    Header tables and secret-named keys are dropped at any depth, so a scorer's or a
    verifier model's credentials never reach the run directory either.
    """
    data = _without_secrets(dataclasses.asdict(cfg))
    data["path"] = str(cfg.path) if cfg.path else None
    return data


_SECRET_KEYS = {"headers", "api_key", "token", "password", "secret", "authorization"}


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items()
                if str(k).lower() not in _SECRET_KEYS}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value
