"""Adaptive concurrency: fewer requests in flight while the provider says "slow down".

A fixed ``sweep.concurrency`` is either too low for a generous tier or too high for a
busy one; too high turns into a 429/529 storm where every request waits out backoff
and some exhaust their attempts. Like inspect_ai's adaptive connections, the limit
here starts at ``sweep.concurrency`` (the ceiling, never exceeded), is cut
multiplicatively when an attempt is answered 429, 529 or 503 (``RateLimitError``,
``OverloadedError``), and grows back additively once the provider has been quiet.

One storm must not cut the limit once per failed request: 32 requests in flight when
the first 429 arrives will mostly fail too, and they say nothing about the new,
lower limit. Each slot remembers the limit's *generation* when it was taken; an
overload from a slot taken before the last cut is counted but cuts nothing (TCP's
one cut per window, without a timer to tune). Growth needs ``quiet_s`` without any
overload, then ``limit`` clean completions per step of +10% (at least 1).

Token-rate limits (``ttc.ratelimit``) apply on top: this bounds requests in flight,
they bound requests and tokens per minute.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ttc.errors import OverloadedError, RateLimitError

__all__ = ["AdaptiveLimit", "LimitChange", "Slot", "is_overload"]


def is_overload(exc: BaseException | None) -> bool:
    """Whether an attempt's failure means "too much load": 429, 529 or 503."""
    return isinstance(exc, (RateLimitError, OverloadedError))


@dataclass(frozen=True, slots=True)
class LimitChange:
    at: float
    old: int
    new: int
    reason: str  # "overload" | "recover"


class Slot:
    """One request in flight; ``done(exc)`` gives it back with the attempt's outcome."""

    __slots__ = ("_limit", "generation", "_open")

    def __init__(self, limit: AdaptiveLimit, generation: int) -> None:
        self._limit = limit
        self.generation = generation
        self._open = True

    def done(self, exc: BaseException | None = None) -> None:
        """Release the slot: ``exc=None`` for a success, else the attempt's error."""
        if self._open:
            self._open = False
            self._limit._release(self, exc)


class AdaptiveLimit:
    """An in-flight request limit between ``floor`` and ``ceiling`` that follows 429s.

    ``enabled=False`` keeps the limit at ``ceiling`` (a plain counter). ``clock`` is
    injectable so tests step time deterministically.
    """

    #: multiplicative cut on an overload episode
    DECREASE = 0.75
    #: seconds without any overload before the limit may grow again
    QUIET_S = 30.0
    #: growth per step, as a share of the current limit (at least one slot)
    GROWTH = 0.10
    HISTORY = 500

    def __init__(
        self,
        ceiling: int,
        *,
        floor: int = 1,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        quiet_s: float | None = None,
    ) -> None:
        if ceiling < 1 or not 1 <= floor <= ceiling:
            raise ValueError(f"need 1 <= floor <= ceiling, got floor={floor}, ceiling={ceiling}")
        self.ceiling = ceiling
        self.floor = floor
        self.enabled = enabled
        self.quiet_s = self.QUIET_S if quiet_s is None else quiet_s
        self._clock = clock
        self.limit = ceiling
        self.min_limit = ceiling
        self.in_flight = 0
        #: overload answers seen (every one, cut or not)
        self.overloaded = 0
        self.history: list[LimitChange] = []
        self._generation = 0
        self._successes = 0
        self._last_overload = -math.inf
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> Slot:
        """Wait (first come, first served) for room under the current limit; take a slot."""
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
        else:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future  # ``_wake`` takes the slot on our behalf before waking us
            except BaseException:
                if future.done() and not future.cancelled():
                    self.in_flight -= 1  # woken, then cancelled: hand the slot on
                    self._wake()
                else:
                    self._waiters.remove(future)
                raise
        return Slot(self, self._generation)

    def _release(self, slot: Slot, exc: BaseException | None) -> None:
        self.in_flight -= 1
        if is_overload(exc):
            self._on_overload(slot.generation)
        elif exc is None:
            self._on_success()
        self._wake()

    def _wake(self) -> None:
        while self.in_flight < self.limit and self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

    def _on_overload(self, generation: int) -> None:
        self.overloaded += 1
        self._successes = 0
        self._last_overload = self._clock()
        if not self.enabled or generation < self._generation:
            return  # taken before the last cut: this episode is already answered
        new = max(self.floor, min(self.limit - 1, math.floor(self.limit * self.DECREASE)))
        if new < self.limit:
            self._set(new, "overload")
            self._generation += 1

    def _on_success(self) -> None:
        if not self.enabled or self.limit >= self.ceiling:
            return
        if self._clock() - self._last_overload < self.quiet_s:
            return
        self._successes += 1
        if self._successes >= self.limit:
            self._successes = 0
            step = max(1, math.floor(self.limit * self.GROWTH))
            self._set(min(self.ceiling, self.limit + step), "recover")

    def _set(self, new: int, reason: str) -> None:
        self.history.append(LimitChange(self._clock(), self.limit, new, reason))
        if len(self.history) > self.HISTORY:
            del self.history[0]
        self.limit = new
        self.min_limit = min(self.min_limit, new)
