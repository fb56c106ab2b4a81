"""The client-wide rate limiter, on an injected clock: order, pacing, deadlines, give-ups."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from frontoffice_async._http.ratelimit import RateLimiter, SlotTooLate

from ..support import FakeClock


class StallingClock(FakeClock):
    """A fake clock whose sleeps record what was asked and may oversleep (a stalled loop)."""

    def __init__(self) -> None:
        super().__init__(0.0)
        self.asked: list[float] = []
        self.oversleep = 0.0

    async def sleep(self, seconds: float) -> None:
        self.asked.append(seconds)
        self.now += seconds + self.oversleep
        self.oversleep = 0.0
        await asyncio.sleep(0)


async def acquire_all(limiter: RateLimiter, clock: FakeClock, n: int) -> list[float]:
    """Start `n` acquirers at once; the clock time at which each got its slot."""
    times: list[float] = []

    async def take() -> None:
        await limiter.acquire()
        times.append(clock.now)

    await asyncio.gather(*(take() for _ in range(n)))
    return times


async def test_requests_are_spaced_in_arrival_order() -> None:
    clock = StallingClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    order: list[int] = []

    async def take(n: int) -> None:
        await limiter.acquire()
        order.append(n)

    await asyncio.gather(*(take(n) for n in range(5)))
    assert order == [0, 1, 2, 3, 4]
    assert clock.now == pytest.approx(0.4)  # slots 0.0, 0.1, ..., 0.4


async def test_a_waiter_that_gives_up_frees_its_place_at_once() -> None:
    clock = StallingClock()
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    await limiter.acquire()  # the slot at 0.0; the next is at 0.1
    # 1,000 callers queue behind it, then give up (their caller was cancelled).
    quitters = [asyncio.create_task(limiter.acquire()) for _ in range(1000)]
    await asyncio.sleep(0)
    for task in quitters:
        task.cancel()
    await asyncio.gather(*quitters, return_exceptions=True)
    assert limiter.waiting == 0
    # The next caller gets the very next slot, not one 100 s away.
    await limiter.acquire()
    assert clock.now == pytest.approx(0.1)


async def test_no_burst_after_an_event_loop_stall() -> None:
    clock = StallingClock()
    limiter = RateLimiter(50, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.oversleep = 1.0  # the next sleep overruns by a second: the loop was blocked
    times = await acquire_all(limiter, clock, 55)
    # After the stall the queue drains at the rate (0.02 s apart), not all at once.
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) == pytest.approx(0.02)
    assert sum(1 for t in times if t < times[0] + 0.1) <= 6


async def test_a_slot_after_the_deadline_is_refused_without_booking() -> None:
    clock = StallingClock()
    limiter = RateLimiter(1, clock=clock, sleep=clock.sleep)
    await limiter.acquire()  # next slot at 1.0
    with pytest.raises(SlotTooLate):
        await limiter.acquire(deadline=0.5)
    assert limiter.waiting == 0
    await limiter.acquire(deadline=1.0)  # the refused call booked nothing
    assert clock.now == pytest.approx(1.0)


async def test_a_429_without_retry_after_halves_the_rate_for_a_while() -> None:
    clock = StallingClock()
    limiter = RateLimiter(10, penalty_seconds=5.0, clock=clock, sleep=clock.sleep)
    limiter.slow_down()
    assert limiter.current_rate == 5.0
    await acquire_all(limiter, clock, 3)
    assert clock.now == pytest.approx(0.4)  # 0.2 s apart while the penalty lasts
    clock.advance(5.0)
    assert limiter.current_rate == 10.0


@pytest.mark.parametrize("rate", [0, -1, float("nan"), float("inf"), True])
def test_bad_rates_are_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_limit"):
        RateLimiter(rate)


# --- the schedule: the rate is delivered, never exceeded --------------------------------------


class LateClock(FakeClock):
    """A fake clock whose every sleep wakes late by the next of `late` (as a busy loop does)."""

    def __init__(self, late: list[float]) -> None:
        super().__init__(0.0)
        self._late = itertools.cycle(late)

    async def sleep(self, seconds: float) -> None:
        self.now += seconds + next(self._late)
        await asyncio.sleep(0)


@pytest.mark.parametrize("rate", [500, 1000])
@pytest.mark.parametrize(
    "late",
    [
        pytest.param([0.0003], id="0.3ms-late"),
        pytest.param([0.0001, 0.0015, 0.0004, 0.003, 0.0], id="jitter-up-to-3ms"),
        pytest.param([0.0], id="on-time"),
    ],
)
async def test_the_rate_is_delivered_and_never_exceeded(rate: int, late: list[float]) -> None:
    clock = LateClock(late)
    limiter = RateLimiter(rate, clock=clock, sleep=clock.sleep)
    seconds = 4
    times = await acquire_all(limiter, clock, rate * seconds + 1)
    start = times[0]
    delivered = sum(1 for t in times if t < start + seconds)
    assert delivered >= 0.97 * rate * seconds, f"{delivered / (rate * seconds):.1%}"
    # No second holds more than `rate` slots: the (rate+1)-th after any slot is a second later.
    assert all(b - a >= 1.0 - 1e-9 for a, b in zip(times, times[rate:], strict=False))


async def test_slots_follow_the_schedule_not_the_moment_they_were_taken() -> None:
    clock = LateClock([0.004])  # every sleep wakes 4 ms late: under 10 ms, so no stall
    limiter = RateLimiter(10, clock=clock, sleep=clock.sleep)
    times = await acquire_all(limiter, clock, 11)
    # 0.0, then 0.1 + 0.004, 0.2 + 0.004, ...: lateness does not add up.
    assert times[10] == pytest.approx(1.004)


async def test_a_stall_skips_the_slots_it_missed() -> None:
    clock = StallingClock()
    limiter = RateLimiter(100, clock=clock, sleep=clock.sleep)
    await limiter.acquire()
    clock.advance(0.5)  # the loop was blocked for 50 slots
    times = await acquire_all(limiter, clock, 5)
    assert times == pytest.approx([0.5, 0.51, 0.52, 0.53, 0.54])  # not 5 at once
