"""Adversary: a flatten cancelled by its caller.

Promise (design.md "Fine points"): the deadline bounds everything a call waits for, the hub
included; "a caller that gives up (cancellation, timeout)" is let go: workers are cancelled
and awaited before the CancelledError propagates. `cancel_all_orders` honours a cancellation
at once; flatten must too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from frontoffice_async import FrontOfficeClient
from frontoffice_async.testing import FaultPlan, FrontOfficeSimulator, HubFault

from ..support import library_tasks
from ._platform import ACCOUNT, TOKEN, Platform, message


async def test_cancelling_a_flatten_is_prompt_while_the_orders_hub_is_silent(
    frontoffice_simulator_factory: Any,
) -> None:
    """Both hub streams hang (pings, no snapshot). The caller cancels flatten at 0.3 s. The
    account task was awaiting the positions snapshot; `_read_and_cancel` then waits
    (`asyncio.wait([orders_pass])`) for the orders pass, which nobody cancels, so the
    cancellation takes the rest of `snapshot_timeout` (here 4 s; with
    `snapshot_timeout=None`, forever; and if the snapshot arrives meanwhile, its cancels are
    sent after the caller gave up)."""
    sim: FrontOfficeSimulator = await frontoffice_simulator_factory(
        faults=FaultPlan(hub_rates={HubFault.silence(): 1.0})
    )
    sim.add_orders(5)
    sim.add_positions(2)
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
        task = asyncio.create_task(c.flatten(snapshot_timeout=4.0))
        await asyncio.sleep(0.3)
        started = time.monotonic()
        task.cancel()
        done, _ = await asyncio.wait([task], timeout=6.0)
        took = time.monotonic() - started
    assert done and task.cancelled()
    assert took < 1.0, f"the cancellation took {took:.2f}s"


async def test_no_snapshot_outlives_a_flatten_whose_final_snapshots_failed() -> None:
    """The last pair of snapshots (a dry run, or after the last round) is read with a plain
    `asyncio.gather`: when the OpenOrders snapshot fails (an error Completion) the
    OpenPositions one is not cancelled. flatten returns at once and leaves that snapshot
    running, with its websocket and pinger, until its own timeout (forever with
    `snapshot_timeout=None`); its result, or error, is never retrieved, and with a journal it
    would write after the `summary` line."""
    platform = Platform(
        streams={
            "OpenOrders": [[message({"type": 3, "invocationId": "0", "error": "boom"})]],
            "OpenPositions": [["hang"]],
        }
    )
    await platform.start()
    try:
        async with FrontOfficeClient(platform.url, token=TOKEN, account_id=ACCOUNT) as client:
            result = await client.flatten(dry_run=True, snapshot_timeout=None)
            assert result.accounts[ACCOUNT].error is not None
            await asyncio.sleep(0.2)
            left = [t.get_coro().__qualname__ for t in library_tasks()]  # type: ignore[union-attr]
            assert not left, f"still running after flatten returned: {left}"
    finally:
        await platform.aclose()
