"""Per-attempt time limits on shared, coarse timers.

`asyncio.timeout` pushes and later pops one heap entry per use, comparing `TimerHandle`s in
Python; on a hot path of thousands of requests a second that is a visible cost. Here, every
attempt whose limit ends in the same `resolution` window shares one timer. A limit is never
shorter than asked, and at most `resolution` longer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

__all__ = ["AttemptTimers", "DeadlinePassed", "Expiry", "within"]


class Expiry:
    """One armed limit. Call `disarm()` when the attempt ends, however it ends."""

    __slots__ = ("_cancelling", "_slot", "_task", "_timers", "fired")

    def __init__(self, task: asyncio.Task[object], timers: AttemptTimers, slot: int) -> None:
        self._task = task
        self._cancelling = task.cancelling()
        self._timers = timers
        self._slot = slot
        self.fired = False

    def disarm(self) -> None:
        """Stop watching this attempt."""
        self._timers._disarm(self)

    def caused(self) -> bool:
        """After a `CancelledError`: True if this limit cancelled the task (the cancellation
        is then taken back, as `asyncio.timeout` does); False if someone else cancelled it."""
        return self.fired and self._task.uncancel() <= self._cancelling


class AttemptTimers:
    """Arms limits for attempts running on one event loop."""

    __slots__ = ("_buckets", "_handles", "_resolution")

    def __init__(self, resolution: float = 0.005) -> None:
        self._resolution = resolution
        self._buckets: dict[int, set[Expiry]] = {}
        self._handles: dict[int, asyncio.TimerHandle] = {}

    def arm(self, delay: float | None) -> Expiry | None:
        """Cancel the current task after `delay` seconds unless disarmed; None: no limit."""
        if delay is None:
            return None
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a time limit needs a running task")
        loop = task.get_loop()
        slot = math.ceil((loop.time() + delay) / self._resolution)
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = set()
            self._handles[slot] = loop.call_at(slot * self._resolution, self._fire, slot)
        expiry = Expiry(task, self, slot)
        bucket.add(expiry)
        return expiry

    def _disarm(self, expiry: Expiry) -> None:
        bucket = self._buckets.get(expiry._slot)
        if bucket is None:  # already fired
            return
        bucket.discard(expiry)
        if not bucket:
            # The last one out cancels the timer, so nothing outlives the attempts.
            del self._buckets[expiry._slot]
            self._handles.pop(expiry._slot).cancel()

    def _fire(self, slot: int) -> None:
        del self._handles[slot]
        for expiry in self._buckets.pop(slot):
            expiry.fired = True
            expiry._task.cancel()


class DeadlinePassed(Exception):
    """`within`'s deadline passed before the awaitable was done (it was cancelled)."""


async def within(
    awaitable: Awaitable[T],
    deadline_at: float | None,
    *,
    timers: AttemptTimers,
    clock: Callable[[], float],
) -> T:
    """Await `awaitable` until `deadline_at` (a time of `clock`; None: no limit).

    Raises `DeadlinePassed` when the deadline cancelled it; a cancellation from elsewhere
    propagates as it is.
    """
    if deadline_at is None:
        return await awaitable
    expiry = timers.arm(max(deadline_at - clock(), 0.0))
    try:
        return await awaitable
    except asyncio.CancelledError:
        if expiry is None or not expiry.caused():
            raise
        raise DeadlinePassed from None
    finally:
        if expiry is not None:
            expiry.disarm()
