"""One trajectory, step by step: ask the model, apply its action, store the step, repeat.

A trajectory resumes from its last stored step: the environment is reset with the same
problem and seed and the stored actions are replayed into it (their observations must
come out identical, or the environment is not deterministic and the resume stops
rather than build on a different world); the stored assistant messages rebuild the
conversation verbatim. So a killed sweep never pays for a stored step twice.

Each model call goes through the sampler's own retry loop (``ttc.retry``):
``sweep.max_attempts`` attempts, backoff with
jitter honouring the server's retry hint, the one ``sweep.timeout_s`` deadline per
attempt, the same request and token rate limits, live token progress, and a
sweep-wide abort on errors every request would hit (bad key, unknown model).

An environment's ``step`` is plain synchronous Python; tools it lists in an optional
``blocking_tools`` attribute (the calculator's ``submit_answer``, whose grading may
need the symbolic worker) run in a thread so the event loop keeps serving the other
trajectories' streams.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ttc.agent.protocol import Environment, StepResult, ToolCall, ToolSpec
from ttc.agent.steps import StepRecord, StepStore, TrajectoryKey, TrajectoryState
from ttc.agent.wire import Entry, ToolRequest, ToolResult, Turn
from ttc.commit import Committer
from ttc.config import Budget, SweepConfig
from ttc.errors import TTCError
from ttc.problems import Problem
from ttc.progress import SweepProgress
from ttc.providers.base import Provider
from ttc.ratelimit import RequestLimiter, TokenBucket
from ttc.retry import AttemptsFailed, Halt, call_with_retries

__all__ = [
    "DEFAULT_SYSTEM",
    "NOT_EXECUTED",
    "EnvironmentContractError",
    "Limits",
    "ReplayMismatchError",
    "Trajectory",
    "TrajectoryOutcome",
    "horizon_note",
    "run_trajectory",
]

DEFAULT_SYSTEM = ("You are an agent acting in an environment through tools. Call exactly one "
                  "tool per turn and read its result before the next action.")
NOT_EXECUTED = "Error: one action per step; this call was not executed."


class EnvironmentContractError(TTCError):
    """The environment broke its contract outside ``step`` (``reset`` raised or returned
    something else than (text, tools)); the runner reports it against the config."""


class ReplayMismatchError(TTCError):
    """Replaying stored actions gave different observations: the environment is not
    deterministic given (problem, seed), so the stored trajectory cannot be continued."""


def horizon_note(horizon: int) -> str:
    """What the agent is told in "separate" mode (nothing is said in "truncate" mode)."""
    return (f"\n\nYou may take at most {horizon} actions (tool calls); the task ends after "
            f"that.")


@dataclass(slots=True)
class Limits:
    """The sweep's shared rate limits, retry policy and step writer."""

    sweep: SweepConfig
    requests: RequestLimiter
    tokens: TokenBucket
    #: stores each step as drawn (``StepStore.write_steps``); while the disk refuses,
    #: no new request is sent (``ttc.commit``)
    committer: Committer[StepRecord]
    #: the live progress line (None: quiet), told of streamed tokens per attempt
    progress: SweepProgress | None = None
    #: the stop that lets steps in flight finish (``ttc.retry.Halt``): after a fatal
    #: error no step is sent, the ones already sent are drawn to their end and stored
    halt: Halt = field(default_factory=Halt)


@dataclass(frozen=True, slots=True)
class Trajectory:
    """What to run: one (problem, thinking budget, horizon, sample) up to ``cap`` steps."""

    problem: Problem
    budget: Budget
    label: str
    horizon: int
    sample_index: int
    cap: int
    env_seed: int
    request_seed: int

    @property
    def key(self) -> TrajectoryKey:
        return (self.problem.id, self.label, self.horizon, self.sample_index)


@dataclass(slots=True)
class TrajectoryOutcome:
    """A trajectory's totals over all its stored steps, for its row in ``samples``."""

    state: TrajectoryState
    score: float = 0.0
    first_success: int | None = None
    milestones: list[str] = field(default_factory=list)
    answer: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    thinking_estimated: bool = False
    cost: float = 0.0
    latency_s: float = 0.0
    attempts: int = 0
    new_steps: int = 0
    last_text: str | None = None
    last_stop_reason: str | None = None

    def add(self, record: StepRecord) -> None:
        if record.reward > self.score:
            self.score = record.reward
            if record.reward >= 1.0 and self.first_success is None:
                self.first_success = record.step
        self.milestones += [m for m in record.milestones if m not in self.milestones]
        if record.answer is not None:
            self.answer = record.answer
        self.input_tokens += record.input_tokens
        self.output_tokens += record.output_tokens
        self.thinking_tokens += record.thinking_tokens
        self.thinking_estimated |= record.thinking_estimated
        self.cost += record.cost
        self.latency_s += record.latency_s or 0.0
        self.attempts += record.attempts
        self.last_text = record.text
        self.last_stop_reason = record.stop_reason


def _safe_step(env: Environment, call: ToolCall) -> StepResult:
    """The environment's answer; an environment that raises answers with an error instead."""
    try:
        result = env.step(call)
    except Exception as exc:  # a user environment's bug must not end the sweep
        return StepResult(f"Error: the environment failed on this action "
                          f"({type(exc).__name__}: {str(exc)[:200]}).", error=True)
    if not isinstance(result, StepResult):
        return StepResult("Error: the environment returned no StepResult.", error=True)
    return result


