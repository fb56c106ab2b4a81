"""The OpenOrders hub: SignalR JSON protocol, snapshot then updates, pings, errors, shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import WSMsgType

from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, Fault, FaultPlan, FrontOfficeSimulator
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ._hubclient import (
    HANDSHAKE,
    HUB,
    ORDERS,
    RS,
    SECOND_ACCOUNT_ID,
    Hub,
    auth,
    hub_url,
    invocation,
    subscribe,
)

STREAM_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "open_orders_stream.txt"


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


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

        async with session.delete(f"{sim.url}{ORDERS}/{first}", headers=auth(sim)) as resp:
            assert resp.status == 200
        update = await hub.next()
        assert (update["type"], update["invocationId"]) == (2, "0")
        # Updates are arrays too, as the platform documents `item`.
        [cancelled] = update["item"]
        assert (cancelled["orderId"], cancelled["status"]) == (first, "Cancelled")
        assert cancelled["cancellationDate"] is not None
        assert list(cancelled) == list(item)

        added = sim.add_orders(1)[0]
        assert [o["orderId"] for o in (await hub.next())["item"]] == [added]
        sim.update_order(second, status="Working")
        assert [o["status"] for o in (await hub.next())["item"]] == ["Working"]
        sim.add_orders(1, account_id=SECOND_ACCOUNT_ID)  # another account: no item
        sim.update_order(added, status="Expired")
        assert [o["orderId"] for o in (await hub.next())["item"]] == [added]

    hub_record = sim.requests[0]
    assert (hub_record.endpoint, hub_record.status, hub_record.path) == ("hub", 101, HUB)
    assert (hub_record.token, hub_record.hub_fault) == (sim.token, None)


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


async def test_cancel_invocation_completes_and_stops_the_stream(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(ping_interval=0.05)
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert (await hub.next())["item"] == []
        await ws.send_str(json.dumps({"type": 5, "invocationId": "0"}) + RS)
        # As ASP.NET Core: a cancelled stream ends with a Completion without error.
        assert await hub.next() == {"type": 3, "invocationId": "0"}
        await ws.send_str('{"type":6}' + RS)  # a client ping is accepted silently
        # Cancelling an id that runs no stream is ignored: no second Completion.
        await ws.send_str(json.dumps({"type": 5, "invocationId": "0"}) + RS)
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
        ('{"protocol":"json","version":3}', "does not support version 3 of the 'json' protocol"),
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


async def test_close_with_a_client_that_never_answers(session: aiohttp.ClientSession) -> None:
    sim = FrontOfficeSimulator()
    async with sim:
        sim.add_orders(1)
        ws, hub = await subscribe(session, sim)
        assert (await hub.next())["type"] == 2
        started = time.perf_counter()
    # The client was not reading: the simulator gave up waiting for its close answer.
    assert time.perf_counter() - started < 1.0
    assert asyncio.all_tasks() == {asyncio.current_task()}
    # What it had sent by then still arrives: the Close message, then the close frame.
    messages, end = await hub.until_closed()
    assert messages == [{"type": 7, "allowReconnect": True}]
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
    await ws.close()


async def test_close_sends_a_signalr_close_then_a_normal_close(
    session: aiohttp.ClientSession,
) -> None:
    async with FrontOfficeSimulator() as sim:
        sim.add_orders(1)
        ws, hub = await subscribe(session, sim)
        assert (await hub.next())["type"] == 2
        reader = asyncio.create_task(hub.until_closed())
        await asyncio.sleep(0.01)
        started = time.perf_counter()
    # A client that answers the close at once does not make close() wait out its grace.
    assert time.perf_counter() - started < 0.4
    messages, end = await reader
    # What ASP.NET Core sends on a graceful shutdown; nothing follows it.
    assert messages == [{"type": 7, "allowReconnect": True}]
    assert hub.frames[-1] == '{"type":7,"allowReconnect":true}' + RS
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
    await ws.close()
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_close_before_the_handshake_sends_no_close_message(
    session: aiohttp.ClientSession,
) -> None:
    async with FrontOfficeSimulator() as sim:
        ws = await session.ws_connect(hub_url(sim))
        reader = asyncio.create_task(Hub(ws).until_closed())
        await asyncio.sleep(0.01)
    messages, end = await reader
    assert messages == []
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
    await ws.close()


async def test_binary_frames_are_read_as_utf8_json(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    async with session.ws_connect(hub_url(sim)) as ws:
        hub = Hub(ws)
        stream = json.loads(invocation().rstrip(RS)) | {"invocationId": "ü€"}
        data = (HANDSHAKE + json.dumps(stream, ensure_ascii=False) + RS).encode()
        # Frames split inside a record and inside the euro sign's three UTF-8 bytes.
        euro = data.index("€".encode())
        for chunk in (data[:7], data[7 : euro + 1], data[euro + 1 :]):
            await ws.send_bytes(chunk)
        assert await hub.next() == {}
        snapshot = await hub.next()
        assert snapshot["invocationId"] == "ü€"
        assert [o["orderId"] for o in snapshot["item"]] == [order_id]
        cancel = json.dumps({"type": 5, "invocationId": "ü€"}, ensure_ascii=False) + RS
        await ws.send_bytes(cancel.encode())
        assert await hub.next() == {"type": 3, "invocationId": "ü€"}


async def test_invalid_utf8_closes_with_an_error(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    async with session.ws_connect(hub_url(frontoffice_simulator)) as ws:
        hub = Hub(ws)
        await ws.send_str(HANDSHAKE)
        assert await hub.next() == {}
        await ws.send_bytes(b'{"type":6,"x":"\xff\xfe"}\x1e')
        messages, end = await hub.until_closed()
        [close] = messages
        assert close["type"] == 7
        assert "not valid UTF-8" in close["error"]
        assert "allowReconnect" not in close  # ASP.NET Core writes it only when true
        assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)


async def test_unknown_and_non_streaming_invocations_complete_with_errors(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    async with session.ws_connect(hub_url(frontoffice_simulator)) as ws:
        hub = Hub(ws)
        await ws.send_str(HANDSHAKE)
        assert await hub.next() == {}
        call = {"type": 1, "target": "OpenOrders", "arguments": [DEFAULT_ACCOUNT_ID]}
        await ws.send_str(json.dumps({**call, "invocationId": "1"}) + RS)
        assert "non-streaming invocation" in (await hub.next())["error"]
        await ws.send_str(json.dumps(call) + RS)  # no invocationId: nothing to answer
        # Hub method names are case-insensitive in ASP.NET Core.
        lower = json.loads(invocation(invocation_id="2").rstrip(RS))
        await ws.send_str(json.dumps({**lower, "target": "openorders"}) + RS)
        assert await hub.next() == {"type": 2, "invocationId": "2", "item": []}


async def test_handshake_version_2_is_accepted(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    async with session.ws_connect(hub_url(frontoffice_simulator)) as ws:
        await ws.send_str('{"protocol":"json","version":2}' + RS)
        assert await Hub(ws).next() == {}


async def test_a_silent_client_is_closed_after_client_timeout(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    # Margins for a loaded CI machine: a ping every 0.1 s against a timeout of 0.6 s.
    sim = await frontoffice_simulator_factory(client_timeout=0.6, ping_interval=0.05)
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert (await hub.next())["type"] == 2
        # Pinging keeps the connection: eight pings 0.1 s apart outlive the timeout.
        for _ in range(8):
            await asyncio.sleep(0.1)
            await ws.send_str('{"type":6}' + RS)
        assert not ws.closed
        started = time.perf_counter()
        messages, end = await hub.until_closed()
        assert 0.5 <= time.perf_counter() - started < 3.0
    assert messages == [
        {
            "type": 7,
            "error": "Connection closed with an error. OperationCanceledException: Client "
            "hasn't sent a message/ping within the configured ClientTimeoutInterval.",
            "allowReconnect": True,
        }
    ]
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
