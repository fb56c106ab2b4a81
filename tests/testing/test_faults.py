"""Fault values, plan validation and determinism, and each fault kind as a client sees it."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from frontoffice_async.testing import (
    DEFAULT_ACCOUNT_ID,
    Fault,
    FaultKind,
    FaultPlan,
    FrontOfficeSimulator,
)
from frontoffice_async.testing._dispenser import FaultDispenser
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

ORDERS = "/frontoffice/api/v3/orders"
ACCOUNTS = "/frontoffice/api/v3/accounts"
GATEWAY_HTML = (
    b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
    b"<center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center>\n"
    b"</body>\n</html>\n"
)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest_asyncio.fixture
async def fresh_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A session that opens a new connection per request, as a dropped one would need."""
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client_session:
        yield client_session


def headers(sim: FrontOfficeSimulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {sim.token}", "accountId": DEFAULT_ACCOUNT_ID}


async def delete(
    session: aiohttp.ClientSession, sim: FrontOfficeSimulator, order_id: str
) -> tuple[int, bytes, dict[str, str]]:
    async with session.delete(f"{sim.url}{ORDERS}/{order_id}", headers=headers(sim)) as resp:
        return resp.status, await resp.read(), dict(resp.headers)


# --- values -----------------------------------------------------------------------------------


def test_named_constructors() -> None:
    assert Fault.rate_limited() == Fault(FaultKind.RATE_LIMITED, retry_after=0.05)
    assert Fault.server_error(504).status == 504
    assert Fault.unavailable(retry_after="soon").retry_after == "soon"
    assert Fault.slow(0.2).delay == 0.2
    assert Fault("reset") == Fault.reset()
    kinds = [
        Fault.bad_gateway(),
        Fault.malformed(),
        Fault.lost_response(),
        Fault.response(418, b"tea", {"X-Pot": "1"}),
    ]
    assert [fault.kind for fault in kinds] == [
        FaultKind.BAD_GATEWAY,
        FaultKind.MALFORMED,
        FaultKind.LOST_RESPONSE,
        FaultKind.RESPONSE,
    ]
    teapot = kinds[-1]
    assert hash(teapot) == hash(Fault.response(418, b"tea", {"X-Pot": "1"}))
    with pytest.raises(TypeError):
        teapot.headers["X-Pot"] = "2"  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"kind": FaultKind.RESPONSE}, ValueError, "status"),
        ({"kind": FaultKind.RESPONSE, "status": 99}, ValueError, "status"),
        ({"kind": FaultKind.SLOW, "delay": -1}, ValueError, "delay"),
        ({"kind": FaultKind.RATE_LIMITED, "retry_after": -0.5}, ValueError, "retry_after"),
        ({"kind": FaultKind.RATE_LIMITED, "retry_after": [1]}, TypeError, "retry_after"),
        ({"kind": FaultKind.RESPONSE, "status": 200, "body": "text"}, TypeError, "body"),
        ({"kind": "explode"}, ValueError, "explode"),
    ],
)
def test_fault_validation_names_the_field(
    kwargs: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field):
        Fault(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"rates": {FaultKind.RESET: 1.5}}, ValueError, r"rates\[RESET\]"),
        ({"rates": {FaultKind.RESET: -0.1}}, ValueError, r"rates\[RESET\]"),
        ({"rates": {FaultKind.RESET: 0.6, FaultKind.SLOW: 0.6}}, ValueError, "rates"),
        ({"rates": {FaultKind.RESPONSE: 0.1}}, ValueError, "rates"),
        ({"rates": {"nope": 0.1}}, ValueError, "rates"),
        ({"scripts": {"id": [Fault.reset(), "reset"]}}, TypeError, r"scripts\['id'\]\[1\]"),
        ({"sequence": [None, 3]}, TypeError, r"sequence\[1\]"),
        ({"slow_delay": -1}, ValueError, "slow_delay"),
        ({"retry_after": -1}, ValueError, "retry_after"),
        ({"endpoints": {"cancel_order", "orders"}}, ValueError, "endpoints"),
        ({"seed": "1"}, TypeError, "seed"),
    ],
)
def test_plan_validation_names_the_field(
    kwargs: dict[str, Any], error: type[Exception], field: str
) -> None:
    with pytest.raises(error, match=field):
        FaultPlan(**kwargs)


def test_uniform_splits_the_rate_over_transient_kinds() -> None:
    plan = FaultPlan.uniform(0.5, seed=3)
    assert list(plan.rates) == [
        FaultKind.RATE_LIMITED,
        FaultKind.SERVER_ERROR,
        FaultKind.BAD_GATEWAY,
        FaultKind.UNAVAILABLE,
        FaultKind.RESET,
    ]
    assert all(rate == pytest.approx(0.1) for rate in plan.rates.values())
    assert plan.seed == 3
    slow = FaultPlan.uniform(1.0, kinds=[FaultKind.SLOW], slow_delay=0.01)
    assert slow.draw("x", 0) == Fault(FaultKind.SLOW, delay=0.01)
    assert FaultPlan.none() == FaultPlan()
    assert FaultPlan.none().draw("x", 0) is None
    with pytest.raises(ValueError, match="rate"):
        FaultPlan.uniform(1.5)
    with pytest.raises(ValueError, match="kinds"):
        FaultPlan.uniform(0.1, kinds=[])


