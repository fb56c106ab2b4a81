"""The OpenOrders hub: against the simulator, and against a hand-written SignalR server."""

from __future__ import annotations

import asyncio
import json
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol

import aiohttp
import attrs
import pytest
import pytest_asyncio
from aiohttp import web

from frontoffice_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    FrontOfficeClient,
    FrontOfficeError,
    HubError,
    OpenOrder,
    OrderSide,
    OrderStatus,
    ResponseValidationError,
)
from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from .conftest import sample

SECOND_ACCOUNT_ID = "685a7eaa360f9e7416221a62"
TOKEN = "tok-SENTINEL-7c21e9"
RS = "\x1e"
HUB_PATH = "/frontoffice/ws/v4/account"


def assert_token_hidden(error: BaseException, token: str) -> None:
    """The token is in no message, repr or traceback of the error (or its causes)."""
    assert token not in str(error)
    assert token not in repr(error)
    assert token not in "".join(traceback.format_exception(error))
    for name in ("url", "body"):
        assert token not in str(getattr(error, name, ""))


def hub_requests(sim: FrontOfficeSimulator) -> list[tuple[str | None, int | None]]:
    """(token, status) of each hub connection attempt the simulator saw."""
    return [(r.token, r.status) for r in sim.requests if r.endpoint == "hub"]


# --- against the simulator ---------------------------------------------------------------------


def client_for(sim: FrontOfficeSimulator, **kwargs: Any) -> FrontOfficeClient:
    kwargs.setdefault("token", sim.token)
    return FrontOfficeClient(sim.url, account_id=DEFAULT_ACCOUNT_ID, **kwargs)


