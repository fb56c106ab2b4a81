"""Hub faults: the values, how a plan hands them to connections, and each one on the wire."""

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
    FaultPlan,
    FrontOfficeSimulator,
    HubFault,
    HubFaultKind,
)
from frontoffice_async.testing._dispenser import FaultDispenser
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ._hubclient import HANDSHAKE, PING, RS, Hub, hub_url, invocation, subscribe


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


# --- values -----------------------------------------------------------------------------------


def test_named_constructors() -> None:
    assert HubFault.refuse() == HubFault(HubFaultKind.REFUSE, status=503)
    assert HubFault.close() == HubFault("close", allow_reconnect=True)
    assert HubFault.close(allow_reconnect=None).allow_reconnect is None
    assert HubFault.close_with_error() == HubFault(
        HubFaultKind.CLOSE, error="Connection closed with an error."
    )
    assert HubFault.close_with_error("boom", allow_reconnect=False).allow_reconnect is False
    assert HubFault.silence().pings is True
    assert HubFault.silence(pings=False).pings is False
    assert HubFault.bad_record("orderId", remove=True).remove is True
    assert HubFault.bad_record("fillFactor", "n/a").value == "n/a"
    kinds = [HubFault.complete(), HubFault.drop(), HubFault.duplicate()]
    assert [fault.kind for fault in kinds] == [
        HubFaultKind.COMPLETE,
        HubFaultKind.DROP,
        HubFaultKind.DUPLICATE,
    ]
    # Values: usable as keys of `hub_rates`.
    assert len({HubFault.close(), HubFault.close(), HubFault.refuse(401)}) == 2


@pytest.mark.parametrize(
    "fault",
    [
        HubFault.refuse(401),
        HubFault.close(),
        HubFault.close(allow_reconnect=None),
        HubFault.close_with_error("boom", allow_reconnect=False),
        HubFault.complete(),
        HubFault.drop(),
        HubFault.silence(pings=False),
        HubFault.bad_record("orderId", None),
        HubFault.bad_record("orderId", remove=True),
        HubFault.duplicate(),
    ],
    ids=repr,
)
def test_repr_is_the_constructor_call(fault: HubFault) -> None:
    assert repr(fault).startswith("HubFault.")
    assert eval(repr(fault), {"HubFault": HubFault}) == fault  # noqa: S307


@pytest.mark.parametrize(
    ("build", "error", "field"),
    [
        (lambda: HubFault.refuse(200), ValueError, "status"),
        (lambda: HubFault.refuse(True), ValueError, "status"),
        (lambda: HubFault(HubFaultKind.REFUSE), ValueError, "status"),
        (lambda: HubFault.close_with_error(""), ValueError, "error"),
        (lambda: HubFault.close(allow_reconnect=1), TypeError, "allow_reconnect"),  # type: ignore[arg-type]
        (lambda: HubFault.silence(pings=None), TypeError, "pings"),  # type: ignore[arg-type]
        (lambda: HubFault.bad_record(""), ValueError, "field"),
        (lambda: HubFault.bad_record("fillFactor", float("nan")), ValueError, "value"),
        (lambda: HubFault.bad_record("fillFactor", [1]), TypeError, "value"),  # type: ignore[arg-type]
        (lambda: HubFault.bad_record("orderId", "x", remove=True), ValueError, "value"),
        (lambda: HubFault(HubFaultKind.DROP, status=503), ValueError, "status"),
        (lambda: HubFault(HubFaultKind.REFUSE, status=503, pings=False), ValueError, "pings"),
        (lambda: HubFault("explode"), ValueError, "explode"),
    ],
)
def test_hub_fault_validation_names_the_field(
    build: Any, error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field):
        build()


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"hub": [HubFault.drop(), Fault.reset()]}, TypeError, r"hub\[1\]"),
        ({"hub_rates": {Fault.reset(): 0.1}}, TypeError, "hub_rates keys"),
        ({"hub_rates": {HubFault.drop(): 1.5}}, ValueError, "hub_rates"),
        ({"hub_rates": {HubFault.drop(): "0.1"}}, TypeError, "hub_rates"),
        ({"hub_rates": {HubFault.drop(): 0.6, HubFault.complete(): 0.6}}, ValueError, "1"),
    ],
)
def test_plan_validation_of_hub_faults(
    kwargs: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field):
        FaultPlan(**kwargs)


