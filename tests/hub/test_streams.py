"""The OpenOrders hub: against the simulator, and against a scripted SignalR server.

Snapshots are never assumed (the hub closing, completing, dropping or going quiet first means
connecting again), the live stream reconnects with a fresh snapshot, and every frame shape the
protocol allows is read. Safety (secrets, redirects, lifecycle) is in test_streams_safety.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

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
    RetryEvent,
    RetryPolicy,
    ServerError,
)
from frontoffice_async._hub import connection
from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from .._scripted_hub import (
    CLOSE,
    CLOSE_RECONNECT,
    COMPLETION,
    OK,
    PING,
    RS,
    Conn,
    HubScript,
    ScriptedHubs,
    item,
    message,
)
from ..support import Sleeps, sample

SECOND_ACCOUNT_ID = "685a7eaa360f9e7416221a62"
TOKEN = "tok-SENTINEL-7c21e9"


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
        assert snapshot.is_snapshot
        assert [order.order_id for order in snapshot.orders] == ids
        await asyncio.sleep(0.05)  # silence: the hub sends pings every 10 ms
        await client.cancel_order(ids[1])
        update = await anext(stream)

    assert not update.is_snapshot
    assert [order.order_id for order in update.orders] == [ids[1]]
    assert update.orders[0].status == OrderStatus.CANCELLED and not update.orders[0].is_active
    assert update.orders[0].cancellation_date is not None
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
    assert len(hub_requests(sim)) == 2  # an error Completion is final: no reconnect


async def test_invalid_token_is_an_authentication_error_before_the_upgrade(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    async with client_for(sim, token=TOKEN) as client:
        with pytest.raises(AuthenticationError) as excinfo:
            await client.open_orders()
    assert excinfo.value.status == 401
    assert hub_requests(sim) == [(TOKEN, 401)]  # one attempt: a fixed token cannot refresh


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
    assert excinfo.value.attempts == 2
    assert hub_requests(sim) == [(f"{TOKEN}-1", 401), (f"{TOKEN}-2", 401)]


# --- against a scripted hub --------------------------------------------------------------------

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
UPDATE_WIRE: dict[str, Any] = UPDATE_MESSAGE["item"]
UPDATE_ID = UPDATE_WIRE["orderId"]
SNAPSHOT = item([ORDER_WIRE])
OTHER_SNAPSHOT = item([UPDATE_WIRE])


def hub_client(
    script: HubScript,
    *,
    sleeps: Sleeps | None = None,
    server_timeout: float | None = None,
    **kwargs: Any,
) -> FrontOfficeClient:
    """A client of the scripted hub; backoff sleeps recorded, jitter pinned to 0.5."""
    kwargs.setdefault("token", TOKEN)
    kwargs.setdefault("rand", lambda: 0.5)
    client = FrontOfficeClient(
        script.url, account_id=DEFAULT_ACCOUNT_ID, sleep=sleeps or Sleeps(), **kwargs
    )
    if server_timeout is not None:
        client._hub.server_timeout = server_timeout  # what a snapshot counts as silence
    return client


def assert_protocol_followed(script: HubScript, connection: int = 0) -> None:
    """The client put the token in the query and spoke SignalR's opening lines."""
    assert script.queries[connection] == {"access_token": TOKEN}
    opening = script.messages(connection)[:2]
    assert opening[0] == {"protocol": "json", "version": 1}
    assert opening[1] == {
        "type": 4,
        "target": "OpenOrders",
        "arguments": [DEFAULT_ACCOUNT_ID],
        "invocationId": "0",
    }


