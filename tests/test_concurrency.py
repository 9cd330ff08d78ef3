"""Adaptive concurrency on a deterministic clock: cut on 429/529, one cut per episode,
floor and ceiling, growth only after a quiet period, first come first served."""

from __future__ import annotations

import asyncio

import pytest

from ttc.concurrency import AdaptiveLimit, is_overload
from ttc.errors import (
    FatalAPIError,
    OverloadedError,
    RateLimitError,
    ServerError,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def take(limit: AdaptiveLimit, n: int) -> list:
    async def go() -> list:
        return [await limit.acquire() for _ in range(n)]

    return asyncio.run(go())


def test_overload_kinds() -> None:
    assert is_overload(RateLimitError("429", status=429))
    assert is_overload(OverloadedError("529", status=529))
    assert not is_overload(ServerError("500", status=500))
    assert not is_overload(FatalAPIError("400", status=400))
    assert not is_overload(None)


def test_one_cut_per_episode_then_cuts_again_for_new_requests() -> None:
    clock = Clock()
    limit = AdaptiveLimit(32, clock=clock)
    slots = take(limit, 32)
    # the whole first window answers 429: one cut (at the second refusal), not 32
    for slot in slots:
        slot.done(RateLimitError("429", status=429))
    assert limit.limit == 24 and limit.overloaded == 32
    # requests sent after the cut that are still refused cut again
    second = take(limit, 24)
    for slot in second:
        slot.done(OverloadedError("529", status=529))
    assert limit.limit == 18
    # repeated storms walk down to the floor and stop there
    for _ in range(20):
        for slot in take(limit, limit.limit):
            slot.done(RateLimitError("429", status=429))
    assert limit.limit == 1 == limit.min_limit
    assert [c.reason for c in limit.history] == ["overload"] * len(limit.history)


def test_other_errors_neither_cut_nor_count_as_success() -> None:
    clock = Clock()
    limit = AdaptiveLimit(8, clock=clock, quiet_s=10)
    for slot in take(limit, 8):
        slot.done(ServerError("500", status=500))
    assert limit.limit == 8 and limit.overloaded == 0


def test_background_refusals_are_noise_not_a_storm() -> None:
    """A provider refusing 1 in 20 whatever the load (a busy day's 529s) keeps the limit;
    a single 429 does not cut either."""
    clock = Clock()
    limit = AdaptiveLimit(32, clock=clock)
    for i in range(400):
        [slot] = take(limit, 1)
        slot.done(OverloadedError("529", status=529) if i % 20 == 7 else None)
    assert limit.limit == 32 and limit.overloaded == 20 and limit.history == []


def test_growth_needs_a_quiet_period_and_a_clean_round() -> None:
    clock = Clock()
    limit = AdaptiveLimit(40, clock=clock, quiet_s=30)
    for slot in take(limit, 2):
        slot.done(RateLimitError("429", status=429))
    assert limit.limit == 30
    # a full clean round inside the quiet period changes nothing
    clock.now += 29
    for slot in take(limit, 30):
        slot.done()
    assert limit.limit == 30
    clock.now += 2  # quiet for 31 s now: the next answer completes a clean round
    take(limit, 1)[0].done()
    assert limit.limit == 33
    # a round with too many refusals (but no storm) does not grow
    clock.now += 31
    for i in range(33):
        take(limit, 1)[0].done(RateLimitError("429", status=429) if i in (3, 20) else None)
    assert limit.limit == 33
    # clean rounds grow it step by step, never past the ceiling
    for _ in range(20):
        clock.now += 31
        for slot in take(limit, limit.limit):
            slot.done()
    assert limit.limit == 40
    assert limit.history[-1].reason == "recover"


def test_disabled_limit_stays_at_the_ceiling() -> None:
    limit = AdaptiveLimit(16, enabled=False)
    for slot in take(limit, 16):
        slot.done(RateLimitError("429", status=429))
    assert limit.limit == 16 and limit.overloaded == 16 and limit.history == []


def test_waiters_are_served_in_order_and_never_above_the_limit() -> None:
    async def scenario() -> tuple[list[int], int]:
        limit = AdaptiveLimit(4)
        held = [await limit.acquire() for _ in range(4)]
        order: list[int] = []
        peak = 0

        async def waiter(i: int) -> None:
            nonlocal peak
            slot = await limit.acquire()
            order.append(i)
            peak = max(peak, limit.in_flight)
            await asyncio.sleep(0)
            slot.done()

        tasks = [asyncio.create_task(waiter(i)) for i in range(10)]
        await asyncio.sleep(0)
        held[0].done(RateLimitError("429", status=429))  # frees a slot for waiter 0
        held[1].done(RateLimitError("429", status=429))  # a storm: cut to 3
        await asyncio.sleep(0)
        assert limit.limit == 3 and limit.in_flight == 3
        for slot in held[2:]:
            slot.done()
        await asyncio.gather(*tasks)
        return order, peak

    order, peak = asyncio.run(scenario())
    assert order == list(range(10))
    assert peak <= 3


def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    async def scenario() -> int:
        limit = AdaptiveLimit(1)
        first = await limit.acquire()
        doomed = asyncio.create_task(limit.acquire())
        later = asyncio.create_task(limit.acquire())
        await asyncio.sleep(0)
        first.done()  # wakes ``doomed``, which is cancelled before it runs
        doomed.cancel()
        slot = await asyncio.wait_for(later, 1)
        slot.done()
        slot.done()  # a second release is ignored
        return limit.in_flight

    assert asyncio.run(scenario()) == 0


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError):
        AdaptiveLimit(0)
    with pytest.raises(ValueError):
        AdaptiveLimit(4, floor=5)
