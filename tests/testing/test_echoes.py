"""Text a client sends and the simulator echoes can never break an answer or a connection.

JSON lets a client send a lone surrogate (`"\\ud800"`), which UTF-8 cannot carry; so can a
header's undecodable bytes. Echoed in an error, such text made the hub's writer die (the
client then waited for ever) or the REST answer a 500; stored in an order, it broke every
later snapshot of that account.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web

from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator

from ._hubclient import HANDSHAKE, ORDERS, RS, Hub, auth, hub_url, invocation, subscribe

LONE = "\ud800"


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def raw(message: dict[str, Any]) -> str:
    """The message as a client's JSON encoder writes it: lone surrogates as escapes."""
    return json.dumps(message) + RS


@pytest.mark.parametrize(
    ("message", "invocation_id", "error"),
    [
        (
            {"type": 1, "target": LONE, "arguments": [], "invocationId": "1"},
            "1",
            f"Unknown hub method '{LONE}'",
        ),
        (
            {"type": 4, "target": "OpenOrders", "arguments": [LONE], "invocationId": "2"},
            "2",
            f"HubException: Account {LONE} is not accessible with this token.",
        ),
        (
            {"type": 4, "target": "OpenOrders", "arguments": ["x"], "invocationId": LONE},
            LONE,
            "HubException: Account x is not accessible with this token.",
        ),
    ],
)
async def test_the_hub_echoes_lone_surrogates_as_escapes(
    session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    message: dict[str, Any],
    invocation_id: str,
    error: str,
) -> None:
    sim = frontoffice_simulator
    sim.add_orders(1)
    async with session.ws_connect(hub_url(sim)) as ws:
        hub = Hub(ws)
        await ws.send_str(HANDSHAKE + raw(message))
        assert await hub.next() == {}
        completion = await hub.next()
        assert (completion["type"], completion["invocationId"]) == (3, invocation_id)
        assert completion["error"].endswith(error)
        assert "\\ud800" in hub.frames[-1]  # escaped: the frame is valid UTF-8
        # The connection lives on.
        await ws.send_str(invocation())
        assert len((await hub.next())["item"]) == 1


async def test_place_order_refuses_what_cannot_be_stored(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    good = {
        "marketId": "spot.eth_usdt",
        "side": "Buy",
        "orderType": "Limit",
        "timeInForce": "Gtc",
        "requestedAmount": "0.1",
        "requestedPrice": "4400",
    }
    for change, field in [
        ({"marketId": LONE}, "order.marketId"),
        ({"marketId": f"spot.{LONE}_usdt", "orderType": "Market"}, "order.marketId"),
        ({"requestedAmount": "1E+30"}, "order.requestedAmount"),
        ({"requestedPrice": "0." + "0" * 28 + "1"}, "order.requestedPrice"),
    ]:
        body = json.dumps({"order": {**good, **change}})
        headers = {**auth(sim), "Content-Type": "application/json"}
        async with session.post(sim.url + ORDERS, data=body, headers=headers) as resp:
            assert resp.status == 400, change
            assert field in (await resp.json())["errors"]
    assert sim.orders == {}
    # Non-ASCII text is fine, as it is on the platform.
    body = json.dumps({"order": {**good, "marketId": "spot.éth_usdt"}})
    async with session.post(sim.url + ORDERS, data=body, headers=auth(sim)) as resp:
        assert resp.status == 200
        assert (await resp.json())["order"]["marketDisplayName"] == "SPOT ÉTH/USDT"
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert [o["marketId"] for o in (await hub.next())["item"]] == ["spot.éth_usdt"]


async def test_an_undecodable_account_header_gets_its_403(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    host, port = sim.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"DELETE /frontoffice/api/v3/orders/x HTTP/1.1\r\nHost: x\r\n"
        b"Authorization: Bearer " + sim.token.encode() + b"\r\n"
        b"accountId: ab\xed\xa0\x80\xffc\r\nConnection: close\r\n\r\n"
    )
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 403 ")
    assert json.loads(body)["detail"].startswith("Account ab")


def test_order_text_must_be_utf8() -> None:
    sim = FrontOfficeSimulator()
    order_id = sim.add_orders(1)[0]
    with pytest.raises(ValueError, match=r"market_id .* lone surrogate"):
        sim.update_order(order_id, market_id=LONE)
    with pytest.raises(ValueError, match=r"status .* lone surrogate"):
        sim.add_orders(1, status=f"Pending{LONE}")
    assert sim.update_order(order_id, status="Ausgeführt").status == "Ausgeführt"
    with pytest.raises(ValueError, match=r"order_id .* lone surrogate"):
        sim.add_orders(2, order_ids=["fine", f"bad{LONE}"])
    assert list(sim.orders) == [order_id]  # "fine" was not added either
    assert sim.add_orders(1, order_ids=["ordre-été"]) == ["ordre-été"]


async def test_a_failing_writer_ends_its_connection_instead_of_hanging_it(
    session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Defence in depth: should sending ever fail unexpectedly, the client is not left
    waiting for a message that will never come, and later connections are served."""
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    send_str = web.WebSocketResponse.send_str

    async def failing_send_str(self: web.WebSocketResponse, data: str, *args: Any) -> None:
        if "Exploding" in data:
            raise RuntimeError("a bug in the writer")
        await send_str(self, data, *args)

    monkeypatch.setattr(web.WebSocketResponse, "send_str", failing_send_str)
    ws, hub = await subscribe(session, sim)
    async with ws:
        await hub.next()
        sim.update_order(order_id, status="Exploding")
        frame = await ws.receive(timeout=2)
        assert frame.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
    sim.update_order(order_id, status="Pending")
    ws, hub = await subscribe(session, sim, DEFAULT_ACCOUNT_ID)
    async with ws:
        assert [o["status"] for o in (await hub.next())["item"]] == ["Pending"]


async def test_a_message_nested_too_deep_is_a_bad_message(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    """json.loads raises RecursionError, not ValueError, on deep nesting: once it killed the
    connection's reader with a traceback instead of closing as for any unreadable message."""
    sim = frontoffice_simulator
    async with session.ws_connect(hub_url(sim)) as ws:
        await ws.send_str(HANDSHAKE + "[" * 100_000 + RS)
        messages, end = await Hub(ws).until_closed()
    assert messages == [
        {},
        {
            "type": 7,
            "error": "Connection closed with an error. InvalidDataException: bad message.",
        },
    ]
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
    async with session.post(f"{sim.url}{ORDERS}", headers=auth(sim), data="[" * 100_000) as resp:
        assert resp.status == 400


async def test_a_body_over_the_limit_is_a_logged_413(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    async with session.post(
        f"{sim.url}{ORDERS}", headers=auth(sim), data=io.BytesIO(b"x" * (2 << 20))
    ) as resp:
        assert resp.status == 413
    record = sim.requests[0]
    assert (record.endpoint, record.status, record.body) == ("place_order", 413, None)
