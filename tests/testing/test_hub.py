"""The OpenOrders hub: SignalR JSON protocol, snapshot then updates, pings, errors, shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import WSMsgType

from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, Fault, FaultPlan, FrontOfficeSimulator
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

pytest_plugins = ["frontoffice_async.testing.pytest_plugin"]

SECOND_ACCOUNT_ID = "685a7eaa360f9e7416221a62"
HUB = "/frontoffice/ws/v4/account"
RS = "\x1e"
HANDSHAKE = '{"protocol":"json","version":1}' + RS
STREAM_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "open_orders_stream.txt"


def invocation(account_id: str = DEFAULT_ACCOUNT_ID, invocation_id: str = "0") -> str:
    message = {
        "type": 4,
        "target": "OpenOrders",
        "arguments": [account_id],
        "invocationId": invocation_id,
    }
    return json.dumps(message) + RS


class Hub:
    """A minimal SignalR reader: splits frames into messages, optionally skipping pings."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.pending: list[Any] = []
        self.frames: list[str] = []

    async def next(self, *, skip_pings: bool = True, timeout: float = 2.0) -> Any:
        while True:
            while self.pending:
                message = self.pending.pop(0)
                if not (skip_pings and message == {"type": 6}):
                    return message
            frame = await self.ws.receive(timeout=timeout)
            assert frame.type is WSMsgType.TEXT, frame
            assert frame.data.endswith(RS)
            self.frames.append(frame.data)
            self.pending.extend(json.loads(part) for part in frame.data.split(RS)[:-1])


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def hub_url(sim: FrontOfficeSimulator, token: str | None = None) -> str:
    return f"{sim.url}{HUB}?access_token={token or sim.token}"


async def subscribe(
    session: aiohttp.ClientSession, sim: FrontOfficeSimulator, account_id: str = DEFAULT_ACCOUNT_ID
) -> tuple[aiohttp.ClientWebSocketResponse, Hub]:
    ws = await session.ws_connect(hub_url(sim))
    hub = Hub(ws)
    await ws.send_str(HANDSHAKE + invocation(account_id))  # two messages, one frame
    assert await hub.next() == {}
    return ws, hub


