"""Snapshots that are not one item (issue 19.3): empty first, split, an update first, a
failure after the first item, on OpenOrders and OpenPositions, with gaps a test can place."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import WSMsgType

from frontoffice_async.testing import FaultPlan, FrontOfficeSimulator, HubFault, HubFaultKind
from frontoffice_async.testing._hub_streams import STREAM_ERROR, Fail, Item, Pause, snapshot_steps
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ._hubclient import Hub, invocation, subscribe

RECORDS = [{"orderId": str(n)} for n in range(5)]
ORDERS, POSITIONS = "OpenOrders", "OpenPositions"


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


# --- values and the pure plan -----------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        HubFault.empty_first(),
        HubFault.empty_first(gap=0.7),
        HubFault.split(),
        HubFault.split(5, gap=0),
        HubFault.update_first(gap=1),
        HubFault.fail_after_first(),
    ],
    ids=repr,
)
def test_repr_is_the_constructor_call(fault: HubFault) -> None:
    assert eval(repr(fault), {"HubFault": HubFault}) == fault  # noqa: S307


def test_defaults_make_equal_values() -> None:
    assert HubFault.split() == HubFault(HubFaultKind.SPLIT) == HubFault.split(2, gap=0.01)
    assert HubFault.empty_first().gap == 0.01
    assert len({HubFault.split(), HubFault.split(3), HubFault.update_first()}) == 3


@pytest.mark.parametrize(
    ("build", "error", "field"),
    [
        (lambda: HubFault.split(1), ValueError, "pages"),
        (lambda: HubFault.split(1001), ValueError, "pages"),
        (lambda: HubFault.split(2.0), ValueError, "pages"),  # type: ignore[arg-type]
        (lambda: HubFault.split(True), ValueError, "pages"),
        (lambda: HubFault.empty_first(gap=-0.1), ValueError, "gap"),
        (lambda: HubFault.update_first(gap=float("inf")), ValueError, "gap"),
        (lambda: HubFault.fail_after_first(gap="0.1"), TypeError, "gap"),  # type: ignore[arg-type]
        (lambda: HubFault(HubFaultKind.CLOSE, gap=0.5), ValueError, "gap does not apply"),
        (lambda: HubFault(HubFaultKind.EMPTY_FIRST, pages=3), ValueError, "pages does not"),
    ],
)
def test_validation_names_the_field(build: Any, error: type[Exception], field: str) -> None:
    with pytest.raises(error, match=field):
        build()


@pytest.mark.parametrize(
    ("fault", "steps"),
    [
        (None, [Item(RECORDS)]),
        (HubFault.empty_first(gap=0.2), [Item([]), Pause(0.2), Item(RECORDS)]),
        (
            HubFault.split(2),
            [Item(RECORDS[:3]), Pause(0.01), Item(RECORDS[3:])],
        ),
        (
            HubFault.split(3, gap=0),
            [Item(RECORDS[:2]), Pause(0), Item(RECORDS[2:4]), Pause(0), Item(RECORDS[4:])],
        ),
        (HubFault.update_first(), [Item(RECORDS[:1]), Pause(0.01), Item(RECORDS)]),
        (HubFault.fail_after_first(), [Item(RECORDS), Pause(0.01), Fail(STREAM_ERROR)]),
        (HubFault.duplicate(), [Item([*RECORDS, RECORDS[0]])]),
    ],
    ids=repr,
)
def test_snapshot_steps(fault: HubFault | None, steps: list[Any]) -> None:
    assert snapshot_steps(RECORDS, fault) == steps


def test_snapshot_steps_of_an_empty_or_short_snapshot() -> None:
    one = RECORDS[:1]
    split = snapshot_steps(one, HubFault.split(3))
    assert [step for step in split if isinstance(step, Item)] == [Item(one), Item([]), Item([])]
    assert snapshot_steps([], HubFault.update_first()) == [Item([])]  # nothing to update
    assert snapshot_steps([], HubFault.empty_first())[0] == Item([])
    assert [s for s in snapshot_steps([], HubFault.split(2)) if isinstance(s, Item)] == [
        Item([]),
        Item([]),
    ]


# --- on the wire, both streams ----------------------------------------------------------------


def scene(sim: FrontOfficeSimulator, target: str, count: int) -> list[str]:
    return sim.add_orders(count) if target == ORDERS else sim.add_positions(count)


def plan(target: str, fault: HubFault) -> FaultPlan:
    return FaultPlan(hub=[fault]) if target == ORDERS else FaultPlan(positions_hub=[fault])


def ids_of(message: dict[str, Any], target: str) -> list[str]:
    assert message["type"] == 2, message
    if target == ORDERS:
        assert isinstance(message["item"], list)
        return [record["orderId"] for record in message["item"]]
    assert list(message["item"]) == ["item"]
    return [record["positionId"] for record in message["item"]["item"]]


async def timed(hub: Hub) -> tuple[float, Any]:
    message = await hub.next()
    return time.perf_counter(), message


targets = pytest.mark.parametrize("target", [ORDERS, POSITIONS])


@targets
async def test_empty_first(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory, target: str
) -> None:
    sim = await frontoffice_simulator_factory(faults=plan(target, HubFault.empty_first(gap=0.05)))
    ids = scene(sim, target, 3)
    ws, hub = await subscribe(session, sim, target=target)
    async with ws:
        first_at, first = await timed(hub)
        second_at, second = await timed(hub)
    assert ids_of(first, target) == []
    assert ids_of(second, target) == ids
    assert second_at - first_at >= 0.04


@targets
async def test_split(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory, target: str
) -> None:
    sim = await frontoffice_simulator_factory(faults=plan(target, HubFault.split(3)))
    ids = scene(sim, target, 5)
    ws, hub = await subscribe(session, sim, target=target)
    async with ws:
        pages = [ids_of(await hub.next(), target) for _ in range(3)]
    assert pages == [ids[:2], ids[2:4], ids[4:]]


@targets
async def test_update_first(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory, target: str
) -> None:
    sim = await frontoffice_simulator_factory(faults=plan(target, HubFault.update_first()))
    ids = scene(sim, target, 3)
    ws, hub = await subscribe(session, sim, target=target)
    async with ws:
        update, snapshot = await hub.next(), await hub.next()
    assert ids_of(update, target) == ids[:1]
    assert ids_of(snapshot, target) == ids
    # The update is a real record, in the shape of a change of it.
    records = update["item"] if target == ORDERS else update["item"]["item"]
    full = snapshot["item"] if target == ORDERS else snapshot["item"]["item"]
    assert records[0] == full[0]


@targets
async def test_fail_after_first(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory, target: str
) -> None:
    sim = await frontoffice_simulator_factory(faults=plan(target, HubFault.fail_after_first()))
    ids = scene(sim, target, 2)
    ws, hub = await subscribe(session, sim, target=target)
    async with ws:
        assert ids_of(await hub.next(), target) == ids
        assert await hub.next() == {"type": 3, "invocationId": "0", "error": STREAM_ERROR}
        scene(sim, target, 1)  # the stream ended: no update
        # The connection lives on: a new invocation gets a full snapshot.
        await ws.send_str(invocation(invocation_id="1", target=target))
        again = await hub.next()
    assert again["invocationId"] == "1"
    assert len(ids_of(again, target)) == 3


@targets
async def test_updates_wait_behind_the_last_page(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory, target: str
) -> None:
    sim = await frontoffice_simulator_factory(faults=plan(target, HubFault.split(2, gap=0.1)))
    ids = scene(sim, target, 2)
    ws, hub = await subscribe(session, sim, target=target)
    async with ws:
        assert ids_of(await hub.next(), target) == ids[:1]
        added = scene(sim, target, 1)  # inside the gap
        assert ids_of(await hub.next(), target) == ids[1:]
        assert ids_of(await hub.next(), target) == added


async def test_a_gap_does_not_hold_up_shutdown(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(faults=plan(ORDERS, HubFault.split(2, gap=30)))
    ids = scene(sim, ORDERS, 2)
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert ids_of(await hub.next(), ORDERS) == ids[:1]
        reader = asyncio.create_task(hub.until_closed())
        started = time.perf_counter()
        await sim.close()
        messages, end = await reader
    assert time.perf_counter() - started < 1.0
    assert messages[-1] == {"type": 7, "allowReconnect": True}
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
