"""The shared per-attempt timers: fire on time, never early, never swallow a foreign cancel."""

from __future__ import annotations

import asyncio

import pytest

from frontoffice_async._http.timers import AttemptTimers


async def guarded(timers: AttemptTimers, delay: float, work: float) -> str:
    """Run `work` seconds under a limit of `delay`; the middleware's own pattern."""
    expiry = timers.arm(delay)
    assert expiry is not None
    try:
        await asyncio.sleep(work)
    except asyncio.CancelledError:
        if not expiry.caused():
            raise
        return "timed out"
    finally:
        expiry.disarm()
    return "done"


async def test_limit_fires_and_is_not_early() -> None:
    loop = asyncio.get_running_loop()
    timers = AttemptTimers(resolution=0.005)
    started = loop.time()
    assert await guarded(timers, 0.02, 10) == "timed out"
    assert loop.time() - started >= 0.02


async def test_work_within_the_limit_is_untouched_and_leaves_no_timer() -> None:
    timers = AttemptTimers()
    results = await asyncio.gather(*(guarded(timers, 5, 0.001) for _ in range(50)))
    assert results == ["done"] * 50
    assert timers._buckets == {}
    assert timers._handles == {}


async def test_attempts_share_one_timer_per_window() -> None:
    timers = AttemptTimers(resolution=60.0)
    expiries = [timers.arm(1.0) for _ in range(10)]
    assert len(timers._handles) == 1
    for expiry in expiries:
        assert expiry is not None
        expiry.disarm()
    assert timers._handles == {}


async def test_a_foreign_cancel_is_not_swallowed() -> None:
    timers = AttemptTimers()
    task = asyncio.create_task(guarded(timers, 5, 10))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_no_limit_means_no_timer() -> None:
    assert AttemptTimers().arm(None) is None


def test_arming_needs_a_task() -> None:
    with pytest.raises(RuntimeError, match="running"):
        AttemptTimers().arm(1.0)