async def test_snapshot_then_updates(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    first, second = sim.add_orders(2)
    sim.add_orders(1, account_id=SECOND_ACCOUNT_ID)
    sim.add_stop_orders(1)
    sim.add_orders(1, status="Completed")
    ws, hub = await subscribe(session, sim)
    async with ws:
        snapshot = await hub.next()
        assert snapshot["type"] == 2
        assert snapshot["invocationId"] == "0"
        items = snapshot["item"]
        assert [item["orderId"] for item in items] == [first, second]
        item = items[0]
        assert item["marketType"] == "Spot"
        assert item["marketFullName"] == "Ethereum / Tether"
        assert (item["status"], item["side"], item["orderType"]) == ("Pending", "Buy", "Limit")
        assert (item["commissionAssetId"], item["commissionAmount"], item["leverage"]) == (
            "usdt",
            "0",
            1,
        )
        assert (item["reason"], item["takeProfit"], item["stopLoss"]) == ("Trader", None, None)
        if STREAM_SAMPLE.exists():
            frame = next(
                line
                for line in STREAM_SAMPLE.read_text().splitlines()
                if line.startswith('{"type":2')
            )
            documented = [json.loads(part) for part in frame.split(RS) if part]
            assert list(item) == list(documented[0]["item"][0])

        async with session.delete(
            f"{sim.url}/frontoffice/api/v3/orders/{first}",
            headers={"Authorization": f"Bearer {sim.token}", "accountId": DEFAULT_ACCOUNT_ID},
        ) as resp:
            assert resp.status == 200
        update = await hub.next()
        assert update["type"] == 2
        assert (update["item"]["orderId"], update["item"]["status"]) == (first, "Cancelled")
        assert update["item"]["cancellationDate"] is not None

        added = sim.add_orders(1)[0]
        assert (await hub.next())["item"]["orderId"] == added
        sim.update_order(second, status="Working")
        assert (await hub.next())["item"]["status"] == "Working"
        sim.add_orders(1, account_id=SECOND_ACCOUNT_ID)  # another account: no item
        sim.update_order(added, status="Expired")
        assert (await hub.next())["item"]["orderId"] == added

    hub_record = sim.requests[0]
    assert (hub_record.endpoint, hub_record.status, hub_record.path) == ("hub", 101, HUB)
    assert hub_record.token == sim.token


async def test_empty_snapshot_is_a_list(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    ws, hub = await subscribe(session, frontoffice_simulator, SECOND_ACCOUNT_ID)
    async with ws:
        assert await hub.next() == {"type": 2, "invocationId": "0", "item": []}


async def test_pings_when_idle(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(ping_interval=0.05)
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert (await hub.next())["type"] == 2
        started = time.perf_counter()
        assert await hub.next(skip_pings=False) == {"type": 6}
        assert await hub.next(skip_pings=False) == {"type": 6}
        assert 0.08 <= time.perf_counter() - started < 1.0


async def test_stream_errors_complete_the_invocation(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    narrow = sim.issue_token([DEFAULT_ACCOUNT_ID])
    async with session.ws_connect(hub_url(sim, narrow)) as ws:
        hub = Hub(ws)
        await ws.send_str(HANDSHAKE)
        assert await hub.next() == {}
        await ws.send_str(invocation(SECOND_ACCOUNT_ID, "0"))
        foreign = await hub.next()
        assert (foreign["type"], foreign["invocationId"]) == (3, "0")
        assert SECOND_ACCOUNT_ID in foreign["error"]
        unknown = {"type": 4, "target": "Trades", "arguments": [], "invocationId": "1"}
        bad_args = {"type": 4, "target": "OpenOrders", "arguments": [], "invocationId": "2"}
        await ws.send_str(json.dumps(unknown) + RS + json.dumps(bad_args) + RS)
        assert await hub.next() == {
            "type": 3,
            "invocationId": "1",
            "error": "Unknown hub method 'Trades'",
        }
        assert "expects 1" in (await hub.next())["error"]
        # The connection still works after failed invocations.
        await ws.send_str(invocation(DEFAULT_ACCOUNT_ID, "3"))
        assert await hub.next() == {"type": 2, "invocationId": "3", "item": []}


async def test_cancel_invocation_stops_the_stream(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(ping_interval=0.05)
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert (await hub.next())["item"] == []
        await ws.send_str(json.dumps({"type": 5, "invocationId": "0"}) + RS)
        await ws.send_str('{"type":6}' + RS)  # a client ping is accepted silently
        # A round trip proves the hub has handled the cancel before the order arrives.
        await ws.send_str(json.dumps({"type": 4, "target": "X", "invocationId": "9"}) + RS)
        assert (await hub.next())["invocationId"] == "9"
        sim.add_orders(1)
        # The next message is a ping: no item for the cancelled stream.
        assert await hub.next(skip_pings=False) == {"type": 6}


async def test_close_message_closes_the_connection(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    ws, hub = await subscribe(session, frontoffice_simulator)
    async with ws:
        assert (await hub.next())["type"] == 2
        await ws.send_str('{"type":7}' + RS)
        message = await ws.receive(timeout=2)
        assert message.type is WSMsgType.CLOSE


@pytest.mark.parametrize(
    ("handshake", "error"),
    [
        ('{"protocol":"messagepack","version":1}', "The protocol 'messagepack' is not supported."),
        ('{"protocol":"json","version":2}', "version 2"),
        ("not json", "handshake"),
    ],
)
async def test_bad_handshake_is_refused(
    session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    handshake: str,
    error: str,
) -> None:
    async with session.ws_connect(hub_url(frontoffice_simulator)) as ws:
        hub = Hub(ws)
        await ws.send_str(handshake + RS)
        answer = await hub.next()
        assert error in answer["error"]
        assert (await ws.receive(timeout=2)).type is WSMsgType.CLOSE


async def test_bad_token_is_refused_before_the_upgrade(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    revoked = sim.issue_token()
    sim.revoke_token(revoked)
    for token in ("nope", revoked):
        with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
            await session.ws_connect(hub_url(sim, token))
        assert caught.value.status == 401
    assert [(r.endpoint, r.status) for r in sim.requests] == [("hub", 401), ("hub", 401)]


async def test_hub_faults_when_enabled(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    plan = FaultPlan(sequence=[Fault.rate_limited()], endpoints={"hub"})
    sim = await frontoffice_simulator_factory(faults=plan)
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await session.ws_connect(hub_url(sim))
    assert caught.value.status == 429
    async with session.ws_connect(hub_url(sim)) as ws:
        await ws.send_str(HANDSHAKE)
        assert await Hub(ws).next() == {}


async def test_close_with_a_client_still_connected(session: aiohttp.ClientSession) -> None:
    sim = FrontOfficeSimulator()
    async with sim:
        sim.add_orders(1)
        ws, hub = await subscribe(session, sim)
        assert (await hub.next())["type"] == 2
        started = time.perf_counter()
    # The client was not reading: the simulator gave up waiting for its close answer.
    assert time.perf_counter() - started < 1.0
    assert asyncio.all_tasks() == {asyncio.current_task()}
    closing = await ws.receive(timeout=2)
    assert closing.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    await ws.close()


async def test_close_while_the_client_reads(session: aiohttp.ClientSession) -> None:
    async with FrontOfficeSimulator() as sim:
        ws, hub = await subscribe(session, sim)
        assert (await hub.next())["type"] == 2
        reader = asyncio.create_task(ws.receive(timeout=2))
        await asyncio.sleep(0.01)
    message = await reader
    assert (message.type, message.data) == (WSMsgType.CLOSE, 1001)
    await ws.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}
