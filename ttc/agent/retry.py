"""One model call under the sweep's retry policy.

TO UNIFY WITH ``ttc.sampler.Sweep._sample`` (and ``Sweep._backoff``): this module is a
copy of that policy, kept here only while the sampler is being rewritten on another
branch. Everything below is shared, line for line in behaviour:

* ``sweep.max_attempts`` attempts; before each, one ``RequestLimiter.acquire`` and a
  ``TokenBucket.reserve`` of half the request's output cap, settled afterwards with
  the tokens actually used (on failure: ``exc.output_tokens``, what a cut stream cost);
* one ``asyncio.timeout(sweep.timeout_s)`` per attempt, the one total deadline (a
  timeout becomes ``RequestTimeoutError`` carrying the streamed tokens seen so far);
* a fresh ``AttemptTokens`` per attempt handed to the call (live progress), closed after;
* ``RetryableError``/timeout: back off ``backoff`` (exponential, full jitter in the
  upper half, the server's retry hint honoured up to 5 x ``backoff_max_s``), try again;
* ``FatalAPIError`` with status 401/403/404/None or a refused redirect: ``SweepAborted``
  (every further request would fail alike); any other fatal error ends the call.

What differs is only the request and what a failure becomes: the sampler stores a
failed sample, the agent loop pauses the trajectory. So the shared form is
``call_with_retries(call, ...)`` with ``call(live) -> Completion`` and
``AttemptsFailed`` for the caller to turn into its own record.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ttc.config import SweepConfig
from ttc.errors import (
    FatalAPIError,
    RedirectRefusedError,
    RequestTimeoutError,
    RetryableError,
    TTCError,
)
from ttc.progress import AttemptTokens, SweepProgress
from ttc.providers.base import Completion
from ttc.ratelimit import RequestLimiter, TokenBucket
from ttc.sampler import SweepAborted

__all__ = ["AttemptsFailed", "backoff", "call_with_retries"]

C = TypeVar("C", bound=Completion)


class AttemptsFailed(TTCError):
    """No attempt succeeded (or a fatal error ended them); ``attempts`` were made."""

    def __init__(self, message: str, attempts: int) -> None:
        super().__init__(message)
        self.attempts = attempts


async def call_with_retries(
    call: Callable[[AttemptTokens], Awaitable[C]],
    *,
    sweep: SweepConfig,
    requests: RequestLimiter,
    tokens: TokenBucket,
    reserve: int,
    progress: SweepProgress | None = None,
) -> tuple[C, int, float]:
    """``(result, attempts, latency of the successful attempt)``; see the module docstring."""
    error, attempt = "no attempt made", 0
    while attempt < sweep.max_attempts:
        attempt += 1
        await requests.acquire()
        await tokens.reserve(reserve)
        started = time.perf_counter()
        live = AttemptTokens(progress)
        try:
            async with asyncio.timeout(sweep.timeout_s):
                result = await call(live)
        except (RetryableError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                exc = RequestTimeoutError(f"no response within {sweep.timeout_s:g}s",
                                          output_tokens=live.output_tokens)
            tokens.settle(reserve, exc.output_tokens)
            error = str(exc)
            if attempt < sweep.max_attempts:
                await asyncio.sleep(backoff(sweep, attempt, exc.retry_after))
            continue
        except FatalAPIError as exc:
            tokens.settle(reserve, exc.output_tokens)
            if exc.status in (401, 403, 404, None) or isinstance(exc, RedirectRefusedError):
                raise SweepAborted(str(exc), status=exc.status) from None
            raise AttemptsFailed(str(exc), attempt) from None
        finally:
            live.close()
        tokens.settle(reserve, result.input_tokens + result.output_tokens)
        return result, attempt, time.perf_counter() - started
    raise AttemptsFailed(error, attempt)


def backoff(sweep: SweepConfig, attempt: int, hint: float | None) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``Sweep._backoff``)."""
    ceiling = min(sweep.backoff_max_s, sweep.backoff_base_s * 2 ** (attempt - 1))
    delay = random.uniform(ceiling / 2, ceiling)
    if hint is not None:
        delay = max(delay, min(hint, sweep.backoff_max_s * 5))
    return delay