def test_hub_draws_are_deterministic_and_follow_the_rates() -> None:
    rates = {HubFault.drop(): 0.2, HubFault.close(): 0.1}
    plan = FaultPlan(hub_rates=rates, seed=5)
    draws = [plan.draw_hub(n) for n in range(3000)]
    assert draws == [FaultPlan(hub_rates=rates, seed=5).draw_hub(n) for n in range(3000)]
    assert draws != [FaultPlan(hub_rates=rates, seed=6).draw_hub(n) for n in range(3000)]
    assert 0.17 < draws.count(HubFault.drop()) / 3000 < 0.23
    assert 0.08 < draws.count(HubFault.close()) / 3000 < 0.12
    assert FaultPlan().draw_hub(0) is None
    # The REST draws of the same seed are independent of the hub's.
    assert FaultPlan(hub_rates={HubFault.drop(): 1.0}).draw("hub", 0) is None


def test_dispenser_counts_hub_connections_apart_from_requests() -> None:
    plan = FaultPlan(
        hub=[HubFault.close(), None],
        hub_rates={HubFault.drop(): 1.0},
        sequence=[Fault.server_error()],
        endpoints={"hub"},
    )
    dispenser = FaultDispenser(plan)
    assert dispenser.next_fault("hub", None) == Fault.server_error()
    hub = [dispenser.next_hub_fault() for _ in range(4)]
    assert hub == [HubFault.close(), None, HubFault.drop(), HubFault.drop()]
    dispenser.replace(FaultPlan(hub=[HubFault.complete()]))
    assert [dispenser.next_hub_fault() for _ in range(2)] == [HubFault.complete(), None]


# --- on the wire ------------------------------------------------------------------------------


async def start(
    factory: SimulatorFactory, *faults: HubFault | None, **kwargs: Any
) -> FrontOfficeSimulator:
    """A simulator whose n-th hub connection gets the n-th of `faults`."""
    return await factory(faults=FaultPlan(hub=list(faults)), **kwargs)


@pytest.mark.parametrize("status", [401, 403, 500, 503])
async def test_refuse_answers_the_upgrade_with_a_status(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory, status: int
) -> None:
    sim = await start(frontoffice_simulator_factory, HubFault.refuse(status))
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await session.ws_connect(hub_url(sim))
    assert caught.value.status == status
    assert ("WWW-Authenticate" in (caught.value.headers or {})) == (status == 401)
    async with session.get(hub_url(sim)) as resp:  # the next connection is not refused:
        assert resp.status == 400  # a plain GET is not an upgrade
    record = sim.requests[0]
    assert (record.endpoint, record.status, record.hub_fault) == (
        "hub",
        status,
        HubFault.refuse(status),
    )


@pytest.mark.parametrize(
    ("fault", "close"),
    [
        (HubFault.close(), '{"type":7,"allowReconnect":true}'),
        (HubFault.close(allow_reconnect=None), '{"type":7}'),
        (HubFault.close_with_error(), '{"type":7,"error":"Connection closed with an error."}'),
        (
            HubFault.close_with_error("boom", allow_reconnect=False),
            '{"type":7,"error":"boom","allowReconnect":false}',
        ),
    ],
    ids=["graceful", "plain", "error", "error-explicit-false"],
)
async def test_close_replaces_the_snapshot(
    session: aiohttp.ClientSession,
    frontoffice_simulator_factory: SimulatorFactory,
    fault: HubFault,
    close: str,
) -> None:
    sim = await start(frontoffice_simulator_factory, fault)
    sim.add_orders(2)
    ws, hub = await subscribe(session, sim)
    async with ws:
        messages, end = await hub.until_closed()
    assert messages == [json.loads(close)]
    assert hub.frames[-1].endswith(RS + close + RS)  # byte for byte, after the handshake
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)
    # The next connection gets its snapshot.
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert len((await hub.next())["item"]) == 2
    assert [r.hub_fault for r in sim.requests] == [fault, None]