def _reset(env: Environment, job: Trajectory) -> tuple[str, list[ToolSpec]]:
    """``env.reset``, checked: a user environment's bug there is reported, not a traceback."""
    try:
        started: Any = env.reset(job.problem, job.env_seed)
    except Exception as exc:  # user code: any failure is the environment's
        text = " ".join(str(exc).split())[:200]
        raise EnvironmentContractError(
            f"failed in reset() on problem {job.problem.id!r}: {type(exc).__name__}: {text}"
        ) from None
    if not (isinstance(started, tuple) and len(started) == 2 and isinstance(started[0], str)
            and isinstance(started[1], list)
            and all(isinstance(t, ToolSpec) for t in started[1])):
        raise EnvironmentContractError(
            f"reset() must return (observation text, list of ToolSpec), got "
            f"{type(started).__name__}")
    return started[0], started[1]


async def _apply(env: Environment, turn: Turn, tools: list[ToolSpec]) -> tuple[
    StepResult, tuple[ToolResult, ...], str | None, ToolCall | None
]:
    """Execute the first tool call; answer the rest with an error; nudge a tool-less turn."""
    if not turn.tool_calls:
        if turn.censored:
            text = "Your reply was cut off at the output limit before any tool call. "
        else:
            text = "No tool was called. "
        text += f"Act by calling exactly one tool: {', '.join(t.name for t in tools)}."
        return StepResult(text, error=True), (), text, None
    first, *rest = turn.tool_calls
    result = await _step(env, first)
    results = (ToolResult(first.id, result.observation, result.error),
               *(ToolResult(c.id, NOT_EXECUTED, True) for c in rest))
    return result, results, None, first


async def _draw(provider: Any, request: ToolRequest, limits: Limits) -> tuple[Turn, int, float]:
    """One step's model call under the sweep's retry loop (``ttc.retry``)."""
    done = await call_with_retries(
        lambda live: provider.act(dataclasses.replace(request, on_tokens=live)),
        sweep=limits.sweep, requests=limits.requests, tokens=limits.tokens,
        reserve=provider.max_output_tokens(request.budget) // 2, progress=limits.progress,
        writable=limits.committer.wait_writable, halt=limits.halt)
    return done.result, done.attempts, done.latency


async def _step(env: Environment, call: ToolCall) -> StepResult:
    """``_safe_step``, off the event loop for tools the environment says may block."""
    if call.name in getattr(env, "blocking_tools", ()):
        return await asyncio.to_thread(_safe_step, env, call)
    return _safe_step(env, call)


async def run_trajectory(
    job: Trajectory,
    env: Environment,
    provider: Provider,
    store: StepStore,
    limits: Limits,
    *,
    system: str = DEFAULT_SYSTEM,
    store_thinking: bool = True,
) -> TrajectoryOutcome:
    """Run (or resume) one trajectory to its end or its cap; every step stored as drawn.

    Raises ``ttc.retry.SweepAborted`` for errors every request would hit, and
    ``ttc.retry.Halted`` when the sweep stopped before this trajectory's next step was
    sent (its stored steps stay: a resume continues after them); a step that fails its
    retries ends this call with the trajectory marked "failed" (resumable).
    """
    observation, tools = _reset(env, job)
    first = observation + (horizon_note(job.horizon) if job.horizon else "")
    conversation: list[Entry] = [Entry("user", text=first)]
    stored = store.load(job.key)
    outcome = TrajectoryOutcome(TrajectoryState("running", job.cap, len(stored)))
    done = False
    for record in stored:  # replay: same world, same conversation
        if record.action is not None:
            again = await _step(env, ToolCall("replay", record.action, record.arguments or ""))
            if again.observation != record.observation:
                raise ReplayMismatchError(
                    f"{job.key}: step {record.step} replayed to a different observation; the "
                    f"environment is not deterministic given (problem, seed)")
        conversation += record.entries()
        outcome.add(record)
        done = done or record.done
    store.set_trajectory(job.key, outcome.state)
    step = len(stored)
    while not done and step < job.cap:
        step += 1
        request = ToolRequest(job.problem, "", job.budget, job.sample_index, system=system,
                              seed=job.request_seed, conversation=tuple(conversation),
                              tools=tuple(tools), step=step, horizon=job.horizon)
        try:
            turn, attempts, latency = await _draw(provider, request, limits)
        except AttemptsFailed as exc:
            outcome.state = TrajectoryState("failed", job.cap, step - 1, str(exc))
            outcome.attempts += exc.attempts
            store.set_trajectory(job.key, outcome.state)
            return outcome
        result, results, nudge, call = await _apply(env, turn, tools)
        c = turn
        record = StepRecord(
            key=job.key, step=step, message=turn.message, results=results, nudge=nudge,
            action=call.name if call else None, arguments=call.arguments if call else None,
            observation=result.observation, reward=float(result.reward),
            milestones=tuple(result.milestones), done=bool(result.done),
            error=bool(result.error), answer=result.answer, text=c.text,
            thinking=c.thinking if store_thinking else None,
            input_tokens=c.input_tokens, output_tokens=c.output_tokens,
            thinking_tokens=c.thinking_tokens, thinking_estimated=c.thinking_estimated,
            cost=provider.cost(c), latency_s=round(latency, 6), attempts=attempts,
            stop_reason=c.stop_reason, response_id=c.response_id,
        )
        await limits.committer.commit(record)  # on disk before the next step is drawn
        outcome.add(record)
        outcome.new_steps += 1
        conversation += record.entries()
        done = record.done
    outcome.state = TrajectoryState("ended" if done else "capped", job.cap, step)
    store.set_trajectory(job.key, outcome.state)
    return outcome
