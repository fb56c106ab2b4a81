"""Flatten starts a round's work as early as it can: the stop-order cancels at once (they need
no snapshot), the bulk close on the positions snapshot's first item that shows a position, a
per-position close (with a market filter) as soon as an item brings the position. The settle
window delays only the verdict.

The settle windows here are long (seconds), so that "before the window closed" is an order of
events with a huge margin, never a race with a slow machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from typing import Any

import pytest

from frontoffice_async import (
    BulkCancelResult,
    CancelOutcome,
    FlattenError,
    HubError,
    PermissionDeniedError,
    PositionsCloseAck,
)
from frontoffice_async._stop.positions import Closer, Closes
from frontoffice_async.testing import (
    Fault,
    FaultPlan,
    FrontOfficeSimulator,
    HubFault,
    RecordedRequest,
)

from ..support import client_for, library_tasks

FIRST = "685a7eaa360f9e7416221a61"
#: A settle window far longer than anything the work of a round needs on loopback.
SETTLE = 2.0

BULK_CLOSE = "/frontoffice/api/v4/positions/bulk-close"


def events_of(journal: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in journal.getvalue().splitlines()]


def first_snapshot_line(events: list[dict[str, Any]]) -> int:
    """The journal's first `snapshot` line: written when the first snapshot of the run had
    settled, i.e. when its window closed."""
    return next(n for n, e in enumerate(events) if e["event"] == "snapshot")


def requests_to(sim: FrontOfficeSimulator, endpoint: str) -> list[RecordedRequest]:
    return [r for r in sim.requests if r.endpoint == endpoint]


def windows_close_after(sim: FrontOfficeSimulator) -> float:
    """A moment before which the first round's settle windows were surely still open: its
    first hub connection arrived before either snapshot's first item, and each window lasts
    `SETTLE` after its first item."""
    return min(r.started_at for r in requests_to(sim, "hub")) + SETTLE


async def test_stop_orders_and_the_bulk_close_go_out_inside_the_settle_window(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    sim.add_orders(5)
    stops = sim.add_stop_orders(3)
    positions = sim.add_positions(3)
    journal = io.StringIO()
    async with client_for(sim, snapshot_settle=SETTLE) as client:
        result = await client.flatten(stop_order_ids=stops, journal=journal)

    assert result.verified, result.as_dict()
    assert sim.open_order_ids() == sim.open_position_ids() == sim.open_stop_order_ids() == []
    # The simulator's clock: every stop-order cancel and the bulk close arrived while the
    # first round's windows were still open.
    [close] = requests_to(sim, "close_all_positions")
    stop_cancels = requests_to(sim, "cancel_stop_order")
    assert {r.order_id for r in stop_cancels} == set(stops)
    limit = windows_close_after(sim)
    assert close.started_at < limit
    assert max(r.started_at for r in stop_cancels) < limit
    # The journal's order: their answers were in before the first snapshot had settled.
    events = events_of(journal)
    settled = first_snapshot_line(events)
    requests = [(n, e) for n, e in enumerate(events) if e["event"] == "request"]
    [(posted, _)] = [(n, e) for n, e in requests if e["path"] == BULK_CLOSE]
    stop_lines = [n for n, e in requests if e["id"] in stops]
    assert posted < settled and len(stop_lines) == 3 and max(stop_lines) < settled
    # One round acted; the next one's snapshots found nothing and are the verdict.
    flat = result.accounts[FIRST]
    assert flat.rounds == 1 and [e["round"] for e in events if e["event"] == "round"] == [1]
    assert flat.positions.rounds == flat.positions.requests == 1
    assert set(flat.positions.accepted) == set(positions) and flat.positions.verified
    assert {o.order_id for o in flat.stop_orders.cancelled} == set(stops)


async def test_a_snapshot_in_several_items_gets_one_bulk_close_a_round(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """Every item shows positions, the first fires the close: the others add nothing to it,
    and the next round's snapshot (not this one's merge) decides whether another is needed."""
    sim = frontoffice_simulator
    sim.add_positions(6)
    sim.faults = FaultPlan(positions_hub=[HubFault.split(pages=3, gap=0.05)])
    async with client_for(sim, snapshot_settle=0.5) as client:
        result = await client.flatten()
    assert result.verified and sim.open_position_ids() == []
    assert len(requests_to(sim, "close_all_positions")) == 1
    flat = result.accounts[FIRST]
    assert flat.rounds == flat.positions.rounds == flat.positions.requests == 1


async def test_with_a_market_filter_each_position_is_closed_as_its_item_arrives(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The snapshot comes as two items; two of the market's positions are in the second.
    Each is closed once, before the window closes; the other market's are left alone."""
    sim = frontoffice_simulator
    early = sim.add_positions(2, market_id="cfd.btc_usd")
    others = sim.add_positions(2, market_id="perp.eth_usdt")
    late = sim.add_positions(2, market_id="cfd.btc_usd")  # the records [e, e, o, o, l, l]
    sim.faults = FaultPlan(
        positions_hub=[HubFault.split(pages=2, gap=0.3)]
    )  # [e, e, o], [o, l, l]
    journal = io.StringIO()
    async with client_for(sim, snapshot_settle=SETTLE) as client:
        result = await client.flatten(market_id="cfd.btc_usd", journal=journal)

    assert result.verified, result.as_dict()
    assert sim.open_position_ids() == others
    closes = requests_to(sim, "close_position")
    assert sorted(str(r.position_id) for r in closes) == sorted(early + late)  # each once
    assert max(r.started_at for r in closes) < windows_close_after(sim)
    events = events_of(journal)
    close_lines = [
        n for n, e in enumerate(events) if e["event"] == "request" and e["id"] in early + late
    ]
    assert len(close_lines) == 4 and max(close_lines) < first_snapshot_line(events)
    flat = result.accounts[FIRST]
    assert flat.positions.rounds == 1 and flat.positions.requests == 4
    assert set(flat.positions.accepted) == set(early + late)