async def test_complete_ends_the_stream_before_any_item(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await start(frontoffice_simulator_factory, HubFault.complete(), ping_interval=0.05)
    sim.add_orders(1)
    ws, hub = await subscribe(session, sim)
    async with ws:
        assert await hub.next() == {"type": 3, "invocationId": "0"}
        sim.add_orders(1)  # no stream: no item
        assert await hub.next(skip_pings=False) == PING  # the connection lives on
        await ws.send_str(invocation(invocation_id="1"))  # a later stream is served
        assert len((await hub.next())["item"]) == 2


async def test_drop_ends_the_connection_without_a_close(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await start(frontoffice_simulator_factory, HubFault.drop())
    sim.add_orders(1)
    ws, hub = await subscribe(session, sim)
    async with ws:
        messages, end = await hub.until_closed()
    assert messages == []
    # No close frame, no code: the TCP connection just ended (1006 to a browser).
    assert end.type in (WSMsgType.CLOSED, WSMsgType.ERROR)
    assert ws.close_code in (None, 1006)
    assert sim.requests[0].hub_fault == HubFault.drop()


@pytest.mark.parametrize("pings", [True, False])
async def test_silence_answers_the_handshake_then_nothing(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory, pings: bool
) -> None:
    sim = await start(
        frontoffice_simulator_factory,
        HubFault.silence(pings=pings),
        ping_interval=0.03,
        client_timeout=0.05,  # not enforced: a hung hub does not notice a silent client
    )
    sim.add_orders(1)
    ws, hub = await subscribe(session, sim)
    async with ws:
        await ws.send_str(invocation(invocation_id="1") + json.dumps({"type": 5}) + RS)
        received: list[Any] = []
        loop = asyncio.get_running_loop()
        until = loop.time() + 0.2
        while (left := until - loop.time()) > 0:
            try:
                received.append(await hub.next(skip_pings=False, timeout=left))
            except TimeoutError:
                break
        if pings:
            assert len(received) >= 3
            assert all(message == PING for message in received)
        else:
            assert received == []
        assert not ws.closed
        # Even a silent connection gets the graceful Close when the simulator stops.
        reader = asyncio.create_task(hub.until_closed())
        await sim.close()
        messages, end = await reader
    assert messages == [{"type": 7, "allowReconnect": True}]
    assert (end.type, end.data) == (WSMsgType.CLOSE, 1000)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        (HubFault.bad_record("fillFactor", "n/a"), {"fillFactor": "n/a"}),
        (HubFault.bad_record("createdAt", None), {"createdAt": None}),
        (HubFault.bad_record("orderId", 12345), {"orderId": 12345}),
        (HubFault.bad_record("orderId", remove=True), {"orderId": "<removed>"}),
    ],
    ids=["fillFactor", "createdAt", "orderId-number", "orderId-removed"],
)
async def test_bad_record_spoils_the_first_record(
    session: aiohttp.ClientSession,
    frontoffice_simulator_factory: SimulatorFactory,
    fault: HubFault,
    expected: dict[str, Any],
) -> None:
    sim = await start(frontoffice_simulator_factory, fault, None)
    ids = sim.add_orders(3)
    ws, hub = await subscribe(session, sim)
    async with ws:
        first, *rest = (await hub.next())["item"]
        # Updates of the stream are not spoiled.
        sim.update_order(ids[0], status="Working")
        [update] = (await hub.next())["item"]
    [(field, value)] = expected.items()
    if value == "<removed>":
        assert field not in first
    else:
        assert first[field] == value
    assert len(first) == len(update) - (value == "<removed>")
    assert [o["orderId"] for o in rest] == ids[1:]
    assert update["orderId"] == ids[0]
    ws, hub = await subscribe(session, sim)  # the second connection is clean
    async with ws:
        assert [o["orderId"] for o in (await hub.next())["item"]] == ids


async def test_duplicate_lists_the_first_record_twice(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await start(frontoffice_simulator_factory, HubFault.duplicate())
    ids = sim.add_orders(2)
    ws, hub = await subscribe(session, sim)
    async with ws:
        items = (await hub.next())["item"]
    assert [o["orderId"] for o in items] == [ids[0], ids[1], ids[0]]
    assert items[0] == items[2]


async def test_snapshot_faults_leave_an_empty_snapshot_alone(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await start(
        frontoffice_simulator_factory, HubFault.duplicate(), HubFault.bad_record("x")
    )
    for _ in range(2):
        ws, hub = await subscribe(session, sim)
        async with ws:
            assert await hub.next() == {"type": 2, "invocationId": "0", "item": []}


async def test_hub_rates_strike_every_connection_and_are_logged(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    plan = FaultPlan(hub_rates={HubFault.refuse(503): 1.0})
    sim = await frontoffice_simulator_factory(faults=plan)
    for _ in range(3):
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(hub_url(sim))
    # A refused token is refused before any fault: it is no hub connection.
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await session.ws_connect(hub_url(sim, "nope"))
    assert caught.value.status == 401
    assert [(r.status, r.hub_fault) for r in sim.requests] == [
        *[(503, HubFault.refuse(503))] * 3,
        (401, None),
    ]
    # Replacing the plan starts the count again.
    sim.faults = FaultPlan(hub=[None, HubFault.drop()])
    async with session.ws_connect(hub_url(sim)) as ws:
        await ws.send_str(HANDSHAKE)
        assert await Hub(ws).next() == {}
    assert sim.requests[-1].hub_fault is None


async def test_rest_requests_do_not_use_hub_faults(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await start(frontoffice_simulator_factory, HubFault.refuse(500))
    headers = {"Authorization": f"Bearer {sim.token}", "accountId": DEFAULT_ACCOUNT_ID}
    async with session.get(f"{sim.url}/frontoffice/api/v3/accounts", headers=headers) as resp:
        assert resp.status == 200
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await session.ws_connect(hub_url(sim))
