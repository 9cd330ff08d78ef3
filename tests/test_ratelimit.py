"""Request and token rate limits hold their rates without blocking forever.

Measured on a virtual clock: the event loop's selector advances time by exactly the
wait it was asked for instead of sleeping, and the limiters' ``time.monotonic`` reads
the same clock. So the waits asserted below are the limiters' arithmetic, exact and
independent of how loaded the machine is (their real-time cost is not a test's
business; see benchmarks/).
"""

from __future__ import annotations

import asyncio
import selectors
import types
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import asyncio_throttle.throttler
import pytest

import ttc.ratelimit
from ttc.ratelimit import RequestLimiter, TokenBucket


class _VirtualTime(selectors.DefaultSelector):
    """A selector that never blocks: waiting ``t`` seconds moves the clock ``t`` on."""

    now = 1000.0

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = super().select(0)
        if not ready and timeout:
            self.now += timeout
        return ready


class _VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self, clock: _VirtualTime) -> None:
        super().__init__(clock)
        self._clock = clock

    def time(self) -> float:
        return self._clock.now


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Awaitable[Any]], Any]]:
    """``run(coro)`` on the virtual clock; returns ``(result, virtual seconds taken)``."""
    clock = _VirtualTime()
    fake_time = types.SimpleNamespace(monotonic=lambda: clock.now)
    monkeypatch.setattr(ttc.ratelimit, "time", fake_time)
    monkeypatch.setattr(asyncio_throttle.throttler, "time", fake_time)
    loop = _VirtualLoop(clock)

    def go(coro: Awaitable[Any]) -> Any:
        started = clock.now
        result = loop.run_until_complete(coro)
        return result, clock.now - started

    try:
        yield go
    finally:
        loop.close()


def test_token_bucket_waits_out_its_debt(run: Callable[[Awaitable[Any]], Any]) -> None:
    async def main() -> TokenBucket:
        bucket = TokenBucket(600)  # 10 tokens per second, 600 up front
        await bucket.reserve(600)
        await bucket.reserve(5)  # goes 5 into debt without waiting
        return bucket

    bucket, took = run(main())
    assert took == 0
    _, waited = run(bucket.reserve(1))  # must wait until the debt is repaid: 5 tokens, 0.5 s
    assert waited == pytest.approx(0.5)


def test_settle_returns_unused_reservation(run: Callable[[Awaitable[Any]], Any]) -> None:
    async def main() -> TokenBucket:
        bucket = TokenBucket(600)
        await bucket.reserve(700)  # 100 in debt
        bucket.settle(reserved=700, used=550)  # 150 unused come back: 50 in credit
        return bucket

    bucket, _ = run(main())
    assert run(bucket.reserve(1))[1] == 0


def test_unlimited_is_free_and_request_limiter_spreads_starts(
    run: Callable[[Awaitable[Any]], Any]
) -> None:
    async def main(limiter: RequestLimiter, n: int) -> None:
        await asyncio.gather(*(limiter.acquire() for _ in range(n)))

    assert run(main(RequestLimiter(0), 1000))[1] == 0
    # 30 starts at 600/min (one per 100 ms) take about 3 s, not one burst
    _, elapsed = run(main(RequestLimiter(600), 30))
    assert 2.9 <= elapsed <= 3.3
