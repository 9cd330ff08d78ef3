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
* one ``asyncio.timeout(sweep.timeout_s)`` per attempt, the one total deadline (a
  timeout becomes ``RequestTimeoutError`` carrying the streamed tokens seen so far);
* a fresh ``AttemptTokens`` per attempt handed to the call (live progress), closed after;
* ``RetryableError`` or a timeout: back off (exponential, full jitter in the upper
  half, the server's retry hint honoured up to 5 x ``backoff_max_s``), try again; the
  output tokens of every failed attempt are summed as ``wasted`` (paid, not in the answer);
* ``FatalAPIError`` with status 401/403/404/None or a refused redirect: ``SweepAborted``
  (every further request would fail alike); any other fatal error ends the call.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ttc.concurrency import AdaptiveLimit
from ttc.config import SweepConfig
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

__all__ = ["Attempted", "AttemptsFailed", "SweepAborted", "backoff", "call_with_retries"]

T = TypeVar("T")


class SweepAborted(APIError):
    """A fatal error that every further request would hit too (bad key, unknown model)."""


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
) -> Attempted[T]:
    """Run ``call`` under the policy in the module docstring; ``used(result)`` is the
    tokens a success settles the token bucket with (default: its input plus output
    tokens, as a ``Completion`` or an agent's ``Turn`` carries them)."""
    error, attempt, wasted = "no attempt made", 0, 0
    while attempt < sweep.max_attempts:
        attempt += 1
        if writable is not None:
            await writable()
        await requests.acquire()
        await tokens.reserve(reserve)
        slot = await limit.acquire() if limit is not None else None
        started = time.perf_counter()
        live = AttemptTokens(progress)
        try:
            async with asyncio.timeout(sweep.timeout_s):
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
            if attempt < sweep.max_attempts:
                await asyncio.sleep(backoff(sweep, attempt, exc.retry_after))
            continue
        except FatalAPIError as exc:
            if slot is not None:
                slot.done(exc)
            wasted += exc.output_tokens
            tokens.settle(reserve, exc.output_tokens)
            # bad key, unknown model, a redirect, or a backend that died (no HTTP
            # status): every further request would fail the same way
            if exc.status in (401, 403, 404, None) or isinstance(exc, RedirectRefusedError):
                raise SweepAborted(str(exc), status=exc.status) from None
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


def backoff(sweep: SweepConfig, attempt: int, hint: float | None) -> float:
    """Seconds to wait before attempt ``attempt + 1``."""
    ceiling = min(sweep.backoff_max_s, sweep.backoff_base_s * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if hint is not None:
        delay = max(delay, min(hint, sweep.backoff_max_s * 5))
    return delay


def _usage(result: object) -> int:
    return int(getattr(result, "input_tokens", 0)) + int(getattr(result, "output_tokens", 0))
