"""A client-wide, first-come-first-served request pacer.

Waiters queue in arrival order; the one at the head sleeps until the next slot, takes it, and
hands the head to the next. Slots follow a schedule (one every `1/rate` seconds from the
first), not the moment the previous one was taken: a sleep that wakes a little late does not
push every later slot back, so the rate is delivered. Two rules keep it from ever going over:
no more than `rate` slots are taken in any second (the times of the last ones are kept), and
slots missed by more than a short horizon (an event-loop stall) are skipped, not made up in a
burst. A waiter that gives up (cancelled, or its deadline cannot be met) leaves the queue at
once and frees its place. A 429 without `Retry-After` halves the rate for a while
(`slow_down`).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

__all__ = ["RateLimiter", "SlotTooLate"]

#: How late a slot may be taken and still count as on schedule (at least one interval): past
#: that, the loop stalled, and the slots it missed are skipped rather than made up.
CATCH_UP: Final = 0.01


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
        self._next_free = float("-inf")  # the next slot on the schedule
        # When the last slots were taken (at most `rate` of them): none may be taken before
        # the oldest of a full second's worth is a second old.
        self._taken: deque[float] = deque(maxlen=max(int(self.rate), 1))
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
        if not self._queue and now >= self._free_at():
            self._take(now)
            return
        interval = 1.0 / self.current_rate
        expected = max(now, self._free_at()) + interval * len(self._queue)
        if deadline is not None and expected > deadline:
            raise SlotTooLate
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._queue:
            turn.set_result(None)
        self._queue.append(turn)
        try:
            await turn  # until this caller is at the head of the queue
            while (wait := self._free_at() - self._clock()) > 0:
                if deadline is not None and self._clock() + wait > deadline:
                    raise SlotTooLate
                await self._sleep(wait)
            self._take(self._clock())
        finally:
            self._leave(turn)

    def slow_down(self) -> None:
        """The server said 429 without telling how long to wait: halve the rate for a while."""
        self._penalty_until = self._clock() + self._penalty_seconds

    def _free_at(self) -> float:
        """When the next slot may be taken: its time on the schedule, and not before a
        second has passed since the oldest of the last `rate` slots (in force) were taken."""
        free = self._next_free
        taken = self._taken
        allowed = max(int(self.current_rate), 1)
        if len(taken) >= allowed:
            free = max(free, taken[-allowed] + 1.0)
        return free

    def _take(self, now: float) -> None:
        interval = 1.0 / self.current_rate
        if now - self._next_free > max(interval, CATCH_UP):
            # The loop stalled past the slots on the schedule: skip them, start again now.
            self._next_free = now
        self._next_free += interval
        self._taken.append(now)

    def _leave(self, turn: asyncio.Future[None]) -> None:
        if self._queue and self._queue[0] is turn:
            self._queue.popleft()
        else:
            self._queue.remove(turn)  # gave up while queued: its place is free at once
        if self._queue and not self._queue[0].done():
            self._queue[0].set_result(None)
