"""What a sweep sends and stores for one cell, online or through a provider batch.

``Recorder`` is the one seam both modes share: ``request`` builds a cell's request (the
same bytes online and in a batch, so a cell's answer does not depend on the mode),
``record`` grades a completion into the ``SampleRecord`` to store, and ``failed`` makes
the record of a cell that got no answer. ``SweepResult`` tallies what was stored.

Grading takes the fast path inline (letters, plain numbers) and hands symbolic math to
a thread, so one hard answer never stalls the event loop that feeds every request.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from dataclasses import dataclass, field

from ttc.config import Config
from ttc.grading import decided_in_process, default_grader, extract_answer, grade
from ttc.plan import Job
from ttc.problems import Problem
from ttc.prompts import render_prompt
from ttc.providers.base import Completion, Provider, SampleRequest, TokenListener, TraceWatch
from ttc.store import SampleRecord, budget_label, grading_rule

__all__ = ["Recorder", "SweepResult", "sample_seed", "waste_cost"]


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
    #: cells of this sweep still waiting on provider batches (an online sweep leaves
    #: them to their batches: neither sent nor stored)
    pending: int = 0
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

    def waiting(self) -> str:
        """What an online sweep says of the cells it leaves to provider batches."""
        return (f"{self.pending:,} cells are pending on provider batches (an online sweep "
                f"never sends them): run again to collect the batches that have ended, or run "
                f'`ttc sweep` with sweep.mode = "batch" to wait for them all')


class Recorder:
    """Requests and records of one sweep's cells (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        #: the grading rule every record of this sweep is graded under
        self.rule = grading_rule(config.grading.number_fallback)
        self._prompts: dict[tuple[str, tuple[int, ...] | None], str] = {}

    def request(self, job: Job, *, on_tokens: TokenListener | None = None,
                watch: TraceWatch | None = None) -> SampleRequest:
        """The request of one cell (the same online and in a batch); an online attempt
        adds its live token counter and its trace watch."""
        return SampleRequest(
            problem=job.problem, prompt=self._prompt(job), budget=job.budget,
            sample_index=job.sample_index, system=self.config.prompt.system,
            seed=sample_seed(self.config.sweep.seed, job), choice_order=job.order,
            on_tokens=on_tokens, watch=watch,
        )

    def _prompt(self, job: Job) -> str:
        key = (job.problem.id, job.order)
        text = self._prompts.get(key)
        if text is None:
            p = self.config.prompt
            template = (p.mcq if job.problem.kind == "mcq" else p.math) or None
            text = render_prompt(job.problem, template, job.order)
            self._prompts[key] = text
        return text

    async def record(
        self,
        job: Job,
        completion: Completion,
        provider: Provider,
        *,
        attempts: int = 1,
        latency: float | None = None,
        wasted: int = 0,
        price_factor: float = 1.0,
    ) -> SampleRecord:
        """The graded record of a completion. ``latency`` is the successful attempt's
        (None for a batch, whose queueing time is no model latency); ``price_factor``
        scales the answer's price (a batch's discount); ``wasted`` output tokens of
        failed attempts are priced in full."""
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
            budget=budget_label(job.budget),
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
            latency_s=round(latency, 6) if latency is not None else None,
            attempts=attempts,
            cost=provider.cost(completion) * price_factor + waste_cost(provider, wasted),
            choice_order=job.order,
            extra=completion.extra,
            created_at=time.time(),
            wasted_output_tokens=wasted,
            logprobs=logprobs,
            grading_rule=self.rule,
        )

    @staticmethod
    def failed(job: Job, error: str, *, attempts: int = 1, wasted: int = 0,
               provider: Provider | None = None) -> SampleRecord:
        """The record of a cell that got no answer; what its attempts wasted is priced
        (``provider``) and stored, so the spend is on record. A later sweep retries it."""
        return SampleRecord(
            problem_id=job.problem.id, budget=budget_label(job.budget),
            sample_index=job.sample_index, status="failed", attempts=attempts, error=error,
            choice_order=job.order, wasted_output_tokens=wasted,
            cost=waste_cost(provider, wasted) if provider is not None else 0.0,
            created_at=time.time(),
        )


def waste_cost(provider: Provider, wasted: int) -> float:
    """What output tokens of failed attempts cost (a cut stream is billed all the same)."""
    return provider.cost(Completion(text="", output_tokens=wasted)) if wasted else 0.0


def sample_seed(seed: int, job: Job) -> int:
    """The request seed of one cell: fixed by the sweep's seed and the cell's key."""
    return zlib.crc32(f"{seed}|{job.problem.id}|{job.budget}|{job.sample_index}".encode())


async def _grade(
    text: str, problem: Problem, order: tuple[int, ...] | None, number_fallback: bool = True
) -> tuple[str | None, bool]:
    """Grade inline when the fast path applies; hand symbolic cases to a thread."""
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