@pytest.mark.parametrize(
    ("conn", "expected_ids"),
    [
        pytest.param(Conn([PING, SNAPSHOT]), [ORDER_ID], id="ping then array item"),
        pytest.param(Conn([item(ORDER_WIRE)]), [ORDER_ID], id="one order as an object"),
        pytest.param(Conn([PING + SNAPSHOT + PING]), [ORDER_ID], id="messages in one frame"),
        pytest.param(Conn(handshake_reply=OK + SNAPSHOT), [ORDER_ID], id="handshake and item"),
        pytest.param(Conn([SNAPSHOT.encode()]), [ORDER_ID], id="binary frame"),
        pytest.param(Conn([item([])]), [], id="empty snapshot"),
        pytest.param(
            Conn([item([UPDATE_WIRE], "7"), message({"type": 3, "invocationId": "7"}), SNAPSHOT]),
            [ORDER_ID],
            id="another invocation's item and completion ignored",
        ),
    ],
)
async def test_snapshot_from_scripted_frames(
    hubs: ScriptedHubs, conn: Conn, expected_ids: list[str]
) -> None:
    script = await hubs.start(conn)
    async with hub_client(script) as client:
        orders = await client.open_orders(timeout=5)
    assert [order.order_id for order in orders] == expected_ids
    assert script.attempts == 1
    assert_protocol_followed(script)


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(Conn([CLOSE]), id="Close without error"),
        pytest.param(Conn([CLOSE_RECONNECT]), id="Close with allowReconnect"),
        pytest.param(
            Conn([message({"type": 7, "error": "ClientTimeoutInterval", "allowReconnect": True})]),
            id="Close with an error and allowReconnect",
        ),
        pytest.param(Conn([PING, COMPLETION]), id="Completion before any item"),
        pytest.param(Conn([PING], end="close"), id="websocket closed"),
        pytest.param(Conn([PING], end="drop"), id="connection dropped"),
        pytest.param(Conn(status=503, headers={"Retry-After": "0"}), id="503 on the upgrade"),
        pytest.param(Conn(status=0), id="dropped during the upgrade"),
    ],
)
async def test_an_end_before_the_snapshot_means_connecting_again(
    hubs: ScriptedHubs, first: Conn
) -> None:
    script = await hubs.start(first, Conn([SNAPSHOT]))
    sleeps = Sleeps()
    events: list[RetryEvent] = []
    async with hub_client(script, sleeps=sleeps, on_retry=events.append) as client:
        orders = await client.open_orders(timeout=5)
        budget_left = client.retry_budget_left
    # The second connection's snapshot, never "no open orders".
    assert [order.order_id for order in orders] == [ORDER_ID]
    assert script.attempts == 2
    assert_protocol_followed(script, connection=len(script.received) - 1)
    expected_delay = 0.0 if first.status == 503 else 0.5 * 0.1  # Retry-After, else backoff
    assert sleeps.delays == [expected_delay]
    [event] = events
    assert (event.method, event.attempt, event.delay) == ("GET", 1, expected_delay)
    assert TOKEN not in event.url and event.url.endswith("/frontoffice/ws/v4/account")
    assert budget_left == 500  # the snapshot gave back what the reconnect took


async def test_a_silent_hub_is_left_for_a_new_connection(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn(), Conn([SNAPSHOT]))  # the first one never sends a thing
    sleeps = Sleeps()
    async with hub_client(script, sleeps=sleeps, server_timeout=0.05) as client:
        orders = await client.open_orders(timeout=5)
    assert [order.order_id for order in orders] == [ORDER_ID]
    assert script.attempts == 2
    assert sleeps.delays == [0.05]


async def test_a_handshake_that_never_comes_is_left_for_a_new_connection(
    hubs: ScriptedHubs,
) -> None:
    script = await hubs.start(Conn(handshake_reply=None), Conn([SNAPSHOT]))
    async with hub_client(script) as client:
        client._hub.handshake_timeout = 0.05
        orders = await client.open_orders(timeout=5)
    assert [order.order_id for order in orders] == [ORDER_ID]
    assert script.attempts == 2


@pytest.mark.parametrize(
    ("conn", "match"),
    [
        pytest.param(
            Conn([message({"type": 7, "allowReconnect": False})]),
            "asked not to reconnect",
            id="Close allowReconnect false",
        ),
        pytest.param(
            Conn([message({"type": 7, "error": "going away"})]),
            "hub closed the connection: going away",
            id="Close with error",
        ),
        pytest.param(
            Conn([message({"type": 7, "error": "going away", "allowReconnect": False})]),
            "hub closed the connection: going away",
            id="Close with error, allowReconnect false",
        ),
        pytest.param(
            Conn([message({"type": 3, "invocationId": "0", "error": "boom"})]),
            "OpenOrders stream failed: boom",
            id="Completion with error",
        ),
        pytest.param(
            Conn(handshake_reply='{"error":"bad"}' + RS),
            "refused the handshake: bad",
            id="handshake",
        ),
    ],
)
async def test_a_hub_error_is_final(hubs: ScriptedHubs, conn: Conn, match: str) -> None:
    script = await hubs.start(conn, Conn([SNAPSHOT]))
    sleeps = Sleeps()
    async with hub_client(script, sleeps=sleeps) as client:
        with pytest.raises(HubError, match=match):
            await client.open_orders(timeout=5)
    assert script.attempts == 1
    assert sleeps.delays == []


