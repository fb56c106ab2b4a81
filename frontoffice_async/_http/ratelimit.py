"""A client-wide, first-come-first-served request pacer.

Waiters queue in arrival order; the one at the head sleeps until the next slot, takes it, and
hands the head to the next. A slot is timed from when the previous one was really taken, so
after an event-loop stall the queue drains at the rate, never in a burst. A waiter that gives
up (cancelled, or its deadline cannot be met) leaves the queue at once and frees its place.
A 429 without `Retry-After` halves the rate for a while (`slow_down`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

__all__ = ["RateLimiter", "SlotTooLate"]


class SlotTooLate(Exception):
    """The caller's deadline comes before the slot it could get; nothing was booked."""


class RateLimiter:
    """At most `rate` requests per second, spaced evenly, served in arrival order."""

    def __init__(
        self,
        rate: float,
        *,
        penalty_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(f"rate_limit must be > 0 requests per second, got {rate!r}")
        if rate == float("inf"):
            raise ValueError("rate_limit must be finite; pass None for no limit")
        self.rate = float(rate)
        self._penalty_seconds = penalty_seconds
        self._penalty_until = float("-inf")
        self._next_free = float("-inf")  # when the next slot may be taken
        self._queue: deque[asyncio.Future[None]] = deque()
        self._clock = clock
        self._sleep = sleep

    @property
    def current_rate(self) -> float:
        """The rate in force now: halved while a 429 penalty lasts."""
        if self._clock() < self._penalty_until:
            return self.rate / 2
        return self.rate

    @property
    def waiting(self) -> int:
        """Callers queued for a slot."""
        return len(self._queue)

    async def acquire(self, deadline: float | None = None) -> None:
        """Wait for this caller's slot; `SlotTooLate` at once if it would come after
        `deadline` (a time of this limiter's clock)."""
        now = self._clock()
        if not self._queue and now >= self._next_free:
            self._take(now)
            return
        interval = 1.0 / self.current_rate
        expected = max(now, self._next_free) + interval * len(self._queue)
        if deadline is not None and expected > deadline:
            raise SlotTooLate
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._queue:
            turn.set_result(None)
        self._queue.append(turn)
        try:
            await turn  # until this caller is at the head of the queue
            while (wait := self._next_free - self._clock()) > 0:
                if deadline is not None and self._clock() + wait > deadline:
                    raise SlotTooLate
                await self._sleep(wait)
            self._take(self._clock())
        finally:
            self._leave(turn)

    def slow_down(self) -> None:
        """The server said 429 without telling how long to wait: halve the rate for a while."""
        self._penalty_until = self._clock() + self._penalty_seconds

    def _take(self, now: float) -> None:
        self._next_free = now + 1.0 / self.current_rate

    def _leave(self, turn: asyncio.Future[None]) -> None:
        if self._queue and self._queue[0] is turn:
            self._queue.popleft()
        else:
            self._queue.remove(turn)  # gave up while queued: its place is free at once
        if self._queue and not self._queue[0].done():
            self._queue[0].set_result(None)
