"""Positions: add_positions, the OpenPositions stream, bulk-close and single close."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator, SimulatedPosition

from ._hubclient import (
    BULK_CLOSE,
    HANDSHAKE,
    POSITIONS,
    RS,
    SECOND_ACCOUNT_ID,
    Hub,
    auth,
    hub_url,
    invocation,
    subscribe,
)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
CROCKFORD_ID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
# The fields of the API README, in its order.
POSITION_KEYS = [
    "positionId",
    "marketId",
    "marketType",
    "marketDisplayName",
    "marketFullName",
    "createdAt",
    "updatedAt",
    "side",
    "status",
    "leverage",
    "positionLotAmount",
    "positionPriceInRAT",
    "rateToRAT",
    "usedMarginInRAT",
    "openPrice",
    "currentMarketPrice",
    "unrealizedPnlDayInRAT",
    "unrealizedPnlDayPercent",
    "unrealizedPnlTotalInRAT",
    "unrealizedPnlTotalPercent",
    "takeProfit",
    "stopLoss",
    "positionModifier",
]
VALIDATION_TITLE = "One or more validation errors occurred."


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


async def post(
    session: aiohttp.ClientSession,
    sim: FrontOfficeSimulator,
    path: str,
    body: Any = None,
    *,
    data: str | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"json": body} if data is None and body is not None else {}
    if data is not None:
        kwargs["data"] = data
    async with session.post(
        sim.url + path, headers=auth(sim) if headers is None else headers, **kwargs
    ) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


def close_path(position_id: str) -> str:
    return f"{POSITIONS}/{position_id}/close"


# --- the scene --------------------------------------------------------------------------------


def test_add_positions_builds_believable_positions() -> None:
    sim = FrontOfficeSimulator(seed=3)
    ids = sim.add_positions(3)
    assert ids == FrontOfficeSimulator(seed=3).add_positions(3)  # the same for a seed
    assert ids != FrontOfficeSimulator(seed=4).add_positions(3)
    assert all(CROCKFORD_ID.match(position_id) for position_id in ids)
    assert sim.open_position_ids() == ids
    first = sim.positions[ids[0]]
    assert isinstance(first, SimulatedPosition)
    assert (first.account_id, first.market_id, first.side, first.status) == (
        DEFAULT_ACCOUNT_ID,
        "cfd.btc_usd",
        "Buy",
        "Always Open",
    )
    assert (first.leverage, first.position_lot_amount) == (10, Decimal("0.1"))
    assert [sim.positions[i].side for i in ids] == ["Buy", "Sell", "Buy"]
    # Opened below the current price: Buy in profit, Sell at a loss.
    assert [sim.positions[i].unrealized_pnl > 0 for i in ids] == [True, False, True]
    perp = sim.add_positions(
        2, account_id=SECOND_ACCOUNT_ID, market_id="perp.eth_usdt", side="Sell", lot_amount="2"
    )
    assert sim.open_position_ids(SECOND_ACCOUNT_ID) == perp
    assert sim.positions[perp[0]].leverage is None  # the platform sends leverage for CFD only
    assert sim.positions[perp[1]].position_lot_amount == Decimal(2)
    assert sim.add_positions(1, position_ids=["my/position"]) == ["my/position"]
    assert sim.add_positions(0) == []
    assert "positions=6" in repr(sim)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"market_id": "spot.btc_usdt"}, ValueError, "positions exist on CFD"),
        ({"market_id": "btc_usd"}, ValueError, "positions exist on CFD"),
        ({"market_id": 5}, TypeError, "market_id must be a str"),
        ({"side": "Long"}, ValueError, "side must be"),
        ({"lot_amount": 0}, ValueError, "lot_amount must be positive"),
        ({"lot_amount": "lots"}, ValueError, "lot_amount"),
        ({"lot_amount": None}, TypeError, "lot_amount"),
        ({"account_id": "nope"}, ValueError, "unknown account id 'nope'"),
        ({"count": -1}, ValueError, "count"),
        ({"position_ids": "ab", "count": 2}, TypeError, "position_ids must be a list"),
        ({"position_ids": ["a"], "count": 2}, ValueError, "position_ids has 1 ids"),
        ({"position_ids": ["a", "a"], "count": 2}, ValueError, "distinct"),
        ({"position_ids": ["fresh", "taken"], "count": 2}, ValueError, "'taken' already exists"),
    ],
)
def test_add_positions_refuses(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    sim = FrontOfficeSimulator()
    sim.add_positions(1, position_ids=["taken"])
    with pytest.raises(error, match=message):
        sim.add_positions(**{"count": 1, **kwargs})
    assert list(sim.positions) == ["taken"]  # nothing added


def test_position_fields_are_checked_when_set() -> None:
    sim = FrontOfficeSimulator()
    position = sim.positions[sim.add_positions(1)[0]]
    position.current_market_price = "59000"  # type: ignore[assignment]
    assert position.current_market_price == Decimal(59000)
    assert position.unrealized_pnl < 0
    with pytest.raises(ValueError, match="open_price"):
        position.open_price = Decimal("NaN")
    with pytest.raises(TypeError, match="leverage"):
        position.leverage = "10"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="leverage"):
        position.leverage = 0
    with pytest.raises(TypeError, match="status"):
        position.status = None  # type: ignore[assignment]
    assert position.open_price < position.current_market_price * 2  # unchanged


# --- the OpenPositions stream -----------------------------------------------------------------


async def test_snapshot_is_nested_one_level_deeper_than_open_orders(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    cfd, _ = sim.add_positions(2)
    perp = sim.add_positions(1, market_id="perp.eth_usdt")[0]
    sim.add_positions(1, account_id=SECOND_ACCOUNT_ID)
    ws, hub = await subscribe(session, sim, target="OpenPositions")
    async with ws:
        snapshot = await hub.next()
    assert (snapshot["type"], snapshot["invocationId"]) == (2, "0")
    assert list(snapshot["item"]) == ["item"]
    records = snapshot["item"]["item"]
    assert [r["positionId"] for r in records] == [*sim.open_position_ids(DEFAULT_ACCOUNT_ID)]
    first = records[0]
    assert list(first) == POSITION_KEYS
    assert first["positionId"] == cfd
    assert (first["marketType"], first["marketDisplayName"], first["marketFullName"]) == (
        "Cfd",
        "CFD BTC/USD",
        "Bitcoin / US Dollar",
    )
    assert (first["side"], first["status"], first["leverage"]) == ("Buy", "Always Open", 10)
    assert TIMESTAMP.match(first["createdAt"])
    assert TIMESTAMP.match(first["updatedAt"])
    # Decimals are JSON strings; 0.1 lot opened at 60390, now 61000.
    assert (first["positionLotAmount"], first["openPrice"], first["currentMarketPrice"]) == (
        "0.1",
        "60390",
        "61000",
    )
    assert (first["positionPriceInRAT"], first["rateToRAT"], first["usedMarginInRAT"]) == (
        "6100",
        "1",
        "603.9",
    )
    assert (first["unrealizedPnlTotalInRAT"], first["unrealizedPnlTotalPercent"]) == (
        "61",
        "0.010101",
    )
    assert first["unrealizedPnlDayInRAT"] == first["unrealizedPnlTotalInRAT"]
    assert (first["takeProfit"], first["stopLoss"], first["positionModifier"]) == (
        None,
        None,
        None,
    )
    assert records[1]["unrealizedPnlTotalInRAT"].startswith("-")
    [perpetual] = [r for r in records if r["positionId"] == perp]
    assert (perpetual["marketType"], perpetual["leverage"]) == ("Perp", None)
    decimals = [key for key in POSITION_KEYS if "Amount" in key or "Price" in key or "Pnl" in key]
    assert all(isinstance(record[key], str) for record in records for key in decimals)


async def test_an_empty_account_streams_an_empty_nested_list(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    ws, hub = await subscribe(session, frontoffice_simulator, target="OpenPositions")
    async with ws:
        assert await hub.next() == {"type": 2, "invocationId": "0", "item": {"item": []}}


async def test_both_streams_on_one_connection(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    position_id = sim.add_positions(1)[0]
    async with session.ws_connect(hub_url(sim)) as ws:
        hub = Hub(ws)
        positions = invocation(invocation_id="1", target="openpositions")  # any case, as .NET
        await ws.send_str(HANDSHAKE + invocation() + positions)
        assert await hub.next() == {}
        orders = await hub.next()
        assert [o["orderId"] for o in orders["item"]] == [order_id]
        listed = await hub.next()
        assert listed["invocationId"] == "1"
        assert [p["positionId"] for p in listed["item"]["item"]] == [position_id]
        # A new position is an update of the positions stream only.
        added = sim.add_positions(1)[0]
        update = await hub.next()
        assert update["invocationId"] == "1"
        assert [p["positionId"] for p in update["item"]["item"]] == [added]
        # Cancelling the positions stream leaves the orders stream running.
        await ws.send_str(json.dumps({"type": 5, "invocationId": "1"}) + RS)
        assert await hub.next() == {"type": 3, "invocationId": "1"}
        sim.add_positions(1)
        sim.update_order(order_id, status="Working")
        assert (await hub.next())["invocationId"] == "0"


async def test_stream_errors_name_open_positions(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    narrow = sim.issue_token([DEFAULT_ACCOUNT_ID])
    async with session.ws_connect(hub_url(sim, narrow)) as ws:
        hub = Hub(ws)
        await ws.send_str(HANDSHAKE + invocation(SECOND_ACCOUNT_ID, target="OpenPositions"))
        assert await hub.next() == {}
        refused = await hub.next()
        assert refused["error"] == (
            "Failed to invoke 'OpenPositions' due to an error on the server. HubException: "
            f"Account {SECOND_ACCOUNT_ID} is not accessible with this token."
        )
        no_args = {"type": 4, "target": "OpenPositions", "arguments": [], "invocationId": "1"}
        plain = {"type": 1, "target": "OpenPositions", "arguments": ["x"], "invocationId": "2"}
        await ws.send_str(json.dumps(no_args) + RS + json.dumps(plain) + RS)
        assert "Failed to invoke 'OpenPositions'" in (await hub.next())["error"]
        assert (await hub.next())["error"] == (
            "The client attempted to invoke the streaming 'OpenPositions' method with a "
            "non-streaming invocation."
        )


# --- closing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "closed"),
    [("AllPositions", [0, 1, 2, 3]), ("PositivePnl", [0, 2]), ("NegativePnl", [1, 3])],
)
async def test_bulk_close_closes_what_the_mode_selects(
    session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    mode: str,
    closed: list[int],
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_positions(4)
    flat = sim.add_positions(1, side="Buy")[0]
    sim.positions[flat].open_price = sim.positions[flat].current_market_price  # no PnL
    theirs = sim.add_positions(1, account_id=SECOND_ACCOUNT_ID)
    status, body = await post(session, sim, BULK_CLOSE, {"mode": mode})
    expected = [ids[i] for i in closed] + ([flat] if mode == "AllPositions" else [])
    assert (status, body) == (200, {"status": "accepted", "positionIds": expected})
    assert set(expected).isdisjoint(sim.open_position_ids())
    assert len(sim.open_position_ids(DEFAULT_ACCOUNT_ID)) == 5 - len(expected)
    assert sim.open_position_ids(SECOND_ACCOUNT_ID) == theirs
    for position_id in expected:
        position = sim.positions[position_id]
        assert (position.status, position.position_lot_amount) == ("Closed", Decimal(0))
    record = sim.requests[-1]
    assert (record.endpoint, record.status, record.body) == (
        "close_all_positions",
        200,
        json.dumps({"mode": mode}),
    )


async def test_bulk_close_of_nothing_accepts_an_empty_list(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    status, body = await post(session, frontoffice_simulator, BULK_CLOSE, {"mode": "AllPositions"})
    assert (status, body) == (200, {"status": "accepted", "positionIds": []})


@pytest.mark.parametrize(
    "payload",
    [
        {"data": ""},
        {"data": "{}"},
        {"data": '{"mode": null}'},
        {"data": '{"mode": "allpositions"}'},
        {"data": '{"mode": 0}'},
        {"data": '{"mode": ["AllPositions"]}'},
        {"data": '"AllPositions"'},
        {"data": "[]"},
        {"data": '{"mode": "\\ud800</script>\\u001e"}'},
    ],
    ids=repr,
)
async def test_bulk_close_refuses_a_bad_or_missing_mode(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator, payload: Any
) -> None:
    sim = frontoffice_simulator
    sim.add_positions(2)
    status, body = await post(session, sim, BULK_CLOSE, **payload)
    assert status == 400
    assert (body["title"], body["status"]) == (VALIDATION_TITLE, 400)
    assert list(body["errors"]) == ["mode"]
    assert len(sim.open_position_ids()) == 2


@pytest.mark.parametrize(
    "data", ["{", "nope", '{"mode": "AllPositions"', "[" * 100_000, b"\xff\xfe"], ids=len
)
async def test_a_body_that_is_no_json_is_a_400_on_both_closes(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator, data: Any
) -> None:
    sim = frontoffice_simulator
    position_id = sim.add_positions(1)[0]
    for path in (BULK_CLOSE, close_path(position_id)):
        status, body = await post(session, sim, path, data=data)
        assert (status, body["errors"]) == (400, {"$": ["The request body is not valid JSON."]})
    assert sim.open_position_ids() == [position_id]


@pytest.mark.parametrize(
    ("body", "left"),
    [
        (None, None),  # no body: the whole position, as the platform's example
        ({}, None),
        ({"closePositionLotAmount": None}, None),
        ({"closePositionLotAmount": "0.1"}, None),  # all of it
        ({"closePositionLotAmount": "0.04"}, "0.06"),
        ({"closePositionLotAmount": 0.025}, "0.075"),  # a number is read too
    ],
)
async def test_close_one_position_whole_or_in_part(
    session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    body: Any,
    left: str | None,
) -> None:
    sim = frontoffice_simulator
    position_id, other = sim.add_positions(2)
    status, answer = await post(session, sim, close_path(position_id), body)
    assert (status, answer) == (200, {"positionId": position_id})
    position = sim.positions[position_id]
    if left is None:
        assert (position.status, position.position_lot_amount) == ("Closed", Decimal(0))
        assert sim.open_position_ids() == [other]
    else:
        assert (position.status, position.position_lot_amount) == ("Always Open", Decimal(left))
    record = sim.requests[-1]
    assert (record.endpoint, record.position_id, record.order_id) == (
        "close_position",
        position_id,
        None,
    )
    assert sim.requests_for(position_id) == [record]


async def test_close_one_refuses(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    position_id = sim.add_positions(1)[0]
    theirs = sim.add_positions(1, account_id=SECOND_ACCOUNT_ID)[0]
    for unknown in ("01UNKNOWN", theirs):
        status, body = await post(session, sim, close_path(unknown))
        assert (status, body["title"]) == (404, "Not Found")
        assert body["detail"] == f"Position {unknown} was not found."
    for bad in ("0", "-1", "lots", True, [1], {"lots": 1}, "1E+999999999", "NaN"):
        status, body = await post(
            session, sim, close_path(position_id), {"closePositionLotAmount": bad}
        )
        assert (status, list(body["errors"])) == (400, ["closePositionLotAmount"]), bad
    status, body = await post(
        session, sim, close_path(position_id), {"closePositionLotAmount": "0.2"}
    )
    assert status == 400
    assert body["errors"] == {
        "closePositionLotAmount": ["The closePositionLotAmount exceeds the position's 0.1 lots."]
    }
    status, body = await post(session, sim, close_path(position_id), data="[1]")
    assert (status, body["errors"]) == (400, {"$": ["The request body must be an object."]})
    assert sim.open_position_ids(DEFAULT_ACCOUNT_ID) == [position_id]
    # Closed once, then unknown.
    assert (await post(session, sim, close_path(position_id)))[0] == 200
    status, body = await post(session, sim, close_path(position_id))
    assert status == 404


@pytest.mark.parametrize("path", [BULK_CLOSE, close_path("01K2PF9XS2QJVMDAP9DG9VNY51")])
async def test_closes_check_the_token_and_the_account(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator, path: str
) -> None:
    sim = frontoffice_simulator
    sim.add_positions(1, account_id=SECOND_ACCOUNT_ID)
    body = {"mode": "AllPositions"}
    status, problem = await post(session, sim, path, body, headers={"accountId": "x"})
    assert (status, problem["title"]) == (401, "Unauthorized")
    no_account = {"Authorization": f"Bearer {sim.token}"}
    status, problem = await post(session, sim, path, body, headers=no_account)
    assert (status, problem["errors"]) == (
        400,
        {"accountId": ["The accountId header is required."]},
    )
    narrow = sim.issue_token([DEFAULT_ACCOUNT_ID])
    foreign = {"Authorization": f"Bearer {narrow}", "accountId": SECOND_ACCOUNT_ID}
    status, problem = await post(session, sim, path, body, headers=foreign)
    assert (status, problem["title"]) == (403, "Forbidden")
    assert len(sim.open_position_ids(SECOND_ACCOUNT_ID)) == 1


async def test_closes_are_announced_once_more_as_closed(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    first, second, third = sim.add_positions(3)
    ws, hub = await subscribe(session, sim, target="OpenPositions")
    async with ws:
        snapshot = (await hub.next())["item"]["item"]
        await post(session, sim, close_path(first), {"closePositionLotAmount": "0.03"})
        [partial] = (await hub.next())["item"]["item"]
        assert (partial["positionId"], partial["status"]) == (first, "Always Open")
        assert partial["positionLotAmount"] == "0.07"
        assert partial["updatedAt"] > snapshot[0]["updatedAt"]
        # One bulk close, one update item holding every position it closed.
        status, body = await post(session, sim, BULK_CLOSE, {"mode": "AllPositions"})
        assert (status, body["positionIds"]) == (200, [first, second, third])
        update = await hub.next()
        closed = update["item"]["item"]
        assert [c["positionId"] for c in closed] == [first, second, third]
        for record in closed:
            assert list(record) == POSITION_KEYS
            assert (record["status"], record["positionLotAmount"]) == ("Closed", "0")
            assert record["unrealizedPnlTotalInRAT"] == "0"
            assert record["usedMarginInRAT"] == "0"
        # The next snapshot no longer lists them.
    ws, hub = await subscribe(session, sim, target="OpenPositions")
    async with ws:
        assert (await hub.next())["item"] == {"item": []}
