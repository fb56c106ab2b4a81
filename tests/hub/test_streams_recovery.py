"""The OpenOrders stream recovers: a wait the caller cancels (a watchdog) leaves a reconnection
running, a Close that allows reconnecting is reconnected whatever its error, and a consumer
busy between events is kept alive by the stream's pings (or, dropped anyway, reconnected)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from frontoffice_async import (
    FrontOfficeClient,
    HubError,
    PermissionDeniedError,
    RetryEvent,
)
from frontoffice_async._hub import connection
from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, FaultPlan, HubFault
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from .._scripted_hub import (
    CLOSE_RECONNECT,
    Conn,
    HubScript,
    ScriptedHubs,
    item,
    message,
    open_order,
)
from ..support import FAST, Sleeps, client_for, library_tasks

TOKEN = "tok-SENTINEL-7c21e9"
FIRST, SECOND = "01K2PF9XS29WN4JZRHMCTTQYJB", "01K2PF9XS29WN4JZRHMCTTQYJC"
TIMEOUT_CLOSE = message(
    {
        "type": 7,
        "error": "Connection closed with an error. OperationCanceledException: Client hasn't "
        "sent a message/ping within the configured ClientTimeoutInterval.",
        "allowReconnect": True,
    }
)


def snapshot(order_id: str) -> str:
    return item([open_order(order_id)])


class GatedSleep:
    """An injected backoff sleep that waits until the test opens the gate."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()

    async def __call__(self, delay: float) -> None:
        self.calls += 1
        await self.gate.wait()


def hub_client(script: HubScript, **kwargs: Any) -> FrontOfficeClient:
    kwargs.setdefault("sleep", Sleeps())
    return FrontOfficeClient(script.url, token=TOKEN, account_id=DEFAULT_ACCOUNT_ID, **kwargs)


def ids(event: Any) -> tuple[bool, list[str]]:
    return event.is_snapshot, [order.order_id for order in event.orders]


# --- a cancelled wait leaves the stream usable -------------------------------------------------


async def test_a_watchdog_over_a_slow_reconnection_gets_the_new_snapshot(
    hubs: ScriptedHubs,
) -> None:
    """The hub closes; the new connection takes 0.3 s to upgrade; the caller waits 0.1 s at a
    time. The stream neither ends nor starts the reconnection over: the snapshot comes."""
    script = await hubs.start(
        Conn([snapshot(FIRST), CLOSE_RECONNECT], end="close"),
        Conn([snapshot(SECOND)], delay=0.3),
    )
    async with hub_client(script) as client, client.stream_open_orders() as stream:
        assert ids(await anext(stream)) == (True, [FIRST])
        timeouts = 0
        while True:
            try:
                event = await asyncio.wait_for(anext(stream), 0.1)
            except TimeoutError:
                timeouts += 1
                assert timeouts < 20
                continue
            break
        assert ids(event) == (True, [SECOND])
        assert timeouts >= 2
        with pytest.raises(TimeoutError):  # alive and quiet, not ended
            await asyncio.wait_for(anext(stream), 0.05)
    assert script.attempts == 2  # the cancelled waits did not restart the upgrade


async def test_a_cancelled_wait_during_the_backoff_does_not_restart_it(
    hubs: ScriptedHubs,
) -> None:
    script = await hubs.start(Conn([snapshot(FIRST), CLOSE_RECONNECT]), Conn([snapshot(SECOND)]))
    sleep = GatedSleep()
    async with hub_client(script, sleep=sleep) as client, client.stream_open_orders() as stream:
        await anext(stream)
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(stream), 0.02)
        sleep.gate.set()
        assert ids(await anext(stream)) == (True, [SECOND])
    assert sleep.calls == 1 and script.attempts == 2


async def test_leaving_the_stream_during_a_reconnection_stops_it(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([snapshot(FIRST), CLOSE_RECONNECT]), Conn([snapshot(SECOND)]))
    sleep = GatedSleep()  # never opened: the reconnection waits in its backoff
    async with hub_client(script, sleep=sleep) as client:
        async with client.stream_open_orders() as stream:
            await anext(stream)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(stream), 0.05)
            assert library_tasks() != []  # the reconnection, apart from the caller
        assert library_tasks() == []  # stopped and awaited on the way out
        assert client._hub.transport._connections == set()
        assert [event async for event in stream] == []  # left: the iteration is over
    assert script.attempts == 1


