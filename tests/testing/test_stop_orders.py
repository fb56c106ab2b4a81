"""Stop orders placed over HTTP (SPOT and Perpetual), activated, listed and cancelled."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator
from frontoffice_async.testing._placement import parse_stop_order

from ._hubclient import SECOND_ACCOUNT_ID, auth, subscribe

SPOT_STOPS = "/frontoffice/api/v3/stop-orders"
PERP_STOPS = "/frontoffice/api/perpetual/v4/stop-orders"
CANCEL_STOP_KEYS = [
    "marketId",
    "marketDisplayName",
    "orderId",
    "orderType",
    "side",
    "requestedPrice",
    "activationPrice",
    "requestedAmount",
    "timeInForce",
    "status",
    "createdAt",
    "updatedAt",
    "cancellationDate",
]
SPOT_STOP = {
    "marketId": "spot.eth_usdt",
    "side": "Sell",
    "orderType": "Limit",
    "timeInForce": "Gtc",
    "requestedAmount": "0.5",
    "requestedPrice": "4300",
    "activationPrice": "4350",
    "cancellationDate": None,
}
# As the platform's own examples send it: numbers where the field list says strings.
PERP_STOP = {
    "marketId": "perp.btc_usdt",
    "side": "Buy",
    "orderType": "Market",
    "timeInForce": "Gtc",
    "requestedLotAmount": 2,
    "requestedPrice": None,
    "activationPrice": 62000.5,
    "leverage": 20,
    "stopLoss": None,
    "takeProfit": "65000",
}


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def send(
    session: aiohttp.ClientSession,
    sim: FrontOfficeSimulator,
    method: str,
    path: str,
    body: Any = None,
    account_id: str = DEFAULT_ACCOUNT_ID,
) -> tuple[int, Any]:
    headers = {**auth(sim), "accountId": account_id}
    kwargs = {} if body is None else {"json": body}
    async with session.request(method, sim.url + path, headers=headers, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_place_a_spot_stop_order(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    status, body = await send(session, sim, "POST", SPOT_STOPS, {"order": SPOT_STOP})
    assert status == 200
    placed = body["order"]
    assert list(placed) == CANCEL_STOP_KEYS  # the shape the cancel endpoint answers
    assert (placed["status"], placed["orderType"], placed["side"]) == (
        "WaitingForActivation",
        "Limit",
        "Sell",
    )
    assert (placed["requestedAmount"], placed["requestedPrice"], placed["activationPrice"]) == (
        "0.5",
        "4300",
        "4350",
    )
    assert (placed["marketDisplayName"], placed["cancellationDate"]) == ("SPOT ETH/USDT", None)
    stop_id = placed["orderId"]
    assert sim.open_stop_order_ids() == [stop_id]
    assert sim.open_order_ids() == []  # a stop order is no open order
    stop = sim.orders[stop_id]
    assert (stop.kind, stop.account_id) == ("stop", DEFAULT_ACCOUNT_ID)
    record = sim.requests[-1]
    assert (record.endpoint, record.status) == ("place_stop_order", 200)
    assert json.loads(record.body or "") == {"order": SPOT_STOP}
    # Cancelled through the stop-orders endpoint, like any other.
    status, body = await send(session, sim, "DELETE", f"{SPOT_STOPS}/{stop_id}")
    assert (status, body["order"]["status"]) == (200, "Cancelled")
    assert sim.open_stop_order_ids() == []


async def test_place_a_perpetual_stop_order_with_numbers(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    status, body = await send(
        session, sim, "POST", PERP_STOPS, {"order": PERP_STOP}, account_id=SECOND_ACCOUNT_ID
    )
    assert status == 200
    placed = body["order"]
    assert list(placed) == CANCEL_STOP_KEYS
    # Numbers in, decimal strings out; lots are the stop order's requested amount.
    assert (placed["requestedAmount"], placed["activationPrice"]) == ("2", "62000.5")
    assert (placed["orderType"], placed["requestedPrice"]) == ("Market", None)
    assert sim.open_stop_order_ids(SECOND_ACCOUNT_ID) == [placed["orderId"]]
    assert sim.open_stop_order_ids(DEFAULT_ACCOUNT_ID) == []
    assert sim.requests[-1].endpoint == "place_stop_order"


async def test_a_gtd_stop_order_keeps_its_expiry(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    order = {**SPOT_STOP, "timeInForce": "Gtd", "cancellationDate": "2030-01-02T03:04:05.1234567Z"}
    status, body = await send(session, sim, "POST", SPOT_STOPS, {"order": order})
    assert status == 200
    assert body["order"]["cancellationDate"] == "2030-01-02T03:04:05.1234560Z"
    assert sim.orders[body["order"]["orderId"]].cancellation_date == datetime(
        2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("perpetual", "change", "field"),
    [
        (False, {"activationPrice": None}, "order.activationPrice"),
        (False, {"activationPrice": "-1"}, "order.activationPrice"),
        (False, {"activationPrice": "1E+999999999"}, "order.activationPrice"),  # no 500
        (False, {"requestedAmount": "0"}, "order.requestedAmount"),
        (False, {"requestedPrice": None}, "order.requestedPrice"),  # a Limit needs one
        (False, {"side": "Long"}, "order.side"),
        (False, {"orderType": "StopLimit"}, "order.orderType"),
        (False, {"timeInForce": "Gtd"}, "order.cancellationDate"),
        (False, {"cancellationDate": "soon"}, "order.cancellationDate"),
        (False, {"marketId": "\ud800"}, "order.marketId"),
        (True, {"requestedLotAmount": None}, "order.requestedLotAmount"),
        (True, {"leverage": "10"}, "order.leverage"),
        (True, {"leverage": 0}, "order.leverage"),
        (True, {"leverage": 2.5}, "order.leverage"),
        (True, {"stopLoss": "n/a"}, "order.stopLoss"),
        (True, {"takeProfit": {"price": 1}}, "order.takeProfit"),
    ],
)
async def test_a_bad_field_is_a_validation_problem(
    session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    perpetual: bool,
    change: dict[str, Any],
    field: str,
) -> None:
    sim = frontoffice_simulator
    order = {**(PERP_STOP if perpetual else SPOT_STOP), **change}
    body = json.dumps({"order": order})  # a lone surrogate goes out as its escape
    headers = {**auth(sim), "Content-Type": "application/json"}
    path = PERP_STOPS if perpetual else SPOT_STOPS
    async with session.post(sim.url + path, headers=headers, data=body) as resp:
        assert resp.status == 400
        problem = await resp.json(content_type=None)
    assert problem["title"] == "One or more validation errors occurred."
    assert list(problem["errors"]) == [field]
    assert sim.open_stop_order_ids() == []


@pytest.mark.parametrize("body", [None, [], {"order": None}, {"order": "x"}, {}])
def test_a_body_without_an_order_object_is_refused(body: Any) -> None:
    assert parse_stop_order(body, perpetual=False) == {"order": ["The order field is required."]}


async def test_activation_places_a_new_order(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    limit_stop, market_stop = sim.add_stop_orders(2)
    sim.orders[market_stop].order_type = "Market"
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert (await hub.next())["item"] == []
        placed = sim.activate_stop_order(limit_stop)
        [announced] = (await hub.next())["item"]
        assert (announced["orderId"], announced["source"], announced["status"]) == (
            placed,
            "StopOrder",
            "Pending",
        )
        stop = sim.orders[limit_stop]
        assert announced["requestedPrice"] == str(stop.requested_price)
        from_market = sim.activate_stop_order(market_stop)
        [executing] = (await hub.next())["item"]
        assert (executing["orderId"], executing["status"], executing["requestedPrice"]) == (
            from_market,
            "Working",
            None,
        )
    assert placed not in (limit_stop, market_stop)
    assert sim.open_order_ids() == [placed, from_market]
    assert sim.open_stop_order_ids() == []
    assert stop.status == "Activated"
    order = sim.orders[placed]
    assert (order.kind, order.requested_amount, order.side) == ("order", Decimal("0.05"), "Buy")
    # An Activated stop order is final: its cancel answers as for any final stop order.
    status, body = await send(session, sim, "DELETE", f"{SPOT_STOPS}/{limit_stop}")
    assert status == 400
    assert body["errors"] == {"orderId": ["The order is not active."]}
    assert body["detail"] == f"Order {limit_stop} cannot be cancelled in status Activated."


def test_activate_stop_order_refuses() -> None:
    sim = FrontOfficeSimulator()
    stop = sim.add_stop_orders(1)[0]
    plain = sim.add_orders(1)[0]
    with pytest.raises(KeyError):
        sim.activate_stop_order("unknown")
    with pytest.raises(KeyError):
        sim.activate_stop_order(plain)
    with pytest.raises(TypeError, match="order_id must be a str"):
        sim.activate_stop_order(5)  # type: ignore[arg-type]
    sim.activate_stop_order(stop)
    with pytest.raises(ValueError, match="is Activated: only a WaitingForActivation"):
        sim.activate_stop_order(stop)
    cancelled = sim.add_stop_orders(1, status="Cancelled")[0]
    with pytest.raises(ValueError, match="is Cancelled"):
        sim.activate_stop_order(cancelled)
    assert sim.open_stop_order_ids() == []