def test_draws_are_deterministic_and_follow_the_rates() -> None:
    plan = FaultPlan.uniform(0.3, seed=11)
    draws = [plan.draw(f"order-{i}", i % 3) for i in range(4000)]
    assert draws == [
        FaultPlan.uniform(0.3, seed=11).draw(f"order-{i}", i % 3) for i in range(4000)
    ]
    assert draws != [
        FaultPlan.uniform(0.3, seed=12).draw(f"order-{i}", i % 3) for i in range(4000)
    ]
    share = sum(draw is not None for draw in draws) / len(draws)
    assert 0.26 < share < 0.34
    rate_limited = next(d for d in draws if d is not None and d.kind is FaultKind.RATE_LIMITED)
    assert rate_limited.retry_after == 0.05


def test_dispenser_scripts_then_sequence_then_rates() -> None:
    plan = FaultPlan(
        scripts={"a": [Fault.reset(), None, Fault.malformed()]},
        sequence=[Fault.server_error(), None],
        rates={FaultKind.UNAVAILABLE: 1.0},
    )
    dispenser = FaultDispenser(plan)
    script = [dispenser.next_fault("cancel_order", "a") for _ in range(5)]
    assert script == [Fault.reset(), None, Fault.malformed(), None, None]
    others = [dispenser.next_fault("cancel_order", "b") for _ in range(3)]
    assert others == [Fault.server_error(), None, Fault(FaultKind.UNAVAILABLE)]
    assert dispenser.next_fault("hub", None) is None  # not an eligible endpoint
    dispenser.replace(FaultPlan(scripts={"a": [Fault.reset()]}))
    assert dispenser.next_fault("cancel_stop_order", "a") == Fault.reset()


