"""update_order() and SimulatedOrder fields: every value is checked before anything changes.

A bad value once stayed in the order and broke every later hub connection that had to write
it (AttributeError, ValueError in the server, HubError in every client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import aiohttp
import attrs
import pytest
import pytest_asyncio

from frontoffice_async import FrontOfficeClient
from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator, SimulatedOrder
from frontoffice_async.testing._order import _CHECKS
from frontoffice_async.testing._wire import format_timestamp

from ._hubclient import HANDSHAKE, SECOND_ACCOUNT_ID, Hub, hub_url, invocation, subscribe

# (changes, exception, text the message must hold): the adversarial review's cases and more.
BAD_CHANGES: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"market_id": 123}, TypeError, "market_id"),
    ({"market_id": None}, TypeError, "market_id"),
    ({"market_id": ""}, ValueError, "market_id"),
    ({"status": None}, TypeError, "status"),
    ({"status": 5}, TypeError, "status"),
    ({"side": 5}, TypeError, "side"),
    ({"source": b"Manual"}, TypeError, "source"),
    ({"requested_amount": "abc"}, ValueError, "requested_amount"),
    ({"requested_amount": True}, TypeError, "requested_amount"),
    ({"remaining_amount": None}, TypeError, "remaining_amount"),
    ({"commission": float("nan")}, ValueError, "commission"),
    ({"execution_price": Decimal("NaN")}, ValueError, "execution_price"),
    ({"fill_factor": Decimal("Infinity")}, ValueError, "fill_factor"),
    ({"requested_price": Decimal("1E+30")}, ValueError, "requested_price"),
    ({"requested_price": Decimal("1E-29")}, ValueError, "requested_price"),
    # Beyond the default context's exponent: once a decimal.Overflow, not a ValueError.
    ({"requested_price": "1E+999999999"}, ValueError, "requested_price"),
    ({"requested_price": [4400]}, TypeError, "requested_price"),
    ({"created_at": "yesterday"}, TypeError, "created_at"),
    ({"updated_at": None}, TypeError, "updated_at"),
    ({"cancellation_date": "now"}, TypeError, "cancellation_date"),
    ({"cancellation_date": datetime.now(UTC).date()}, TypeError, "cancellation_date"),
    (
        {"created_at": datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))},
        ValueError,
        "created_at",
    ),
    ({"account_id": SECOND_ACCOUNT_ID}, TypeError, "account_id"),
    ({"account_id": "nope"}, TypeError, "account_id"),
    ({"kind": "stop"}, TypeError, "kind"),
    ({"order_id": "x"}, TypeError, "order_id"),
    ({"bogus": 1}, TypeError, "bogus"),
    # One bad change among good ones: none is applied.
    ({"status": "Working", "requested_price": "4400", "market_id": 123}, TypeError, "market_id"),
]


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def test_every_field_has_a_check() -> None:
    assert set(_CHECKS) == set(attrs.fields_dict(SimulatedOrder))


@pytest.mark.parametrize(
    ("changes", "error", "field"), BAD_CHANGES, ids=[repr(c[0])[:60] for c in BAD_CHANGES]
)
async def test_a_bad_change_changes_nothing_and_breaks_no_hub(
    session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    changes: dict[str, Any],
    error: type[Exception],
    field: str,
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(2)[0]
    before = attrs.asdict(sim.orders[order_id])
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert len((await hub.next())["item"]) == 2
        with pytest.raises(error, match=field):
            sim.update_order(order_id, **changes)
        assert attrs.asdict(sim.orders[order_id]) == before
        assert sim.open_order_ids() == list(sim.orders)
        # The stream heard nothing of it: the next item is the next good change.
        sim.update_order(order_id, status="Working")
        [item] = (await hub.next())["item"]
        assert (item["orderId"], item["status"], item["marketId"]) == (
            order_id,
            "Working",
            "spot.eth_usdt",
        )
    # Later connections, through the library's own client, are served as before.
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=DEFAULT_ACCOUNT_ID) as c:
        assert len(await c.open_orders(timeout=3)) == 2
        result = await c.cancel_all_orders(snapshot_timeout=3)
    assert result.verified
    assert sim.open_order_ids() == []


async def test_a_bad_change_without_a_stream_leaves_the_hub_working(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    for changes, error, field in BAD_CHANGES:
        with pytest.raises(error, match=field):
            sim.update_order(order_id, **changes)
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=DEFAULT_ACCOUNT_ID) as c:
        [order] = await c.open_orders(timeout=3)
    assert order.order_id == order_id


def test_values_are_converted_as_documented() -> None:
    sim = FrontOfficeSimulator()
    order_id = sim.add_orders(1)[0]
    naive = datetime(2025, 8, 15, 9, 0)  # naive on purpose: taken as UTC
    paris = datetime(2025, 8, 15, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    order = sim.update_order(
        order_id,
        requested_price="4400",
        requested_amount=2,
        remaining_amount=0.1,
        commission=Decimal("0.5"),
        created_at=naive,
        cancellation_date=paris,
        updated_at=paris,
    )
    assert order.requested_price == Decimal("4400")
    assert isinstance(order.requested_price, Decimal)
    assert (order.requested_amount, order.remaining_amount) == (Decimal(2), Decimal("0.1"))
    assert str(order.remaining_amount) == "0.1"  # the float's short form, not 0.1000...055
    assert order.created_at == datetime(2025, 8, 15, 9, 0, tzinfo=UTC)
    assert order.cancellation_date == datetime(2025, 8, 15, 9, 0, tzinfo=UTC)
    assert order.cancellation_date.tzinfo is UTC
    assert order.updated_at == paris  # given, so not bumped
    wire = order.to_open_order_wire()
    assert (wire["requestedPrice"], wire["remainingAmount"]) == ("4400", "0.1")
    assert wire["createdAt"] == "2025-08-15T09:00:00.0000000Z"
    order = sim.update_order(order_id, requested_price=None, cancellation_date=None)
    assert (order.requested_price, order.cancellation_date) == (None, None)
    assert order.to_wire()["requestedPrice"] is None


async def test_odd_but_typed_values_stay_possible(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    """Unknown statuses and sides are allowed on purpose, to test a client's tolerance."""
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    ws, hub = await subscribe(session, sim)
    async with ws:
        await hub.next()
        sim.update_order(order_id, status="PartiallyFilledSomehow", side="Short")
        [item] = (await hub.next())["item"]
        assert (item["status"], item["side"]) == ("PartiallyFilledSomehow", "Short")
        assert not sim.orders[order_id].is_active
        sim.update_order(order_id, market_id="perp.btc_usdt")
        [item] = (await hub.next())["item"]
        # The display name follows the market unless given too.
        assert (item["marketId"], item["marketDisplayName"]) == ("perp.btc_usdt", "PERP BTC/USDT")
        sim.update_order(order_id, market_id="spot.sol_usdt", market_display_name="Solana!")
        assert (await hub.next())["item"][0]["marketDisplayName"] == "Solana!"


