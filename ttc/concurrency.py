"""Adaptive concurrency: fewer requests in flight while the provider says "slow down".

A fixed ``sweep.concurrency`` is either too low for a generous tier or too high for a
busy one; too high turns into a 429/529 storm where every request waits out backoff
and some exhaust their attempts. Like inspect_ai's adaptive connections, the limit
here starts at ``sweep.concurrency`` (the ceiling, never exceeded), is cut
multiplicatively when the provider refuses with 429, 529 or 503 (``RateLimitError``,
``OverloadedError``), and grows back additively once it has been quiet.

Three choices keep it from over-reacting:

* One storm cuts once per window, not once per refused request: each slot remembers
  the limit's *generation* when it was taken, and only answers to requests sent under
  the current limit count (32 requests in flight when the first 429 arrives say
  nothing about the new, lower limit). This is TCP's one cut per window, with no
  timer to tune.
* A cut needs a storm, not noise: at least two refusals and at least
  ``OVERLOAD_SHARE`` of the window's answers. A provider that refuses a steady few
  percent whatever the load (Anthropic's 529 on a busy day) would otherwise pin a
  long sweep at one request in flight for hours.
* Growth needs a quiet period: ``quiet_s`` since the last change, and a full round of
  ``limit`` answers with at most ``CLEAN_SHARE`` refused; each step adds 10% (at least
  one slot).

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
    #: share of a window's answers refused (429/529/503) that makes a storm
    OVERLOAD_SHARE = 0.2
    #: at most this share refused in a round for the limit to grow
    CLEAN_SHARE = 0.05
    #: seconds since the last change before the limit may grow again
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
        #: overload answers seen (every one, whether it cut or not)
        self.overloaded = 0
        self.history: list[LimitChange] = []
        self._generation = 0
        self._answers = 0  # answers to slots of the current generation (errors aside)
        self._refused = 0  # of which 429/529/503
        self._changed_at = -math.inf
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
        refused = is_overload(exc)
        self.overloaded += refused
        if self.enabled and slot.generation == self._generation and (refused or exc is None):
            self._answers += 1
            self._refused += refused
            self._adjust(refused)
        self._wake()

    def _wake(self) -> None:
        while self.in_flight < self.limit and self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                self.in_flight += 1
                future.set_result(None)

    def _adjust(self, refused: bool) -> None:
        if refused:
            if self._refused >= 2 and self._refused >= self.OVERLOAD_SHARE * self._answers:
                new = max(self.floor, min(self.limit - 1, math.floor(self.limit * self.DECREASE)))
                if new < self.limit:
                    self._set(new, "overload")
                else:  # a storm at the floor: nothing to cut, but the quiet clock restarts
                    self._new_window(changed=True)
            return
        quiet = self._clock() - self._changed_at >= self.quiet_s
        clean = self._refused <= self.CLEAN_SHARE * self._answers
        if self.limit < self.ceiling and quiet and clean and self._answers >= self.limit:
            step = max(1, math.floor(self.limit * self.GROWTH))
            self._set(min(self.ceiling, self.limit + step), "recover")
        elif self._answers >= 2 * max(self.limit, 8):
            self._new_window(changed=False)  # judge the recent past, not the whole sweep

    def _new_window(self, *, changed: bool) -> None:
        """Count afresh, for requests sent from now on."""
        self._generation += 1
        self._answers = self._refused = 0
        if changed:
            self._changed_at = self._clock()

    def _set(self, new: int, reason: str) -> None:
        """Change the limit and open a new window: only requests sent under it count."""
        now = self._clock()
        self.history.append(LimitChange(now, self.limit, new, reason))
        if len(self.history) > self.HISTORY:
            del self.history[0]
        self.limit = new
        self.min_limit = min(self.min_limit, new)
        self._new_window(changed=True)