async def test_a_hub_that_keeps_closing_is_a_hub_error_after_the_policys_attempts(
    hubs: ScriptedHubs,
) -> None:
    script = await hubs.start(Conn([CLOSE]))
    sleeps = Sleeps()
    async with hub_client(script, sleeps=sleeps, retry=RetryPolicy(max_attempts=3)) as client:
        with pytest.raises(HubError, match=r"before sending the snapshot \(3 connections\)"):
            await client.open_orders(timeout=5)
        assert client.retry_budget_left == 490  # two reconnects, nothing given back
    assert script.attempts == 3
    assert sleeps.delays == [0.05, 0.1]  # full jitter (0.5) of 0.1 * 2 ** (n - 1)


async def test_no_reconnect_with_a_policy_of_one_attempt(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([COMPLETION]))
    async with hub_client(script, retry=RetryPolicy.none()) as client:
        with pytest.raises(HubError, match="completed the OpenOrders stream before"):
            await client.open_orders(timeout=5)
    assert script.attempts == 1


async def test_upgrade_statuses_follow_the_retry_policy(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn(status=503, body='{"title":"Down for a deploy"}'))
    async with hub_client(script, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(ServerError, match="Down for a deploy") as excinfo:
            await client.open_orders(timeout=5)
    assert excinfo.value.attempts == 2
    assert script.attempts == 2


async def test_when_a_backoff_would_cross_the_time_limit_it_is_a_timeout(
    hubs: ScriptedHubs,
) -> None:
    script = await hubs.start(Conn([CLOSE]))
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=100, base_delay=1.0)
    async with hub_client(script, sleeps=sleeps, retry=policy, rand=lambda: 0.99) as client:
        with pytest.raises(
            APITimeoutError, match=r"no OpenOrders snapshot within 0\.5s; the last"
        ):
            await client.open_orders(timeout=0.5)
    assert script.attempts == 1 and sleeps.delays == []  # 0.99 s of backoff does not fit


async def test_a_hub_that_never_sends_the_snapshot_times_out(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([PING]))
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with hub_client(script) as client:
        with pytest.raises(APITimeoutError, match=r"no OpenOrders snapshot within 0\.2s"):
            await client.open_orders(timeout=0.2)
        await asyncio.sleep(0.02)  # let the server read what the client sent last
    assert 0.2 <= loop.time() - started < 1.0
    assert_protocol_followed(script)
    assert script.messages()[2:] == [{"type": 5, "invocationId": "0"}]


async def test_a_token_provider_still_running_at_the_time_limit_is_a_timeout(
    hubs: ScriptedHubs,
) -> None:
    script = await hubs.start(Conn([SNAPSHOT]))
    release = asyncio.Event()

    async def provider() -> str:
        await release.wait()
        return TOKEN

    async with hub_client(script, token=provider) as client:
        with pytest.raises(APITimeoutError, match="still waiting for the token provider"):
            await client.open_orders(timeout=0.05)
        release.set()
    assert script.attempts == 0


async def test_closing_does_not_wait_for_the_peer(hubs: ScriptedHubs) -> None:
    """A hub that never answers the close: the snapshot in hand is returned at once."""
    script = await hubs.start(Conn([SNAPSHOT], end="deaf"))
    loop = asyncio.get_running_loop()
    async with hub_client(script) as client:
        started = loop.time()
        orders = await client.open_orders(timeout=1.0)
        took = loop.time() - started
        async with client.stream_open_orders() as stream:
            event = await anext(stream)
        left_stream = loop.time() - started - took
    assert [order.order_id for order in orders] == [ORDER_ID]
    assert [order.order_id for order in event.orders] == [ORDER_ID]
    assert took < 0.5 and left_stream < 0.5, (took, left_stream)


