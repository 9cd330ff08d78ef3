"""The one retry loop: attempts, backoff, the deadline and the rate limits of a model call.

The sampler (one sample) and the agent loop (one step) make their model calls through
``call_with_retries``; only the request and what a failure becomes differ (a failed
sample is stored, a failed step pauses its trajectory), so the shared form takes the
call as ``call(live) -> result`` and raises ``AttemptsFailed`` for the caller to turn
into its own record. The policy:

* ``sweep.max_attempts`` attempts; before each, ``writable()`` (the sampler waits while
  answers cannot be saved: no request is sent that could not be stored), one
  ``RequestLimiter.acquire`` and a ``TokenBucket.reserve`` of ``reserve`` tokens,
  settled afterwards with the tokens actually used (on failure: ``exc.output_tokens``,
  what a cut stream cost), then a slot of the adaptive concurrency ``limit`` (429s and
  529s shrink it) held for the attempt only;
* one ``attempt_deadline(sweep.timeout_s)`` per attempt (``ttc.deadline``: what
  ``asyncio.timeout`` does, at a fraction of its cost per request), the one total
  deadline (a timeout becomes ``RequestTimeoutError`` carrying the streamed tokens seen
  so far);
* a fresh ``AttemptTokens`` per attempt handed to the call (live progress), closed after;
* ``RetryableError`` or a timeout: back off (exponential, full jitter in the upper
  half, the server's retry hint honoured up to 5 x ``backoff_max_s``), try again; the
  output tokens of every failed attempt are summed as ``wasted`` (paid, not in the answer);
* ``FatalAPIError`` with status 401/403/404/None or a refused redirect: ``SweepAborted``
  (every further request would fail alike); any other fatal error ends the call.

Stopping without throwing paid work away (``Halt``): once a sweep is to stop (a
``SweepAborted`` in one of its calls), ``Halt.halt`` refuses every attempt not yet
sent, including the retries of calls whose earlier attempts failed, and wakes every
call waiting to send one (its ``writable``, the rate limits, a concurrency slot, a
backoff) with ``Halted``; attempts already sent run to their end under their own
deadline, so their answers are stored. A call refused before its first attempt raises
``Halted`` (nothing to store); one refused a retry raises ``AttemptsFailed`` with what
its earlier attempts wasted, so that spend is stored too.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Generic, TypeVar

from ttc.concurrency import AdaptiveLimit
from ttc.config import SweepConfig
from ttc.deadline import attempt_deadline
from ttc.errors import (
    APIError,
    FatalAPIError,
    RedirectRefusedError,
    RequestTimeoutError,
    RetryableError,
    TTCError,
)
from ttc.progress import AttemptTokens, SweepProgress
from ttc.ratelimit import RequestLimiter, TokenBucket

__all__ = ["Attempted", "AttemptsFailed", "Halt", "Halted", "SweepAborted", "backoff",
           "call_with_retries", "drain_notice"]

T = TypeVar("T")


class SweepAborted(APIError):
    """A fatal error that every further request would hit too (bad key, unknown model).

    ``output_tokens`` sums what every attempt of the aborted call consumed (paid, no
    answer) and ``attempts`` counts them, so the caller can store that spend.
    """

    def __init__(self, message: str, *, status: int | None = None, output_tokens: int = 0,
                 attempts: int = 0) -> None:
        super().__init__(message, status=status, output_tokens=output_tokens)
        self.attempts = attempts


class Halted(Exception):
    """The sweep is stopping (``Halt``): this call may not send another attempt."""


class Halt:
    """The stop that lets what is in flight finish (see the module docstring).

    A call registers while it waits to send (``waiting``); ``halt`` cancels those
    waits, and ``waiting`` turns that cancellation (and only that one: a Ctrl-C at
    the same moment stays a cancellation) into ``Halted``.
    """

    def __init__(self) -> None:
        #: why the sweep stops (None while it runs)
        self.reason: BaseException | None = None
        self._waiting: set[asyncio.Task[object]] = set()
        self._woken: set[asyncio.Task[object]] = set()

    def halt(self, reason: BaseException) -> None:
        """Refuse every attempt not yet sent, from now on; the first reason is kept."""
        if self.reason is None:
            self.reason = reason
        for task in self._waiting - self._woken:
            self._woken.add(task)
            task.cancel()

    def waiting(self) -> _Waiting:
        """A block that only waits to send (no request goes out inside it)."""
        return _Waiting(self)


def drain_notice(reason: BaseException, in_flight: str, timeout_s: float) -> str:
    """What a sweep says once when ``Halt`` stops it: why, and what it still waits for
    (``in_flight``: "the 3 requests", "the steps")."""
    return (f"{reason}; sending nothing more, letting {in_flight} in flight finish (each "
            f"within sweep.timeout_s = {timeout_s:g}s; Ctrl-C abandons them)")


class _Waiting:
    __slots__ = ("_halt", "_task")

    def __init__(self, halt: Halt) -> None:
        self._halt = halt
        self._task: asyncio.Task[object] | None = None

    def __enter__(self) -> None:
        if self._halt.reason is not None:
            raise Halted
        self._task = asyncio.current_task()
        if self._task is not None:
            self._halt._waiting.add(self._task)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        task = self._task
        if task is None:
            return
        self._halt._waiting.discard(task)
        if task not in self._halt._woken:
            return
        self._halt._woken.discard(task)
        others = task.uncancel() > 0
        if kind is asyncio.CancelledError and others:
            return  # cancelled by someone else too (Ctrl-C): stay cancelled
        if kind is None or kind is asyncio.CancelledError:
            raise Halted from None
        return  # a failure of its own (a disk that gave up) outranks the halt


class AttemptsFailed(TTCError):
    """No attempt succeeded (or a fatal error ended them): ``attempts`` were made and
    their failed attempts produced ``wasted`` output tokens (paid for all the same)."""

    def __init__(self, message: str, attempts: int, wasted: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.wasted = wasted


@dataclass(slots=True)
class Attempted(Generic[T]):
    """A call that succeeded: its result, the attempts it took, the output tokens its
    failed attempts wasted, and the latency of the successful attempt."""

    result: T
    attempts: int
    wasted: int
    latency: float


async def call_with_retries(
    call: Callable[[AttemptTokens], Awaitable[T]],
    *,
    sweep: SweepConfig,
    requests: RequestLimiter,
    tokens: TokenBucket,
    reserve: int,
    used: Callable[[T], int] | None = None,
    progress: SweepProgress | None = None,
    limit: AdaptiveLimit | None = None,
    writable: Callable[[], Awaitable[None]] | None = None,
    halt: Halt | None = None,
) -> Attempted[T]:
    """Run ``call`` under the policy in the module docstring; ``used(result)`` is the
    tokens a success settles the token bucket with (default: its input plus output
    tokens, as a ``Completion`` or an agent's ``Turn`` carries them)."""
    error, attempt, wasted = "no attempt made", 0, 0
    retry_after: float | None = None
    while attempt < sweep.max_attempts:
        attempt += 1
        reserved = False
        slot = None
        try:
            with halt.waiting() if halt is not None else _NOT_HALTED:
                if attempt > 1:
                    await asyncio.sleep(backoff(sweep, attempt - 1, retry_after))
                if writable is not None:
                    await writable()
                if requests.limited:
                    await requests.acquire()
                if tokens.limited:
                    await tokens.reserve(reserve)
                reserved = True
                slot = await limit.acquire() if limit is not None else None
        except Halted:
            if reserved:
                tokens.settle(reserve, 0)
            if attempt == 1:
                raise
            raise AttemptsFailed(f"{error} (not retried: the sweep stopped)", attempt - 1,
                                 wasted) from None
        started = time.perf_counter()
        live = AttemptTokens(progress)
        try:
            with attempt_deadline(sweep.timeout_s):
                result = await call(live)
        except (RetryableError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                exc = RequestTimeoutError(f"no response within {sweep.timeout_s:g}s",
                                          output_tokens=live.output_tokens)
            if slot is not None:
                slot.done(exc)
            wasted += exc.output_tokens
            tokens.settle(reserve, exc.output_tokens)
            error = str(exc)
            retry_after = exc.retry_after
            continue
        except FatalAPIError as exc:
            if slot is not None:
                slot.done(exc)
            wasted += exc.output_tokens
            tokens.settle(reserve, exc.output_tokens)
            # bad key, unknown model, a redirect, or a backend that died (no HTTP
            # status): every further request would fail the same way
            if exc.status in (401, 403, 404, None) or isinstance(exc, RedirectRefusedError):
                raise SweepAborted(str(exc), status=exc.status, output_tokens=wasted,
                                   attempts=attempt) from None
            raise AttemptsFailed(str(exc), attempt, wasted) from None
        except BaseException:
            if slot is not None:
                slot.done()
            raise
        finally:
            live.close()
        if slot is not None:
            slot.done()
        latency = time.perf_counter() - started
        tokens.settle(reserve, used(result) if used is not None else _usage(result))
        return Attempted(result, attempt, wasted, latency)
    raise AttemptsFailed(error, attempt, wasted)


#: the ``waiting`` block of a call that no ``Halt`` stops
_NOT_HALTED = contextlib.nullcontext()


def backoff(sweep: SweepConfig, attempt: int, hint: float | None) -> float:
    """Seconds to wait before attempt ``attempt + 1``."""
    ceiling = min(sweep.backoff_max_s, sweep.backoff_base_s * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if hint is not None:
        delay = max(delay, min(hint, sweep.backoff_max_s * 5))
    return delay


def _usage(result: object) -> int:
    return int(getattr(result, "input_tokens", 0)) + int(getattr(result, "output_tokens", 0))
