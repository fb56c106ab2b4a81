"""Adversary: one account's trouble delays another's emergency.

Promise (flatten.md): "One account's error never stops another"; `concurrency` bounds the
requests in flight for all accounts together.
"""

from __future__ import annotations

import time
from typing import Any

from frontoffice_async import CancelOutcome, FrontOfficeClient
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator


async def test_an_account_in_backoff_does_not_hold_the_shared_gate(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """Account A's cancels answer 503 with Retry-After: 2 (its shard is down). flatten's
    shared gate (`Binder.gate`, `concurrency` slots) is held around the whole cancel call,
    backoff sleeps included, so A's 8 cancels sleeping on Retry-After keep every slot and
    healthy account B's last cancel waits ~6 s for one, though nothing is in flight."""
    sim = frontoffice_simulator
    a, b = sim.account_ids
    slow = sim.add_orders(8, account_id=a)
    healthy = set(sim.add_orders(4, account_id=b))
    sim.faults = FaultPlan(scripts={o: [Fault.unavailable(retry_after=2)] * 3 for o in slow})
    started = time.monotonic()
    finished: dict[str, float] = {}

    def seen(outcome: CancelOutcome[Any]) -> None:
        if outcome.order_id in healthy:
            finished[outcome.order_id] = time.monotonic() - started

    async with FrontOfficeClient(sim.url, token=sim.token, account_id=a, concurrency=4) as c:
        await c.flatten(accounts="all", on_outcome=seen, close_positions=False)
    assert len(finished) == 4
    worst = max(finished.values())
    assert worst < 1.0, f"account B's last cancel finished after {worst:.2f}s"
