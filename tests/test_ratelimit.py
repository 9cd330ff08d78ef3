"""Request and token rate limits hold their rates without blocking forever."""

from __future__ import annotations

import asyncio
import time

from ttc.ratelimit import RequestLimiter, TokenBucket


def test_token_bucket_waits_out_its_debt() -> None:
    async def main() -> float:
        bucket = TokenBucket(600)  # 10 tokens per second, 600 up front
        await bucket.reserve(600)
        await bucket.reserve(5)  # goes 5 into debt without waiting
        started = time.monotonic()
        await bucket.reserve(1)  # must wait until the debt is repaid (~0.5 s)
        return time.monotonic() - started

    waited = asyncio.run(main())
    assert 0.4 < waited < 2.0


def test_settle_returns_unused_reservation() -> None:
    async def main() -> float:
        bucket = TokenBucket(600)
        await bucket.reserve(700)  # 100 in debt
        bucket.settle(reserved=700, used=550)  # 150 unused come back: 50 in credit
        started = time.monotonic()
        await bucket.reserve(1)
        return time.monotonic() - started

    assert asyncio.run(main()) < 0.1


def test_unlimited_is_free_and_request_limiter_spreads_starts() -> None:
    async def main(limiter: RequestLimiter, n: int) -> float:
        started = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(n)))
        return time.monotonic() - started

    assert asyncio.run(main(RequestLimiter(0), 1000)) < 0.5
    # 30 starts at 600/min (one per 100 ms) take about 3 s, not one burst
    elapsed = asyncio.run(main(RequestLimiter(600), 30))
    assert 2.5 < elapsed < 6.0