# --- on the wire ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(0.05, "0.05"), (2.0, "2"), ("Wed, 21 Oct 2015 07:28:00 GMT", None), (None, None)],
)
async def test_rate_limited(
    session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    retry_after: float | str | None,
    header: str | None,
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    sim.faults = FaultPlan(sequence=[Fault.rate_limited(retry_after=retry_after)])
    status, body, response_headers = await delete(session, sim, order_id)
    assert status == 429
    problem = json.loads(body)
    assert (problem["status"], problem["title"]) == (429, "Too Many Requests")
    expected = retry_after if isinstance(retry_after, str) else header
    assert response_headers.get("Retry-After") == expected
    assert sim.orders[order_id].status == "Pending"
    assert sim.requests[-1].fault is FaultKind.RATE_LIMITED


async def test_error_statuses(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    sim.faults = FaultPlan(
        sequence=[
            Fault.server_error(),
            Fault.server_error(504),
            Fault.bad_gateway(),
            Fault.unavailable(),
            Fault.unavailable(retry_after=1),
            Fault.response(418, b"short and stout", {"X-Pot": "tea"}),
        ]
    )
    results = [await delete(session, sim, order_id) for _ in range(6)]
    statuses = [status for status, _, _ in results]
    assert statuses == [500, 504, 502, 503, 503, 418]
    assert json.loads(results[0][1])["title"] == "Internal Server Error"
    assert json.loads(results[1][1])["status"] == 504
    assert results[2][1] == GATEWAY_HTML
    assert results[2][2]["Content-Type"].startswith("text/html")
    assert (results[3][1], results[3][2].get("Retry-After")) == (b"", None)
    assert (results[4][1], results[4][2]["Retry-After"]) == (b"", "1")
    assert (results[5][1], results[5][2]["X-Pot"]) == (b"short and stout", "tea")
    assert sim.orders[order_id].status == "Pending"
    assert (await delete(session, sim, order_id))[0] == 200


async def test_reset_is_a_disconnect_with_no_effect(
    fresh_session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    # aiohttp replays a DELETE once on a disconnect, so script two resets.
    sim.faults = FaultPlan(scripts={order_id: [Fault.reset(), Fault.reset()]})
    with caplog.at_level(logging.DEBUG):
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            await delete(fresh_session, sim, order_id)
        body = {"order": {"marketId": "spot.eth_usdt"}}
        sim.faults = FaultPlan(sequence=[Fault.reset()])
        with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
            async with fresh_session.post(sim.url + ORDERS, json=body, headers=headers(sim)):
                pass
        await asyncio.sleep(0.01)  # let the server finish with the dropped connections
    assert [record.levelno for record in caplog.records if record.levelno >= logging.WARNING] == []
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert [(r.endpoint, r.status, r.fault) for r in sim.requests] == [
        ("cancel_order", None, FaultKind.RESET),
        ("cancel_order", None, FaultKind.RESET),
        ("place_order", None, FaultKind.RESET),
    ]
    assert sim.orders[order_id].status == "Pending"
    assert len(sim.orders) == 1
    assert (await delete(fresh_session, sim, order_id))[0] == 200


async def test_lost_response_applies_the_cancel(
    fresh_session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    sim.faults = FaultPlan(scripts={order_id: [Fault.lost_response()]})
    # aiohttp's silent replay then finds the order already cancelled.
    status, body, _ = await delete(fresh_session, sim, order_id)
    assert status == 400
    assert (
        json.loads(body)["detail"] == f"Order {order_id} cannot be cancelled in status Cancelled."
    )
    assert [(r.status, r.fault) for r in sim.requests] == [
        (None, FaultKind.LOST_RESPONSE),
        (400, None),
    ]
    assert sim.orders[order_id].status == "Cancelled"


async def test_malformed_applies_the_cancel_and_truncates(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    order_id, other = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={order_id: [Fault.malformed()]})
    status, body, response_headers = await delete(session, sim, order_id)
    assert status == 200
    assert response_headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)
    assert sim.orders[order_id].status == "Cancelled"
    complete = json.dumps({"order": sim.orders[order_id].to_wire()}, separators=(",", ":"))
    assert body.startswith(b'{"order":{"marketId":"spo')
    assert complete.encode().startswith(body)
    assert (await delete(session, sim, other))[0] == 200  # the script names one id only


async def test_slow_answers_late_without_blocking_others(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    slow_id, fast_id = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={slow_id: [Fault.slow(0.3)]})
    started = time.perf_counter()
    slow = asyncio.create_task(delete(session, sim, slow_id))
    await asyncio.sleep(0.02)
    assert (await delete(session, sim, fast_id))[0] == 200
    assert time.perf_counter() - started < 0.25
    assert sim.orders[slow_id].status == "Pending"  # applied only after the delay
    assert (await slow)[0] == 200
    assert time.perf_counter() - started >= 0.3
    assert sim.orders[slow_id].status == "Cancelled"
    assert sim.stats.max_in_flight == 2


async def test_plan_slow_delay_applies_to_drawn_slow_faults(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    plan = FaultPlan(rates={FaultKind.SLOW: 1.0}, slow_delay=0.05)
    sim = await frontoffice_simulator_factory(faults=plan)
    started = time.perf_counter()
    async with session.get(sim.url + ACCOUNTS, headers=headers(sim)) as resp:
        assert resp.status == 200
    assert 0.05 <= time.perf_counter() - started < 0.5
    assert sim.requests[0].fault is FaultKind.SLOW


async def test_faults_come_after_auth_and_before_the_lookup(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    sim.faults = FaultPlan(sequence=[Fault.rate_limited()])
    bad = {"Authorization": "Bearer wrong", "accountId": DEFAULT_ACCOUNT_ID}
    async with session.delete(f"{sim.url}{ORDERS}/unknown", headers=bad) as resp:
        assert resp.status == 401
    assert (await delete(session, sim, "unknown"))[0] == 429  # not 404: the fault comes first
    assert (await delete(session, sim, "unknown"))[0] == 404
    assert [r.fault for r in sim.requests] == [None, FaultKind.RATE_LIMITED, None]


async def test_endpoints_limit_where_faults_strike(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    plan = FaultPlan(rates={FaultKind.SERVER_ERROR: 1.0}, endpoints={"cancel_order"})
    sim = await frontoffice_simulator_factory(faults=plan)
    async with session.get(sim.url + ACCOUNTS, headers=headers(sim)) as resp:
        assert resp.status == 200
    assert (await delete(session, sim, "any"))[0] == 500


async def test_rate_draws_do_not_depend_on_arrival_order(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    kinds = (FaultKind.RATE_LIMITED, FaultKind.SERVER_ERROR, FaultKind.UNAVAILABLE)
    outcomes = []
    for reverse in (False, True):
        plan = FaultPlan.uniform(0.5, seed=21, kinds=kinds)
        sim = await frontoffice_simulator_factory(faults=plan, seed=2)
        ids = sim.add_orders(30)
        order = list(reversed(ids)) if reverse else ids
        async with aiohttp.ClientSession() as session:
            await asyncio.gather(*(delete(session, sim, order_id) for order_id in order))
            await asyncio.gather(*(delete(session, sim, order_id) for order_id in order))
        outcomes.append({i: [(r.fault, r.status) for r in sim.requests_for(i)] for i in ids})
    assert outcomes[0] == outcomes[1]
    faulted = sum(fault is not None for runs in outcomes[0].values() for fault, _ in runs)
    assert 10 < faulted < 50


async def test_token_exchange_can_fail_too(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    plan = FaultPlan(sequence=[Fault.unavailable(retry_after=3)], endpoints={"access_token"})
    sim = await frontoffice_simulator_factory(offline_token="off", faults=plan)
    url = sim.url + "/frontoffice/api/v4/access-token"
    async with session.post(url, json={"token": "off"}) as resp:
        assert (resp.status, resp.headers["Retry-After"]) == (503, "3")
    async with session.post(url, json={"token": "off"}) as resp:
        assert resp.status == 200