async def test_no_time_limit_with_a_session_read_timeout(hubs: ScriptedHubs) -> None:
    """`timeout=None` with a `sock_read` limit: neither a crash nor a read timeout on the hub."""
    script = await hubs.start(Conn([PING, SNAPSHOT], delay=0.1))
    timeout = aiohttp.ClientTimeout(total=5, sock_read=0.05)
    async with hub_client(script, timeout=timeout) as client:
        orders = await client.open_orders(timeout=None)
    assert [order.order_id for order in orders] == [ORDER_ID]
    assert script.attempts == 1


@pytest.mark.parametrize(
    ("conn", "error", "match"),
    [
        pytest.param(Conn(["not json" + RS]), ResponseValidationError, "not JSON", id="garbage"),
        pytest.param(
            Conn(["[1,2]" + RS]), ResponseValidationError, "not a JSON object", id="array"
        ),
        pytest.param(
            Conn(['{"type":6}']), ResponseValidationError, "record separator", id="no separator"
        ),
        pytest.param(
            Conn([b"\xff\xfe" + RS.encode()]), ResponseValidationError, "not UTF-8", id="binary"
        ),
        pytest.param(
            Conn([item(7)]), ResponseValidationError, "neither an array nor an object", id="scalar"
        ),
        pytest.param(
            Conn([item([{**ORDER_WIRE, "status": 7}])]),
            ResponseValidationError,
            "item",
            id="bad order field",
        ),
    ],
)
async def test_unreadable_frames_are_validation_errors(
    hubs: ScriptedHubs, conn: Conn, error: type[FrontOfficeError], match: str
) -> None:
    script = await hubs.start(conn)
    async with hub_client(script) as client:
        with pytest.raises(error, match=match) as excinfo:
            await client.open_orders(timeout=5)
    assert type(excinfo.value) is error
    assert script.attempts == 1


async def test_a_hub_that_refuses_connections_is_a_connection_error() -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    sleeps = Sleeps()
    async with FrontOfficeClient(
        url, token=TOKEN, account_id=DEFAULT_ACCOUNT_ID, sleep=sleeps
    ) as client:
        with pytest.raises(APIConnectionError, match="cannot connect") as excinfo:
            await client.open_orders(timeout=5)
    assert type(excinfo.value) is APIConnectionError
    assert excinfo.value.attempts == 4 and len(sleeps.delays) == 3


# --- the live stream ---------------------------------------------------------------------------


async def test_sample_session_frame_yields_snapshot_then_update(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SAMPLE_FRAME + RS]))
    async with hub_client(script) as client:
        async with client.stream_open_orders() as stream:
            snapshot = await anext(stream)
            update = await anext(stream)
        await asyncio.sleep(0.02)  # let the server read what the client sent last

    assert snapshot.is_snapshot and not update.is_snapshot
    assert [order.order_id for order in snapshot.orders] == [ORDER_ID]
    assert snapshot.orders[0].leverage == Decimal(1)
    [changed] = update.orders
    assert changed.order_id == UPDATE_ID
    assert changed.take_profit is not None
    assert changed.take_profit.price == Decimal("60000")
    assert changed.fill_factor == Decimal("0.7")
    assert changed.status == OrderStatus.WORKING
    assert_protocol_followed(script)
    # Leaving the stream early cancels the stream invocation before closing.
    assert script.messages()[2:] == [{"type": 5, "invocationId": "0"}]


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(Conn([SNAPSHOT, item(UPDATE_WIRE), CLOSE]), id="graceful Close"),
        pytest.param(
            Conn(
                [
                    SNAPSHOT,
                    item(UPDATE_WIRE),
                    message({"type": 7, "error": "x", "allowReconnect": True}),
                ]
            ),
            id="Close with an error and allowReconnect",
        ),
        pytest.param(Conn([SNAPSHOT, item(UPDATE_WIRE), COMPLETION]), id="Completion"),
        pytest.param(Conn([SNAPSHOT, item(UPDATE_WIRE)], end="drop"), id="connection lost"),
        pytest.param(Conn([SNAPSHOT, item(UPDATE_WIRE)], end="close"), id="websocket closed"),
    ],
)
async def test_the_stream_reconnects_and_starts_over_with_a_snapshot(
    hubs: ScriptedHubs, end: Conn
) -> None:
    script = await hubs.start(end, Conn([OTHER_SNAPSHOT]))
    sleeps = Sleeps()
    async with hub_client(script, sleeps=sleeps) as client, client.stream_open_orders() as stream:
        events = [await anext(stream) for _ in range(3)]
    assert [(e.is_snapshot, [o.order_id for o in e.orders]) for e in events] == [
        (True, [ORDER_ID]),
        (False, [UPDATE_ID]),
        (True, [UPDATE_ID]),  # the second connection's snapshot
    ]
    assert script.attempts == 2
    assert sleeps.delays == [0.05]


