"""Adversary: flatten returns normally, but its result has fewer outcomes than ids it took.

Promise (design.md, "A CancelledError that the caller did not ask for"; bulk.md): every id
taken gets exactly one outcome, also when the call is aborted or `close()` is called from
another task; "Nothing returns normally with fewer outcomes than ids taken."
"""

from __future__ import annotations

import asyncio
from typing import Any

from frontoffice_async import CancelOutcome, FlattenError, FrontOfficeClient, RetryPolicy
from frontoffice_async.testing import FaultPlan, FrontOfficeSimulator, HubFault


async def test_orders_snapshot_failing_inside_its_window_keeps_the_cancels_it_sent(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The OpenOrders snapshot arrives, its cancels start on the first item, then an error
    Completion inside the settle window fails the snapshot. The cancels finish (the orders
    are gone, on_outcome saw 5 outcomes), but `result.accounts[a].orders` holds none of them:
    run_pass raises the snapshot's error and drops the pool's result."""
    sim = frontoffice_simulator
    account = sim.account_ids[0]
    sim.add_orders(5)
    sim.faults = FaultPlan(hub=[HubFault.fail_after_first(gap=0.05)])
    seen: list[CancelOutcome[Any]] = []
    async with FrontOfficeClient(
        sim.url, token=sim.token, account_id=account, snapshot_settle=0.3
    ) as client:
        result = await client.flatten(close_positions=False, on_outcome=seen.append)
    flat = result.accounts[account]
    sent = [r for r in sim.requests if r.endpoint == "cancel_order"]
    assert len(sent) == 5 and len(seen) == 5  # the cancels left and finished
    assert flat.error is not None  # the snapshot's failure is reported: fine
    # ... but the result does not say what became of the 5 orders it cancelled.
    assert len(flat.orders) == len(sent), (
        f"{len(sent)} cancels sent, {len(flat.orders)} outcomes in the returned result"
    )


async def test_close_during_flatten_keeps_every_outcome_in_the_result(
    frontoffice_simulator_factory: Any,
) -> None:
    """`close()` from another task while the stop-order cancels run: flatten returns normally
    (the account's error is ClientClosedError), the stop-order cancels already sent finished
    and reached on_outcome, but `stop_orders` in the result is empty: the pool raised
    ClientClosedError instead of returning its outcomes, and flatten dropped them."""
    sim: FrontOfficeSimulator = await frontoffice_simulator_factory(latency=0.05)
    account = sim.account_ids[0]
    stops = sim.add_stop_orders(40)
    seen: list[CancelOutcome[Any]] = []
    client = FrontOfficeClient(sim.url, token=sim.token, account_id=account, concurrency=4)
    async with client:
        task = asyncio.create_task(
            client.flatten(close_positions=False, stop_order_ids=stops, on_outcome=seen.append)
        )
        while len([r for r in sim.requests if r.endpoint == "cancel_stop_order"]) < 4:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        await client.close()
        result = await task  # returns normally
    flat = result.accounts[account]
    sent = {r.order_id for r in sim.requests if r.endpoint == "cancel_stop_order"}
    assert sent and {o.order_id for o in seen} >= sent
    kept = {o.order_id for o in flat.stop_orders}
    assert kept >= sent, f"{len(sent)} stop-order cancels sent, {len(kept)} outcomes returned"


async def test_stop_orders_given_are_cancelled_or_named_when_the_hub_is_down(
    frontoffice_simulator_factory: Any,
) -> None:
    """The hub refuses every upgrade (503: an outage, a deploy); REST works. Stop-order
    cancels need no snapshot (the ids are given), yet the account's hub error stops it before
    round 1 reaches them: the 3 stop orders stay live, `stop_orders` is empty, and the
    FlattenError holds only the 503, naming none of the stop orders that may be open."""
    sim: FrontOfficeSimulator = await frontoffice_simulator_factory(
        faults=FaultPlan(hub_rates={HubFault.refuse(503): 1.0})
    )
    account = sim.account_ids[0]
    stops = sim.add_stop_orders(3)
    policy = RetryPolicy(max_attempts=2, base_delay=0.001)
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=account, retry=policy) as c:
        result = await c.flatten(stop_order_ids=stops)
    assert not result.verified
    if not sim.open_stop_order_ids():
        return  # cancelled anyway: fine
    try:
        result.raise_for_failures()
    except FlattenError as error:
        named = {s for e in error.exceptions for s in stops if s in repr(vars(e)) + str(e)}
        named |= {o.order_id for o in result.accounts[account].stop_orders if o.failed}
        assert named >= set(sim.open_stop_order_ids()), "live stop orders not named anywhere"


async def test_every_outcome_flatten_hands_to_on_outcome_has_an_as_dict(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """With `market_id`, positions are closed one by one and their outcomes reach on_outcome
    as `CancelOutcome[str]` (`order` is the position id). `CancelOutcome.as_dict()` calls
    `self.order.as_dict()`: AttributeError ('str' object has no attribute 'as_dict') for every
    closed position, in a callback that serialises outcomes as the web recipe does."""
    sim = frontoffice_simulator
    sim.add_positions(2)
    seen: list[CancelOutcome[Any]] = []
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
        await c.flatten(market_id="cfd.btc_usd", on_outcome=seen.append)
    assert len(seen) == 2
    for outcome in seen:
        outcome.as_dict()


async def test_the_error_that_stopped_an_account_survives_its_stop_order_cancels(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The hub is down, the stop orders are cancelled all the same: the account's error (the
    hub's) must stay on its result, or nothing would say why its orders were not checked."""
    sim = frontoffice_simulator
    sim.add_orders(2)
    stops = sim.add_stop_orders(2)
    sim.faults = FaultPlan(hub=[HubFault.refuse(503)] * 50, positions_hub_rates={})
    async with FrontOfficeClient(
        sim.url,
        token=sim.token,
        account_id=sim.account_ids[0],
        retry=RetryPolicy(max_attempts=1),
    ) as client:
        result = await client.flatten(stop_order_ids=stops)
    account = result.accounts[sim.account_ids[0]]
    assert sim.open_stop_order_ids() == []  # cancelled though the hub was down
    assert account.error is not None  # and the hub's error still says why it is not verified
    assert not account.verified