async def test_open_orders_is_a_snapshot_of_the_accounts_open_orders(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    eth = sim.add_orders(3, market_id="spot.eth_usdt")
    btc = sim.add_orders(2, market_id="spot.btc_usdt", side="Sell")
    sim.add_orders(1, status="Completed")  # not open
    theirs = sim.add_orders(2, account_id=SECOND_ACCOUNT_ID)

    async with client_for(sim) as client:
        orders = await client.open_orders()
        other_account = await client.open_orders(account_id=SECOND_ACCOUNT_ID)
        await client.cancel_orders([eth[1], btc[0]])
        after = await client.open_orders()

    assert all(isinstance(order, OpenOrder) for order in orders)
    assert [order.order_id for order in orders] == [*eth, *btc]
    first, last = orders[0], orders[-1]
    assert first.market_id == "spot.eth_usdt" and first.market_type == "Spot"
    assert first.side == OrderSide.BUY and orders[1].side == OrderSide.SELL
    assert first.status == OrderStatus.PENDING and first.is_active
    assert first.requested_amount == Decimal("0.1") == first.remaining_amount
    assert first.commission_asset_id == "usdt"
    assert first.created_at.tzinfo is not None
    assert last.market_id == "spot.btc_usdt" and last.side == OrderSide.SELL
    assert last.market_display_name == "SPOT BTC/USDT"
    assert [order.order_id for order in other_account] == theirs
    assert [order.order_id for order in after] == [eth[0], eth[2], btc[1]]
    # One hub connection per snapshot, each with the token in its query only.
    assert hub_requests(sim) == [(sim.token, 101)] * 3


async def test_stream_yields_the_snapshot_then_updates_and_skips_pings(
    frontoffice_simulator_factory: SimulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = await frontoffice_simulator_factory(ping_interval=0.01)
    ids = sim.add_orders(3)
    frames: list[str] = []
    receive = aiohttp.ClientWebSocketResponse.receive

    async def spy(self: aiohttp.ClientWebSocketResponse, timeout: float | None = None) -> Any:
        message = await receive(self, timeout)
        if message.type is aiohttp.WSMsgType.TEXT:
            frames.append(message.data)
        return message

    monkeypatch.setattr(aiohttp.ClientWebSocketResponse, "receive", spy)
    async with client_for(sim) as client, client.stream_open_orders() as stream:
        assert sim.token not in repr(stream) and sim.token not in stream.safe_url
        snapshot = await anext(stream)
        assert [order.order_id for order in snapshot] == ids
        await asyncio.sleep(0.05)  # silence: the hub sends pings every 10 ms
        await client.cancel_order(ids[1])
        update = await anext(stream)

    assert [order.order_id for order in update] == [ids[1]]
    assert update[0].status == OrderStatus.CANCELLED and not update[0].is_active
    assert update[0].cancellation_date is not None
    pings = [frame for frame in frames if frame == '{"type":6}' + RS]
    assert len(pings) >= 2, frames  # they arrived between the two items, and were skipped


async def test_stream_of_an_account_the_token_does_not_own_is_a_hub_error(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    token = sim.issue_token([DEFAULT_ACCOUNT_ID])
    async with client_for(sim, token=token) as client:
        assert await client.open_orders() == []
        with pytest.raises(HubError, match="not accessible with this token") as excinfo:
            await client.open_orders(account_id=SECOND_ACCOUNT_ID)
    assert isinstance(excinfo.value, FrontOfficeError)
    assert_token_hidden(excinfo.value, token)


async def test_invalid_token_is_an_authentication_error_before_the_upgrade(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    async with client_for(sim, token=TOKEN) as client:
        with pytest.raises(AuthenticationError) as excinfo:
            await client.open_orders()
    assert excinfo.value.status == 401
    assert hub_requests(sim) == [(TOKEN, 401)]  # one attempt: a fixed token cannot refresh
    assert_token_hidden(excinfo.value, TOKEN)


async def test_revoked_refreshable_token_is_refreshed_once(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(2)
    revoked, fresh = sim.issue_token(), sim.issue_token()
    sim.revoke_token(revoked)
    handed_out = [revoked, fresh]
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return handed_out.pop(0)

    async with client_for(sim, token=provider) as client:
        orders = await client.open_orders()

    assert [order.order_id for order in orders] == ids
    assert calls == 2
    assert hub_requests(sim) == [(revoked, 401), (fresh, 101)]


async def test_refresh_happens_only_once_when_the_new_token_fails_too(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return f"{TOKEN}-{calls}"

    async with client_for(sim, token=provider) as client:
        with pytest.raises(AuthenticationError) as excinfo:
            await client.open_orders()
    assert calls == 2
    assert hub_requests(sim) == [(f"{TOKEN}-1", 401), (f"{TOKEN}-2", 401)]
    assert_token_hidden(excinfo.value, TOKEN)


# --- against a hand-written hub ----------------------------------------------------------------

# The server's frame of the sample session: snapshot item, ping, update item (three messages).
# (Not `splitlines()`: it splits at the record separator too.)
SAMPLE_FRAME = next(
    line
    for line in sample("open_orders_stream.txt").decode().split("\n")
    if line.startswith('{"type":2')
)
SNAPSHOT_MESSAGE, _, UPDATE_MESSAGE = (json.loads(m) for m in SAMPLE_FRAME.split(RS) if m)
ORDER_WIRE: dict[str, Any] = SNAPSHOT_MESSAGE["item"][0]
ORDER_ID = ORDER_WIRE["orderId"]
UPDATE_ID = UPDATE_MESSAGE["item"]["orderId"]


def message(data: dict[str, Any]) -> str:
    return json.dumps(data) + RS


def item(data: Any, invocation_id: str = "0") -> str:
    return message({"type": 2, "invocationId": invocation_id, "item": data})


PING = message({"type": 6})
OK = "{}" + RS  # the handshake reply


@attrs.define
class HubScript:
    """What the hand-written hub sends, and what it saw."""

    frames: list[str]
    handshake_reply: str = "{}" + RS
    #: Close the websocket after the frames instead of waiting for the client.
    close: bool = False
    url: str = ""
    queries: list[dict[str, str]] = attrs.field(factory=list)
    received: list[str] = attrs.field(factory=list)

    def received_messages(self) -> list[dict[str, Any]]:
        return [json.loads(m) for text in self.received for m in text.split(RS) if m]


class HubFactory(Protocol):
    async def __call__(
        self, frames: list[str], *, handshake_reply: str = ..., close: bool = ...
    ) -> HubScript: ...


@pytest_asyncio.fixture
async def scripted_hub() -> AsyncIterator[HubFactory]:
    """Start loopback SignalR hubs that answer the handshake, then send scripted frames."""
    runners: list[web.AppRunner] = []
    sockets: set[web.WebSocketResponse] = set()

    def handler_for(script: HubScript) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.StreamResponse:
            script.queries.append(dict(request.query))
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            sockets.add(ws)
            try:
                script.received.append(await ws.receive_str())  # the handshake
                await ws.send_str(script.handshake_reply)
                if '"error"' not in script.handshake_reply:
                    script.received.append(await ws.receive_str())  # the invocation
                    for frame in script.frames:
                        await ws.send_str(frame)
                    if script.close:
                        await ws.close()
                        return ws
                async for msg in ws:  # until the client closes
                    if msg.type is aiohttp.WSMsgType.TEXT:
                        script.received.append(msg.data)
            finally:
                sockets.discard(ws)
            return ws

        return handle

    async def start(
        frames: list[str], *, handshake_reply: str = "{}" + RS, close: bool = False
    ) -> HubScript:
        script = HubScript(frames, handshake_reply=handshake_reply, close=close)
        app = web.Application()
        app.router.add_get(HUB_PATH, handler_for(script))

        async def close_sockets(_: web.Application) -> None:
            for ws in list(sockets):
                await ws.close()

        app.on_shutdown.append(close_sockets)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        script.url = f"http://{host}:{port}"
        return script

    try:
        yield start
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


def hub_client(script: HubScript) -> FrontOfficeClient:
    return FrontOfficeClient(script.url, token=TOKEN, account_id=DEFAULT_ACCOUNT_ID)


def assert_protocol_followed(script: HubScript) -> None:
    """The client put the token in the query and spoke SignalR's opening lines."""
    assert script.queries == [{"access_token": TOKEN}]
    opening = script.received_messages()[:2]
    assert opening[0] == {"protocol": "json", "version": 1}
    assert opening[1] == {
        "type": 4,
        "target": "OpenOrders",
        "arguments": [DEFAULT_ACCOUNT_ID],
        "invocationId": "0",
    }


@pytest.mark.parametrize(
    ("frames", "handshake_reply", "expected_ids"),
    [
        pytest.param([PING, item([ORDER_WIRE])], OK, [ORDER_ID], id="ping then list item"),
        pytest.param([item(ORDER_WIRE)], OK, [ORDER_ID], id="one order as a dict"),
        pytest.param(
            [PING + item([ORDER_WIRE]) + PING], OK, [ORDER_ID], id="messages in one frame"
        ),
        pytest.param([], OK + item([ORDER_WIRE]), [ORDER_ID], id="handshake reply and item"),
        pytest.param([item([])], OK, [], id="empty snapshot"),
        pytest.param(
            [message({"type": 3, "invocationId": "0"})], OK, [], id="completion, no items"
        ),
        pytest.param([message({"type": 7})], OK, [], id="close message without error"),
        pytest.param(
            [item([UPDATE_MESSAGE["item"]], "7"), item([ORDER_WIRE])],
            OK,
            [ORDER_ID],
            id="item of another invocation ignored",
        ),
    ],
)
async def test_snapshot_from_scripted_frames(
    scripted_hub: HubFactory, frames: list[str], handshake_reply: str, expected_ids: list[str]
) -> None:
    script = await scripted_hub(frames, handshake_reply=handshake_reply)
    async with hub_client(script) as client:
        orders = await client.open_orders(timeout=5)
    assert [order.order_id for order in orders] == expected_ids
    assert_protocol_followed(script)


async def test_sample_session_frame_yields_snapshot_then_update(
    scripted_hub: HubFactory,
) -> None:
    script = await scripted_hub([SAMPLE_FRAME + RS])
    async with hub_client(script) as client:
        async with client.stream_open_orders() as stream:
            snapshot = await anext(stream)
            update = await anext(stream)
        await asyncio.sleep(0.01)  # let the server read what the client sent last

    assert [order.order_id for order in snapshot] == [ORDER_ID]
    assert snapshot[0].leverage == Decimal(1)
    assert [order.order_id for order in update] == [UPDATE_ID]
    assert update[0].take_profit is not None
    assert update[0].take_profit.price == Decimal("60000")
    assert update[0].fill_factor == Decimal("0.7")
    assert update[0].status == OrderStatus.WORKING
    assert_protocol_followed(script)
    # Leaving the stream early cancels the stream invocation before closing.
    assert script.received_messages()[2:] == [{"type": 5, "invocationId": "0"}]


@pytest.mark.parametrize(
    ("frames", "options", "error", "match"),
    [
        pytest.param(
            [message({"type": 3, "invocationId": "0", "error": "boom"})],
            {},
            HubError,
            "OpenOrders stream failed: boom",
            id="error completion",
        ),
        pytest.param(
            [message({"type": 7, "error": "going away"})],
            {},
            HubError,
            "going away",
            id="close message with error",
        ),
        pytest.param(
            [], {"handshake_reply": '{"error":"bad"}' + RS}, HubError, "bad", id="handshake"
        ),
        pytest.param(["not json" + RS], {}, ResponseValidationError, "not JSON", id="garbage"),
        pytest.param(["[1,2]" + RS], {}, ResponseValidationError, "not a JSON object", id="array"),
        pytest.param(
            ['{"type":6}'], {}, ResponseValidationError, "record separator", id="no separator"
        ),
        pytest.param(
            [item([{**ORDER_WIRE, "status": 7}])],
            {},
            ResponseValidationError,
            "item",
            id="bad order field",
        ),
        pytest.param([], {"close": True}, APIConnectionError, "closed", id="server closes"),
    ],
)
async def test_hub_failures_map_to_errors(
    scripted_hub: HubFactory,
    frames: list[str],
    options: dict[str, Any],
    error: type[FrontOfficeError],
    match: str,
) -> None:
    script = await scripted_hub(frames, **options)
    async with hub_client(script) as client:
        with pytest.raises(error, match=match) as excinfo:
            await client.open_orders(timeout=5)
    assert type(excinfo.value) is error
    assert_token_hidden(excinfo.value, TOKEN)
    assert script.queries == [{"access_token": TOKEN}]


async def test_hub_that_never_sends_the_snapshot_times_out(scripted_hub: HubFactory) -> None:
    script = await scripted_hub([PING])
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with hub_client(script) as client:
        with pytest.raises(
            APITimeoutError, match=r"no OpenOrders snapshot within 0\.2s"
        ) as excinfo:
            await client.open_orders(timeout=0.2)
        await asyncio.sleep(0.01)  # let the server read what the client sent last
    assert 0.2 <= loop.time() - started < 2.0
    assert isinstance(excinfo.value, APIConnectionError)
    assert_token_hidden(excinfo.value, TOKEN)
    assert_protocol_followed(script)
    assert script.received_messages()[2:] == [{"type": 5, "invocationId": "0"}]


async def test_hub_that_refuses_connections_is_a_connection_error() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    async with FrontOfficeClient(url, token=TOKEN, account_id=DEFAULT_ACCOUNT_ID) as client:
        with pytest.raises(APIConnectionError) as excinfo:
            await client.open_orders(timeout=5)
    assert type(excinfo.value) is APIConnectionError
    assert_token_hidden(excinfo.value, TOKEN)