async def test_a_positions_snapshot_failing_after_the_bulk_close_keeps_the_close(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The OpenPositions stream fails inside its window while the bulk close (fired by its
    first item) is still on the wire: the orders' pass ends, the close's answer is waited for
    and kept, and the stream's error says why the account is not verified."""
    sim = frontoffice_simulator
    orders = sim.add_orders(3)
    stops = sim.add_stop_orders(2)
    positions = sim.add_positions(3)
    sim.faults = FaultPlan(
        positions_hub=[HubFault.fail_after_first(gap=0.2)],
        scripts={"close_all_positions": [Fault.slow(1.5)]},  # answered after the orders' pass
    )
    journal = io.StringIO()
    async with client_for(sim, snapshot_settle=0.5) as client:
        result = await client.flatten(stop_order_ids=stops, journal=journal)

    flat = result.accounts[FIRST]
    assert isinstance(flat.error, HubError) and not result.verified
    assert set(flat.positions.accepted) == set(positions)  # the close's answer, kept
    assert flat.positions.requests == flat.positions.rounds == 1 and flat.positions.errors == []
    assert sim.open_position_ids() == []
    assert {o.order_id for o in flat.orders.cancelled} == set(orders)  # the pass ended
    assert {o.order_id for o in flat.stop_orders.cancelled} == set(stops)
    [post] = [e for e in events_of(journal) if e["event"] == "request" and e["path"] == BULK_CLOSE]
    assert post["status"] == 200
    with pytest.raises(FlattenError) as caught:
        result.raise_for_failures()
    assert flat.error in caught.value.accounts[FIRST]


async def test_an_orders_snapshot_failing_keeps_the_closes_already_sent(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The OpenOrders stream fails inside its window: the positions snapshot is abandoned,
    but the bulk close its first item fired is waited for, and kept."""
    sim = frontoffice_simulator
    sim.add_orders(2)
    positions = sim.add_positions(2)
    fail = HubFault.fail_after_first(gap=0.5)
    sim.faults = FaultPlan(
        hub=[fail, fail],  # whichever connection is the orders'
        scripts={"close_all_positions": [Fault.slow(1.0)]},
    )
    async with client_for(sim, snapshot_settle=SETTLE) as client:
        result = await client.flatten()
    flat = result.accounts[FIRST]
    assert isinstance(flat.error, HubError)
    assert set(flat.positions.accepted) == set(positions) and flat.positions.requests == 1
    assert sim.open_position_ids() == []


async def test_a_refused_close_stops_the_account_after_its_round(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The bulk close is answered 403 while the orders' pass runs: the round ends (its cancels
    are kept), the refusal is the account's error, and no second round asks again."""
    sim = frontoffice_simulator
    orders = sim.add_orders(4)
    sim.add_positions(2)
    sim.faults = FaultPlan(scripts={"close_all_positions": [Fault.response(403)] * 5})
    async with client_for(sim, snapshot_settle=0.3) as client:
        result = await client.flatten()
    flat = result.accounts[FIRST]
    assert isinstance(flat.error, PermissionDeniedError)
    assert [type(e) for e in flat.positions.errors] == [PermissionDeniedError]
    assert len(requests_to(sim, "close_all_positions")) == 1 and flat.rounds == 1
    assert {o.order_id for o in flat.orders.cancelled} == set(orders)
    assert len(requests_to(sim, "hub")) == 2  # one pair of snapshots: the account stopped


async def test_a_cancelled_flatten_stops_its_closes_and_stop_order_cancels_at_once(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    sim.add_positions(2)
    stops = sim.add_stop_orders(2)
    sim.faults = FaultPlan(
        scripts={"close_all_positions": [Fault.slow(30)], **{i: [Fault.slow(30)] for i in stops}}
    )
    async with client_for(sim, snapshot_settle=SETTLE) as client:
        task = asyncio.create_task(client.flatten(stop_order_ids=stops))
        sent = {"close_all_positions", "cancel_stop_order"}
        while len([r for r in sim.requests if r.endpoint in sent]) < 3:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert task.cancelled()
        assert library_tasks() == []  # nothing of the flatten outlives it
        # ... and it did not wait for the answers (30 s away) nor for the window (2 s).
        assert all(r.status is None for r in requests_to(sim, "close_all_positions"))


async def test_dry_run_fires_nothing_on_the_first_item(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    sim.add_positions(2)
    stops = sim.add_stop_orders(1)
    async with client_for(sim) as client:
        result = await client.flatten(stop_order_ids=stops, dry_run=True)
    assert {r.endpoint for r in sim.requests} == {"hub"}
    assert len(result.accounts[FIRST].positions.remaining) == 2


# --- one round's closer, on its own --------------------------------------------------------------


class _Ops:
    """The account operations a closer calls: records what it was asked."""

    account_id = FIRST

    def __init__(self) -> None:
        self.bulk = 0
        self.each: list[str] = []

    async def close_all(self) -> tuple[PositionsCloseAck, int]:
        self.bulk += 1
        return PositionsCloseAck(status="accepted", position_ids=("P1",)), 1

    async def close_each(self, ids: Any) -> BulkCancelResult[str]:
        taken = [i async for i in ids]
        self.each.extend(taken)
        outcomes = [CancelOutcome[str](i, order=i) for i in taken]
        return BulkCancelResult(outcomes, attempts=len(taken))


def _position(position_id: Any, market: str = "cfd.btc_usd", **more: Any) -> dict[str, Any]:
    return {"positionId": position_id, "marketId": market, "positionLotAmount": "1", **more}


@pytest.mark.parametrize(
    ("items", "fires"),
    [
        pytest.param([[]], False, id="empty"),
        pytest.param([[_position("A", status="Closed")]], False, id="only-a-closed-one"),
        pytest.param([[_position("A", positionLotAmount="0")]], False, id="zero-lots"),
        pytest.param([[{"no": "id"}]], True, id="unreadable"),
        pytest.param([[], [_position("A")]], True, id="second-item"),
        pytest.param([[_position("A")], [_position("B")], [_position("C")]], True, id="three"),
    ],
)
async def test_the_bulk_close_fires_once_on_the_first_item_that_shows_a_position(
    items: list[list[Any]], fires: bool
) -> None:
    ops, closes = _Ops(), Closes()
    closer = Closer(ops, None, closes)  # type: ignore[arg-type]  # the two calls it makes
    for item in items:
        closer.on_item(item)
    closer.stop()
    closer.on_item([_position("Z")])  # after the snapshot: nothing starts
    if closer.work is not None:
        await closer.work
    assert (ops.bulk, closes.rounds, closes.requests) == ((1, 1, 1) if fires else (0, 0, 0))
    assert closer.fired is fires


async def test_with_a_market_filter_each_id_is_closed_once_a_round() -> None:
    ops, closes = _Ops(), Closes()
    closer = Closer(ops, "cfd.btc_usd", closes)  # type: ignore[arg-type]
    closer.on_item([_position("A"), _position("B", "perp.eth_usdt"), {"bad": 1}])
    closer.on_item([_position("A"), _position("C"), _position("D", status="Closed")])
    closer.stop()
    closer.on_item([_position("E")])
    assert closer.work is not None
    await closer.work
    assert ops.each == ["A", "C"] and closes.accepted == ["A", "C"]
    assert closes.rounds == 1 and closes.requests == 2
