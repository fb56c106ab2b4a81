"""A client-wide, first-come-first-served request pacer.

Each `acquire` books the next free slot (`1 / rate` seconds after the previous one), so
waiters are served in arrival order without a lock or a queue. A 429 without `Retry-After`
halves the rate for a while (`slow_down`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most `rate` requests per second on average, with a burst of `burst` requests."""

    def __init__(
        self,
        rate: float,
        *,
        burst: int = 1,
        penalty_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate_limit must be > 0 requests per second, got {rate!r}")
        self.rate = float(rate)
        self._burst_span = (burst - 1) / self.rate
        self._penalty_seconds = penalty_seconds
        self._penalty_until = float("-inf")
        self._next = float("-inf")
        self._clock = clock
        self._sleep = sleep

    @property
    def current_rate(self) -> float:
        """The rate in force now: halved while a 429 penalty lasts."""
        if self._clock() < self._penalty_until:
            return self.rate / 2
        return self.rate

    async def acquire(self) -> None:
        """Wait for this caller's slot."""
        now = self._clock()
        slot = max(now - self._burst_span, self._next)
        self._next = slot + 1.0 / self.current_rate
        if slot > now:
            await self._sleep(slot - now)

    def slow_down(self) -> None:
        """The server said 429 without telling how long to wait: halve the rate for a while."""
        self._penalty_until = self._clock() + self._penalty_seconds
