"""Request-rate and token-rate limits shared by all sampler workers.

Requests per minute go through asyncio-throttle, spread evenly over the minute
rather than allowed as one burst. Tokens per minute use a bucket that may go into
debt: a request reserves its expected size up front, and the difference to the
real usage is settled when it completes, so long thinking runs are neither
blocked forever nor let through in a stampede.
"""

from __future__ import annotations

import asyncio
import math
import time

from asyncio_throttle import Throttler

__all__ = ["RequestLimiter", "TokenBucket"]


class RequestLimiter:
    """At most ``per_minute`` request starts per minute; 0 means unlimited."""

    def __init__(self, per_minute: int) -> None:
        self._throttler: Throttler | None = None
        if per_minute > 0:
            # windows of at least 20 ms: smooth, yet coarse enough for asyncio's timers
            burst = max(1, math.ceil(per_minute / 60 / 50))
            period = 60.0 * burst / per_minute
            self._throttler = Throttler(
                rate_limit=burst, period=period, retry_interval=min(0.01, period / 4)
            )

    @property
    def limited(self) -> bool:
        """Whether a rate is set (callers skip ``acquire`` on the hot path otherwise)."""
        return self._throttler is not None

    async def acquire(self) -> None:
        if self._throttler is not None:
            async with self._throttler:
                pass


class TokenBucket:
    """A token-per-minute budget; ``capacity`` tokens refill linearly over a minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._level = float(per_minute)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._level = min(
            float(self.per_minute), self._level + (now - self._stamp) * self.per_minute / 60.0
        )
        self._stamp = now

    @property
    def limited(self) -> bool:
        """Whether a rate is set (callers skip ``reserve`` on the hot path otherwise)."""
        return self.per_minute > 0

    async def reserve(self, tokens: int) -> None:
        """Wait until the bucket is out of debt, then take ``tokens``."""
        if not self.limited:
            return
        async with self._lock:
            self._refill()
            while self._level < 0:
                await asyncio.sleep(-self._level * 60.0 / self.per_minute)
                self._refill()
            self._level -= tokens

    def settle(self, reserved: int, used: int) -> None:
        """Correct a reservation once the real usage is known."""
        if self.limited:
            self._level += reserved - used
