"""Adversary: `client.guard()`, the dead-man's switch.

Promises (docs/guard.md, design.md): an exception leaving the block flattens, a deliberate
stop ("the task cancelled") disarms; nothing hangs (the deadline bounds everything a call
waits for, the token provider included).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from typing import Any

import pytest

from frontoffice_async import FrontOfficeClient, FrontOfficeError, Guard, RetryPolicy
from frontoffice_async.testing import FrontOfficeSimulator

posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX sessions and signals")


@posix
async def test_a_cancelled_error_nobody_asked_for_disarms_the_guard(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The strategy dies of a `CancelledError` that nothing asked for (it read `.result()` of
    a cancelled future; aiohttp internals raise them too). The task is not being cancelled
    (`cancelling() == 0`): this is a failure of the strategy, which design.md treats as "an
    error of that source", not a deliberate stop. docs/guard.md: a deliberate stop is
    "`KeyboardInterrupt`, `SystemExit`, the task cancelled"; the bot then usually ends (the
    main task's error), leaving its account unguarded.

    Expected: the guard flattens (the 3 orders and the position closed, returncode 0).
    Happened: `Guard._flattens_on` (`_stop/guard.py`) takes any non-`Exception` for a
    deliberate stop without asking whether the task is being cancelled, so it sends a disarm:
    everything stays open and nothing watches the account any more."""
    sim = frontoffice_simulator
    account = sim.account_ids[0]
    sim.add_orders(3)
    sim.add_positions(1)
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    gone.cancel()
    async with FrontOfficeClient(
        sim.url, token=sim.token, account_id=account, snapshot_settle=0.05
    ) as client:
        with contextlib.suppress(asyncio.CancelledError):
            async with client.guard(timeout=5.0) as guard:
                assert guard.alive
                current = asyncio.current_task()
                assert current is not None and current.cancelling() == 0
                gone.result()  # the strategy's bug: a stray CancelledError
        current = asyncio.current_task()
        assert current is not None and current.cancelling() == 0  # nobody cancelled the test
    left = sim.open_order_ids(account) + sim.open_position_ids(account)
    assert not left, f"guard exited {guard.returncode} and left open: {left}"


async def test_entering_the_guard_with_a_token_provider_that_hangs_is_bounded(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The client's token provider never answers (a vault that hangs). Every call of the
    client is bounded by its retry policy's deadline, the provider included (design.md: "The
    deadline bounds everything a call waits for: ... token provider"), and `READY_TIMEOUT`'s
    comment says entering the guard is "bounded by the retry policy's deadline".

    Expected: `async with client.guard()` fails (an `APITimeoutError`, a `TokenProviderError`
    or a `GuardError`) about 1 s in (`deadline=1.0`). Happened: `Guard.__aenter__` awaits
    `self._tokens.credential()` with no bound before anything else, and waits forever (cut
    here after 5 s): the bot never starts, and never learns why."""
    sim = frontoffice_simulator
    never = asyncio.Event()

    async def provider() -> str:
        await never.wait()
        return sim.token

    policy = RetryPolicy(deadline=1.0)
    async with FrontOfficeClient(
        sim.url, token=provider, account_id=sim.account_ids[0], retry=policy
    ) as client:
        started = time.monotonic()
        guard = client.guard(timeout=5.0)
        try:
            await asyncio.wait_for(guard.__aenter__(), 5.0)
        except FrontOfficeError:
            pass  # a bounded, typed failure: right
        except TimeoutError:
            pytest.fail(f"guard.__aenter__ still waiting after {time.monotonic() - started:.1f}s")
        else:
            await guard.__aexit__(None, None, None)
            pytest.fail("entered with a token provider that never answered")
        assert time.monotonic() - started < 3.0


class StrategyFailed(Exception):
    """The bot's strategy raised."""


@posix
async def test_a_cancelled_exit_leaves_the_guards_watcher_task_running(
    frontoffice_simulator_factory: Any,
) -> None:
    """The strategy raises, so leaving the block has the guard flatten, and `__aexit__`
    waits for that flatten (a slow platform: 0.3 s a request). The bot is then stopped (its
    task cancelled: a second Ctrl-C, a supervisor's timeout) while `__aexit__` waits.

    Expected: the `CancelledError` propagates and nothing of the library is left running in
    the bot's loop (the guard process may finish its flatten on its own). Happened:
    `Guard._watch`, started with `asyncio.ensure_future` in `__aenter__`, is awaited only at
    the very end of `__aexit__` (`_stopped(self._watching, cancel=False)`), after
    `await process.wait()`; the cancellation skips it, so the watcher keeps reading the
    guard's stdout after the block is gone: a task leak (and the process is never reaped by
    this loop)."""
    sim: FrontOfficeSimulator = await frontoffice_simulator_factory(latency=0.3)
    sim.add_orders(3)
    guards: list[Guard] = []

    async def bot(client: FrontOfficeClient) -> None:
        async with client.guard(timeout=5.0) as guard:
            guards.append(guard)
            raise StrategyFailed

    async with FrontOfficeClient(
        sim.url, token=sim.token, account_id=sim.account_ids[0], snapshot_settle=0.05
    ) as client:
        task = asyncio.create_task(bot(client))
        try:
            while not [r for r in sim.requests if r.endpoint == "cancel_order"]:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, StrategyFailed):
                await task
            await asyncio.sleep(0)
            leaked = [
                repr(t)
                for t in asyncio.all_tasks()
                if not t.done() and "Guard." in repr(t.get_coro())
            ]
        finally:
            for guard in guards:
                if guard.pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(guard.pid, signal.SIGKILL)
            await asyncio.sleep(0.2)  # let the leaked watcher see the end of the pipe
    assert not leaked, f"tasks of the guard left running after the block: {leaked}"
