"""Faults on the flatten paths: closes not applied or answered lost, stop-outs, 403 accounts,
and hub faults aimed at the OpenPositions stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import WSMsgType

from frontoffice_async.testing import (
    DEFAULT_ACCOUNT_ID,
    Fault,
    FaultKind,
    FaultPlan,
    FrontOfficeSimulator,
    HubFault,
)
from frontoffice_async.testing._dispenser import FaultDispenser
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ._hubclient import (
    BULK_CLOSE,
    HANDSHAKE,
    ORDERS,
    POSITIONS,
    RS,
    SECOND_ACCOUNT_ID,
    Hub,
    auth,
    hub_url,
    invocation,
    subscribe,
)

ALL = {"mode": "AllPositions"}


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def post(
    session: aiohttp.ClientSession,
    sim: FrontOfficeSimulator,
    path: str,
    body: Any = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> tuple[int, Any]:
    headers = {**auth(sim), "accountId": account_id}
    async with session.post(sim.url + path, headers=headers, json=body) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


def close_path(position_id: str) -> str:
    return f"{POSITIONS}/{position_id}/close"


# --- NOT_APPLIED ------------------------------------------------------------------------------


def test_not_applied_is_a_fault_kind_of_its_own() -> None:
    assert Fault.not_applied() == Fault(FaultKind.NOT_APPLIED)
    with pytest.raises(ValueError, match="status does not apply"):
        Fault(FaultKind.NOT_APPLIED, status=200)
    # Usable in rates, not among the transient kinds `uniform` spreads by default.
    assert FaultPlan(rates={FaultKind.NOT_APPLIED: 1.0}).draw("x", 0) == Fault.not_applied()
    assert FaultKind.NOT_APPLIED not in FaultPlan.uniform(1.0).rates


async def test_a_close_accepted_but_not_applied(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory()
    first, second = sim.add_positions(2)
    # Scripted by position id, as order ids are.
    sim.faults = FaultPlan(scripts={first: [Fault.not_applied()]})
    ws, hub = await subscribe(session, sim, target="OpenPositions")
    async with ws:
        await hub.next()
        assert await post(session, sim, close_path(first)) == (200, {"positionId": first})
        assert sim.open_position_ids() == [first, second]  # nothing changed...
        # ...and no stream heard of a change: the next message is the ping-free silence.
        with pytest.raises(TimeoutError):
            await hub.next(timeout=0.05)
        # The second close of that id is past its script: it takes effect.
        assert await post(session, sim, close_path(first)) == (200, {"positionId": first})
        assert (await hub.next())["item"]["item"][0]["status"] == "Closed"
    assert [r.fault for r in sim.requests_for(first)] == [FaultKind.NOT_APPLIED, None]


async def test_a_bulk_close_accepted_but_not_applied(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(
        faults=FaultPlan(sequence=[Fault.not_applied(), None])
    )
    ids = sim.add_positions(3)
    assert await post(session, sim, BULK_CLOSE, ALL) == (
        200,
        {"status": "accepted", "positionIds": ids},
    )
    assert sim.open_position_ids() == ids
    assert (await post(session, sim, BULK_CLOSE, ALL))[0] == 200
    assert sim.open_position_ids() == []
    assert [r.fault for r in sim.requests] == [FaultKind.NOT_APPLIED, None]


async def test_not_applied_on_the_other_endpoints(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(faults=FaultPlan(rates={FaultKind.NOT_APPLIED: 1}))
    order_id = sim.add_orders(1)[0]
    headers = auth(sim)
    async with session.delete(f"{sim.url}{ORDERS}/{order_id}", headers=headers) as resp:
        answered = (await resp.json())["order"]
    assert (answered["orderId"], answered["status"]) == (order_id, "Cancelled")
    assert sim.orders[order_id].status == "Pending"  # still open
    body = {
        "order": {
            "marketId": "spot.eth_usdt",
            "side": "Buy",
            "orderType": "Limit",
            "timeInForce": "Gtc",
            "requestedAmount": "1",
            "requestedPrice": "4000",
        }
    }
    async with session.post(f"{sim.url}{ORDERS}", headers=headers, json=body) as resp:
        placed = (await resp.json())["order"]
    assert placed["orderId"] not in sim.orders  # answered, never existed
    assert sim.open_order_ids() == [order_id]


# --- applied, then the answer lost ------------------------------------------------------------


@pytest.mark.parametrize("bulk", [True, False], ids=["bulk-close", "close"])
async def test_lost_response_closes_then_drops_the_connection(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory, bulk: bool
) -> None:
    sim = await frontoffice_simulator_factory(faults=FaultPlan(sequence=[Fault.lost_response()]))
    position_id = sim.add_positions(1)[0]
    path = BULK_CLOSE if bulk else close_path(position_id)
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(session, sim, path, ALL if bulk else None)
    assert sim.open_position_ids() == []
    assert sim.positions[position_id].status == "Closed"
    # A POST is not resent by aiohttp: one request, logged without a status.
    [record] = sim.requests
    assert (record.status, record.fault) == (None, FaultKind.LOST_RESPONSE)


async def test_the_new_endpoints_are_fault_targets_by_default(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    assert {"close_all_positions", "close_position", "place_stop_order"} <= FaultPlan().endpoints
    plan = FaultPlan(rates={FaultKind.SERVER_ERROR: 1.0})
    sim = await frontoffice_simulator_factory(faults=plan)
    position_id = sim.add_positions(1)[0]
    for path, body in ((BULK_CLOSE, ALL), (close_path(position_id), None)):
        status, problem = await post(session, sim, path, body)
        assert (status, problem["status"]) == (500, 500)
    assert sim.open_position_ids() == [position_id]  # a transient fault changes nothing
    sim.faults = FaultPlan(rates={FaultKind.SERVER_ERROR: 1.0}, endpoints={"cancel_order"})
    assert (await post(session, sim, BULK_CLOSE, ALL))[0] == 200


# --- a stop-out in the middle of a flatten ----------------------------------------------------


async def test_a_stop_out_places_orders_at_the_next_accepted_close(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    buy, sell = sim.add_positions(2)
    sim.stop_out_on_close(count=2)
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert (await hub.next())["item"] == []
        # A close that finds nothing to close does not spend it...
        assert (await post(session, sim, close_path("01UNKNOWN")))[0] == 404
        assert sim.open_order_ids() == []
        # ...the next accepted one does.
        assert (await post(session, sim, close_path(sell)))[0] == 200
        announced = [(await hub.next())["item"][0] for _ in range(2)]
    stop_outs = sim.open_order_ids()
    assert [order["orderId"] for order in announced] == stop_outs
    for order in announced:
        assert (order["reason"], order["source"], order["status"]) == (
            "StopOut",
            "System",
            "Working",
        )
        assert (order["side"], order["orderType"], order["marketId"]) == (
            "Buy",  # the opposite of the Sell position
            "Market",
            "cfd.btc_usd",
        )
        assert order["requestedAmount"] == "0.1"
    # Spent: the next close places nothing.
    assert (await post(session, sim, close_path(buy)))[0] == 200
    assert sim.open_order_ids() == stop_outs


async def test_a_stop_out_strikes_a_bulk_close_per_account_and_can_be_disarmed(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    sim.add_positions(1)
    sim.add_positions(1, account_id=SECOND_ACCOUNT_ID)
    sim.stop_out_on_close(SECOND_ACCOUNT_ID)
    sim.stop_out_on_close(count=3)
    sim.stop_out_on_close(count=0)  # disarmed again
    assert (await post(session, sim, BULK_CLOSE, ALL))[0] == 200
    assert sim.open_order_ids() == []
    assert (await post(session, sim, BULK_CLOSE, ALL, account_id=SECOND_ACCOUNT_ID))[0] == 200
    [stop_out] = sim.open_order_ids(SECOND_ACCOUNT_ID)
    assert sim.orders[stop_out].reason == "StopOut"
    with pytest.raises(ValueError, match="unknown account id"):
        sim.stop_out_on_close("nope")
    with pytest.raises(ValueError, match="count"):
        sim.stop_out_on_close(count=-1)


# --- an account that answers 403 --------------------------------------------------------------


async def test_a_forbidden_account_answers_403_everywhere(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1, account_id=SECOND_ACCOUNT_ID)[0]
    sim.add_positions(1, account_id=SECOND_ACCOUNT_ID)
    sim.forbid_account(SECOND_ACCOUNT_ID)
    headers = {**auth(sim), "accountId": SECOND_ACCOUNT_ID}
    async with session.delete(f"{sim.url}{ORDERS}/{order_id}", headers=headers) as resp:
        problem = await resp.json(content_type=None)
    assert (resp.status, problem["detail"]) == (
        403,
        f"Account {SECOND_ACCOUNT_ID} is not accessible with this token.",
    )
    status, problem = await post(session, sim, BULK_CLOSE, ALL, account_id=SECOND_ACCOUNT_ID)
    assert (status, problem["title"]) == (403, "Forbidden")
    # The other account is served; listing accounts still shows the forbidden one.
    assert (await post(session, sim, BULK_CLOSE, ALL))[0] == 200
    async with session.get(f"{sim.url}/frontoffice/api/v3/accounts", headers=auth(sim)) as resp:
        listed = [account["accountId"] for account in await resp.json()]
    assert SECOND_ACCOUNT_ID in listed
    # On the hub: the Completion an account the token does not own gets, on both streams.
    async with session.ws_connect(hub_url(sim)) as ws:
        hub = Hub(ws)
        orders = invocation(SECOND_ACCOUNT_ID, "0")
        positions = invocation(SECOND_ACCOUNT_ID, "1", target="OpenPositions")
        await ws.send_str(HANDSHAKE + orders + positions)
        assert await hub.next() == {}
        for invocation_id, target in (("0", "OpenOrders"), ("1", "OpenPositions")):
            assert await hub.next() == {
                "type": 3,
                "invocationId": invocation_id,
                "error": f"Failed to invoke '{target}' due to an error on the server. "
                f"HubException: Account {SECOND_ACCOUNT_ID} is not accessible with this token.",
            }
    sim.allow_account(SECOND_ACCOUNT_ID)
    status, body = await post(session, sim, BULK_CLOSE, ALL, account_id=SECOND_ACCOUNT_ID)
    assert (status, len(body["positionIds"])) == (200, 1)
    assert sim.orders[order_id].status == "Pending"


def test_forbid_account_refuses_what_is_no_account() -> None:
    sim = FrontOfficeSimulator()
    with pytest.raises(ValueError, match="unknown account id 'nope'"):
        sim.forbid_account("nope")
    with pytest.raises(TypeError, match="account id must be a str"):
        sim.forbid_account(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="account id must be a str"):
        sim.allow_account(5)  # type: ignore[arg-type]
    sim.allow_account(DEFAULT_ACCOUNT_ID)  # never forbidden: nothing to undo


# --- hub faults aimed at OpenPositions --------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"positions_hub": [HubFault.refuse(503)]}, ValueError, "before the client names"),
        ({"positions_hub_rates": {HubFault.refuse(): 0.1}}, ValueError, "positions_hub_rates"),
        ({"positions_hub": [Fault.reset()]}, TypeError, r"positions_hub\[0\]"),
        ({"positions_hub": HubFault.close()}, TypeError, "positions_hub must be a list"),
        ({"positions_hub_rates": {HubFault.drop(): 2}}, ValueError, "positions_hub_rates"),
        ({"positions_hub_rates": [HubFault.drop()]}, TypeError, "positions_hub_rates must be"),
        (
            {"positions_hub_rates": {HubFault.drop(): 0.6, HubFault.close(): 0.6}},
            ValueError,
            "add up",
        ),
    ],
)
def test_positions_hub_validation(
    kwargs: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field):
        FaultPlan(**kwargs)


def test_positions_draws_are_counted_apart_from_connections() -> None:
    plan = FaultPlan(
        hub=[HubFault.drop()],
        positions_hub=[HubFault.close(), None],
        positions_hub_rates={HubFault.complete(): 1.0},
    )
    dispenser = FaultDispenser(plan)
    assert [dispenser.next_positions_hub_fault() for _ in range(3)] == [
        HubFault.close(),
        None,
        HubFault.complete(),
    ]
    assert dispenser.next_hub_fault() == HubFault.drop()  # its own count, untouched
    rates = {HubFault.drop(): 0.3}
    draws = [
        FaultPlan(positions_hub_rates=rates, seed=2).draw_positions_hub(n) for n in range(500)
    ]
    assert draws == [
        FaultPlan(positions_hub_rates=rates, seed=2).draw_positions_hub(n) for n in range(500)
    ]
    assert 0.2 < draws.count(HubFault.drop()) / 500 < 0.4
    assert FaultPlan().draw_positions_hub(0) is None


async def test_a_graceful_close_before_the_first_positions_snapshot_only(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(faults=FaultPlan(positions_hub=[HubFault.close()]))
    order_id = sim.add_orders(1)[0]
    position_id = sim.add_positions(1)[0]
    # An OpenOrders connection first: untouched, and it spends nothing of positions_hub.
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert [o["orderId"] for o in (await hub.next())["item"]] == [order_id]
    ws, hub = await subscribe(session, sim, target="OpenPositions")
    async with ws:
        messages, end = await hub.until_closed()
    assert messages == [{"type": 7, "allowReconnect": True}]
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
    ws, hub = await subscribe(session, sim, target="OpenPositions")
    async with ws:
        assert [p["positionId"] for p in (await hub.next())["item"]["item"]] == [position_id]
    assert [r.positions_hub_fault for r in sim.requests] == [None, HubFault.close(), None]
    assert [r.hub_fault for r in sim.requests] == [None, None, None]


async def test_a_connection_faults_each_stream_with_its_own_fault(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    plan = FaultPlan(hub=[HubFault.complete()], positions_hub=[HubFault.duplicate()])
    sim = await frontoffice_simulator_factory(faults=plan)
    sim.add_orders(1)
    position_id = sim.add_positions(1)[0]
    async with session.ws_connect(hub_url(sim)) as ws:
        hub = Hub(ws)
        positions = invocation(invocation_id="1", target="OpenPositions")
        await ws.send_str(HANDSHAKE + positions + invocation(invocation_id="0"))
        assert await hub.next() == {}
        listed = await hub.next()
        assert [p["positionId"] for p in listed["item"]["item"]] == [position_id] * 2
        assert await hub.next() == {"type": 3, "invocationId": "0"}  # hub's fault: OpenOrders
        # Later invocations of either stream on the connection are served normally.
        await ws.send_str(invocation(invocation_id="2", target="OpenPositions"))
        assert len((await hub.next())["item"]["item"]) == 1
    record = sim.requests[0]
    assert (record.hub_fault, record.positions_hub_fault) == (
        HubFault.complete(),
        HubFault.duplicate(),
    )


@pytest.mark.parametrize("fault", [HubFault.drop(), HubFault.complete()], ids=repr)
async def test_hub_faults_leave_open_positions_alone(
    session: aiohttp.ClientSession,
    frontoffice_simulator_factory: SimulatorFactory,
    fault: HubFault,
) -> None:
    sim = await frontoffice_simulator_factory(faults=FaultPlan(hub_rates={fault: 1.0}))
    sim.add_positions(2)
    ws, hub = await subscribe(session, sim, target="OpenPositions")
    async with ws:
        assert len((await hub.next())["item"]["item"]) == 2


async def test_silence_at_the_positions_invocation(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    plan = FaultPlan(positions_hub=[HubFault.silence(pings=False)])
    sim = await frontoffice_simulator_factory(faults=plan, ping_interval=0.02)
    sim.add_positions(1)
    order_id = sim.add_orders(1)[0]
    async with session.ws_connect(hub_url(sim)) as ws:
        hub = Hub(ws)
        await ws.send_str(HANDSHAKE + invocation())  # OpenOrders first: served
        assert await hub.next() == {}
        assert [o["orderId"] for o in (await hub.next())["item"]] == [order_id]
        await ws.send_str(invocation(invocation_id="1", target="OpenPositions"))
        for _ in range(1000):  # until the hub has read it
            if sim.requests[0].positions_hub_fault is not None:
                break
            await asyncio.sleep(0.001)
        sim.update_order(order_id, status="Working")  # the whole connection hangs now
        sim.add_positions(1)
        with pytest.raises(TimeoutError):
            await hub.next(skip_pings=False, timeout=0.1)
        reader = asyncio.create_task(hub.until_closed())
        await sim.close()  # a hung connection still gets the graceful Close
        messages, _ = await reader
    assert messages == [{"type": 7, "allowReconnect": True}]


async def test_a_plain_get_of_unknown_streams_stays_an_unknown_method(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    ws, hub = await subscribe(session, frontoffice_simulator, target="ClosedPositions")
    async with ws:
        assert await hub.next() == {
            "type": 3,
            "invocationId": "0",
            "error": "Unknown hub method 'ClosedPositions'",
        }
        await ws.send_str(json.dumps({"type": 6}) + RS)