async def test_the_stream_reconnects_when_the_hub_goes_silent(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT]), Conn([OTHER_SNAPSHOT]))
    async with (
        hub_client(script) as client,
        client.stream_open_orders(server_timeout=0.05) as stream,
    ):
        first, second = await anext(stream), await anext(stream)
    assert first.is_snapshot and second.is_snapshot
    assert [o.order_id for o in second.orders] == [UPDATE_ID]
    assert script.attempts == 2


async def test_the_stream_runs_without_time_limits(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT, item(UPDATE_WIRE)]))
    async with (
        hub_client(script) as client,
        client.stream_open_orders(server_timeout=None, handshake_timeout=None) as stream,
    ):
        events = [await anext(stream), await anext(stream)]
    assert [e.is_snapshot for e in events] == [True, False]


async def test_a_close_instead_of_the_handshake_answer_means_connecting_again(
    hubs: ScriptedHubs,
) -> None:
    script = await hubs.start(Conn(handshake_reply=CLOSE), Conn([SNAPSHOT]))
    async with hub_client(script) as client:
        orders = await client.open_orders(timeout=5)
    assert [order.order_id for order in orders] == [ORDER_ID]
    assert script.attempts == 2


async def test_the_stream_opens_like_a_snapshot(hubs: ScriptedHubs) -> None:
    """Entering the stream connects again while the hub ends before the first snapshot."""
    script = await hubs.start(Conn([CLOSE]), Conn(status=502), Conn([SNAPSHOT]))
    async with hub_client(script) as client, client.stream_open_orders() as stream:
        event = await anext(stream)
    assert event.is_snapshot and [o.order_id for o in event.orders] == [ORDER_ID]
    assert script.attempts == 3


async def test_without_reconnect_a_graceful_close_ends_the_iteration(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT, item(UPDATE_WIRE), CLOSE]), Conn([SNAPSHOT]))
    async with (
        hub_client(script) as client,
        client.stream_open_orders(reconnect=False) as stream,
    ):
        events = [event async for event in stream]
        assert [event async for event in stream] == []  # over for good
    assert [e.is_snapshot for e in events] == [True, False]
    assert script.attempts == 1


async def test_without_reconnect_a_lost_connection_raises(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT], end="drop"), Conn([SNAPSHOT]))
    async with (
        hub_client(script) as client,
        client.stream_open_orders(reconnect=False) as stream,
    ):
        assert (await anext(stream)).is_snapshot
        with pytest.raises(APIConnectionError, match="without a SignalR Close message"):
            await anext(stream)
    assert script.attempts == 1


async def test_a_final_error_mid_stream_is_raised(hubs: ScriptedHubs) -> None:
    close = message({"type": 7, "error": "Server shutting down for good"})
    script = await hubs.start(Conn([SNAPSHOT, close]), Conn([SNAPSHOT]))
    async with hub_client(script) as client, client.stream_open_orders() as stream:
        await anext(stream)
        with pytest.raises(HubError, match="shutting down for good"):
            await anext(stream)
        # Over, and it says so: never a silent end after a failure.
        with pytest.raises(HubError, match=r"has ended \(HubError: .*shutting down for good"):
            await anext(stream)
    assert script.attempts == 1


async def test_the_stream_pings_the_hub_while_it_waits(
    hubs: ScriptedHubs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "KEEPALIVE", 0.02)
    script = await hubs.start(Conn([SNAPSHOT]))
    async with hub_client(script) as client, client.stream_open_orders() as stream:
        await anext(stream)
        with pytest.raises(TimeoutError):  # the hub sends nothing more
            await asyncio.wait_for(anext(stream), 0.1)
    pings = [m for m in script.messages()[2:] if m == {"type": 6}]
    assert len(pings) >= 2, script.messages()