async def test_a_reconnection_that_fails_unwatched_raises_on_the_next_read(
    hubs: ScriptedHubs,
) -> None:
    script = await hubs.start(Conn([snapshot(FIRST), CLOSE_RECONNECT]), Conn(status=403))
    sleep = GatedSleep()
    async with hub_client(script, sleep=sleep) as client, client.stream_open_orders() as stream:
        await anext(stream)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.05)
        sleep.gate.set()
        recovery = stream._recovery
        assert recovery is not None
        await asyncio.wait([recovery])  # it failed while nobody waited
        with pytest.raises(PermissionDeniedError):
            await anext(stream)
        with pytest.raises(HubError, match=r"has ended \(PermissionDeniedError: 403"):
            await anext(stream)
    assert script.attempts == 2


# --- a Close that allows reconnecting is reconnected, whatever its error -----------------------


async def test_an_error_close_that_allows_reconnecting_is_reconnected(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([snapshot(FIRST), TIMEOUT_CLOSE]), Conn([snapshot(SECOND)]))
    events: list[RetryEvent] = []
    async with (
        hub_client(script, on_retry=events.append) as client,
        client.stream_open_orders() as stream,
    ):
        got = [ids(await anext(stream)) for _ in range(2)]
    assert got == [(True, [FIRST]), (True, [SECOND])]
    assert [event.cause for event in events] == ["Close with error"]
    assert script.attempts == 2


async def test_without_reconnect_an_error_close_raises_even_when_it_allows_one(
    hubs: ScriptedHubs,
) -> None:
    script = await hubs.start(Conn([snapshot(FIRST), TIMEOUT_CLOSE]), Conn([snapshot(SECOND)]))
    async with hub_client(script) as client, client.stream_open_orders(reconnect=False) as stream:
        await anext(stream)
        with pytest.raises(HubError, match="ClientTimeoutInterval"):
            await anext(stream)
        with pytest.raises(HubError, match="has ended"):
            await anext(stream)
    assert script.attempts == 1


async def test_cancel_all_reconnects_after_an_error_close_that_allows_it(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    fault = HubFault.close_with_error("OperationCanceledException: shutdown", allow_reconnect=True)
    sim = await frontoffice_simulator_factory(faults=FaultPlan(hub=[fault]))
    sim.add_orders(5)
    async with client_for(sim, retry=FAST) as client:
        result = await client.cancel_all_orders()
    assert result.verified and len(result.cancelled) == 5
    hub = [r.status for r in sim.requests if r.endpoint == "hub"]
    assert len(hub) >= 3  # the closed one, then a snapshot per round


async def test_an_error_close_without_allow_reconnect_is_final(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    fault = HubFault.close_with_error("boom")  # no allowReconnect, as ASP.NET Core writes it
    sim = await frontoffice_simulator_factory(faults=FaultPlan(hub=[fault]))
    async with client_for(sim, retry=FAST) as client:
        with pytest.raises(HubError, match="boom"):
            await client.open_orders()
    assert len([r for r in sim.requests if r.endpoint == "hub"]) == 1


# --- a consumer busy between events --------------------------------------------------------------


async def test_the_stream_pings_while_the_consumer_is_busy(
    frontoffice_simulator_factory: SimulatorFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub drops a client it has not heard for `client_timeout`; a loop body that takes
    longer does not get the stream dropped: the pings go on without it."""
    monkeypatch.setattr(connection, "KEEPALIVE", 0.05)
    sim = await frontoffice_simulator_factory(client_timeout=0.3)
    order_ids = sim.add_orders(2)
    async with client_for(sim) as client, client.stream_open_orders() as stream:
        assert (await anext(stream)).is_snapshot
        await asyncio.sleep(0.8)  # the loop body: no read
        await client.cancel_order(order_ids[0])
        update = await asyncio.wait_for(anext(stream), 2)
    assert not update.is_snapshot and [o.order_id for o in update.orders] == order_ids[:1]
    assert len([r for r in sim.requests if r.endpoint == "hub"]) == 1


async def test_a_consumer_the_hub_dropped_gets_a_new_snapshot(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    """Pings every 15 s do not satisfy a hub that wants one every 0.2 s: it closes with an
    error and `allowReconnect`, and the stream reconnects (the official client's behaviour)."""
    sim = await frontoffice_simulator_factory(client_timeout=0.2)
    sim.add_orders(3)
    async with client_for(sim) as client, client.stream_open_orders() as stream:
        assert (await anext(stream)).is_snapshot
        await asyncio.sleep(0.5)
        event = await asyncio.wait_for(anext(stream), 2)
    assert event.is_snapshot and len(event.orders) == 3
    assert len([r for r in sim.requests if r.endpoint == "hub"]) >= 2


async def test_no_task_outlives_a_snapshot_or_a_stream(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([snapshot(FIRST)]))
    async with hub_client(script) as client:
        await client.open_orders(timeout=5)
        assert library_tasks() == []
        async with client.stream_open_orders() as stream:
            await anext(stream)
            assert len(library_tasks()) == 1  # the connection's pinger
        assert library_tasks() == []