def test_direct_assignment_is_checked_too() -> None:
    sim = FrontOfficeSimulator()
    order = sim.orders[sim.add_orders(1)[0]]
    with pytest.raises(TypeError, match="market_id"):
        order.market_id = 123  # type: ignore[assignment]
    assert order.market_id == "spot.eth_usdt"
    order.remaining_amount = 0  # type: ignore[assignment]
    assert order.remaining_amount == Decimal(0)
    assert isinstance(order.remaining_amount, Decimal)
    with pytest.raises(TypeError, match="requested_amount"):
        SimulatedOrder(**{**attrs.asdict(order), "requested_amount": None})


async def test_an_order_spoiled_behind_the_checks_ends_only_its_stream(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    """A stream that cannot write an order completes with ASP.NET Core's error; nothing else
    breaks: the connection, other accounts' streams and later connections."""
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    other = sim.add_orders(1, account_id=SECOND_ACCOUNT_ID)[0]
    order = sim.orders[order_id]
    ws, hub = await subscribe(session, sim)
    async with ws:
        await hub.next()
        await ws.send_str(invocation(SECOND_ACCOUNT_ID, "1"))
        assert [o["orderId"] for o in (await hub.next())["item"]] == [other]
        object.__setattr__(order, "requested_price", "4400")  # behind the checks' back
        sim.update_order(order_id)  # announced: the item cannot be written
        completion = await hub.next()
        assert completion["type"] == 3
        assert completion["invocationId"] == "0"
        assert completion["error"].startswith(
            "An error occurred on the server while streaming results. ValueError: "
        )
        # The other stream lives on, and the connection too.
        sim.update_order(other, status="Working")
        assert (await hub.next())["item"][0]["orderId"] == other
        # A new invocation for the spoiled account fails at its snapshot, the same way.
        await ws.send_str(invocation(DEFAULT_ACCOUNT_ID, "2"))
        completion = await hub.next()
        assert (completion["type"], completion["invocationId"]) == (3, "2")
        assert "streaming results" in completion["error"]

    object.__setattr__(order, "requested_price", Decimal(4400))  # repaired
    async with session.ws_connect(hub_url(sim)) as ws2:
        hub2 = Hub(ws2)
        await ws2.send_str(HANDSHAKE + invocation())
        assert await hub2.next() == {}
        assert [o["requestedPrice"] for o in (await hub2.next())["item"]] == ["4400"]


def test_timestamps_keep_four_digit_years() -> None:
    assert format_timestamp(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00.0000000Z"
    assert format_timestamp(datetime(999, 12, 31, 23, 59, 59, 5)) == (  # naive: UTC
        "0999-12-31T23:59:59.0000050Z"
    )
