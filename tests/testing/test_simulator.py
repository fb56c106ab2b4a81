"""FrontOfficeSimulator's REST endpoints, state, tokens and request log, over real loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import pytest_asyncio
import yarl

from frontoffice_async import testing
from frontoffice_async.testing import (
    DEFAULT_ACCOUNT_ID,
    FaultPlan,
    FrontOfficeSimulator,
    SimulatorStats,
)
from frontoffice_async.testing import pytest_plugin as plugin
from frontoffice_async.testing._tokens import TokenRegistry
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

SECOND_ACCOUNT_ID = "685a7eaa360f9e7416221a62"
SAMPLES = Path(__file__).resolve().parents[1] / "data"  # copies of shared/api/samples
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
CROCKFORD_ID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")
ORDERS = "/frontoffice/api/v3/orders"
ACCOUNTS = "/frontoffice/api/v3/accounts"
EXCHANGE = "/frontoffice/api/v4/access-token"

CANCEL_ORDER_KEYS = [
    "marketId",
    "marketDisplayName",
    "orderId",
    "orderType",
    "side",
    "status",
    "source",
    "timeInForce",
    "commission",
    "requestedAmount",
    "remainingAmount",
    "requestedPrice",
    "executionPrice",
    "createdAt",
    "updatedAt",
    "rejectDetails",
    "cancellationDate",
    "fillFactor",
]
CANCEL_STOP_KEYS = [
    "marketId",
    "marketDisplayName",
    "orderId",
    "orderType",
    "side",
    "requestedPrice",
    "activationPrice",
    "requestedAmount",
    "timeInForce",
    "status",
    "createdAt",
    "updatedAt",
    "cancellationDate",
]


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


def auth(
    sim: FrontOfficeSimulator,
    account_id: str | None = DEFAULT_ACCOUNT_ID,
    token: str | None = None,
) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token or sim.token}"}
    if account_id is not None:
        headers["accountId"] = account_id
    return headers


async def cancel(
    session: aiohttp.ClientSession,
    sim: FrontOfficeSimulator,
    order_id: str,
    *,
    stop: bool = False,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    path = "/frontoffice/api/v3/stop-orders/" if stop else f"{ORDERS}/"
    url = yarl.URL(sim.url + path + quote(order_id, safe=""), encoded=True)
    async with session.delete(url, headers=auth(sim) if headers is None else headers) as resp:
        return resp.status, await resp.json(content_type=None)


def sample(name: str) -> Any:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"sample {name} not available")
    return json.loads(path.read_text())


def test_public_names_are_pinned_and_documented() -> None:
    assert testing.__all__ == [
        "DEFAULT_ACCOUNT_ID",
        "Fault",
        "FaultKind",
        "FaultPlan",
        "FrontOfficeSimulator",
        "HubFault",
        "HubFaultKind",
        "RecordedRequest",
        "SimulatedOrder",
        "SimulatedPosition",
        "SimulatorStats",
    ]
    # Public, though not yet in __all__ (it joins with its docs/reference.md entry).
    assert testing.SimulatedPosition.__doc__
    assert testing.SimulatedPosition.__module__ == "frontoffice_async.testing._position"
    assert DEFAULT_ACCOUNT_ID == "685a7eaa360f9e7416221a61"
    for name in testing.__all__:
        if name != "DEFAULT_ACCOUNT_ID":
            assert getattr(testing, name).__doc__, name
    for name in plugin.__all__:
        assert getattr(plugin, name).__doc__, name


async def test_lifecycle() -> None:
    sim = FrontOfficeSimulator()
    with pytest.raises(RuntimeError, match="not running"):
        _ = sim.url
    async with sim:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sim.url)
        with pytest.raises(RuntimeError, match="already started"):
            await sim.start()
    await sim.close()  # idempotent
    with pytest.raises(RuntimeError):
        _ = sim.url
    with pytest.raises(RuntimeError, match="closed"):
        await sim.start()
    assert sim.token not in repr(sim)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"accounts": ()}, "accounts"),
        ({"accounts": ("a", "a")}, "accounts"),
        ({"latency": -1}, "latency"),
        ({"ping_interval": 0}, "ping_interval"),
        ({"client_timeout": 0}, "client_timeout"),
        ({"access_token_ttl": float("nan")}, "access_token_ttl"),
        ({"port": 70000}, "port"),
        ({"token": "  "}, "token"),
    ],
)
def test_constructor_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FrontOfficeSimulator(**kwargs)


def test_tokens_and_ids_derive_from_the_seed() -> None:
    a, b, c = FrontOfficeSimulator(seed=1), FrontOfficeSimulator(seed=1), FrontOfficeSimulator()
    assert a.token == b.token != c.token
    assert re.fullmatch(r"sim-[0-9a-f]{32}", a.token)
    ids = a.add_orders(5)
    assert ids == b.add_orders(5)
    assert ids != c.add_orders(5)
    assert all(CROCKFORD_ID.match(order_id) for order_id in ids)
    assert ids == sorted(ids)
    assert FrontOfficeSimulator(token="mine").token == "mine"


def test_add_orders_builds_believable_orders() -> None:
    sim = FrontOfficeSimulator()
    ids = sim.add_orders(2)
    stops = sim.add_stop_orders(1, account_id=SECOND_ACCOUNT_ID)
    buy, sell = (sim.orders[order_id] for order_id in ids)
    assert (buy.side, sell.side) == ("Buy", "Sell")
    assert buy.requested_price is not None and sell.requested_price is not None
    assert buy.requested_price < sell.requested_price
    assert (buy.account_id, buy.kind, buy.status, buy.market_display_name) == (
        DEFAULT_ACCOUNT_ID,
        "order",
        "Pending",
        "SPOT ETH/USDT",
    )
    stop = sim.orders[stops[0]]
    assert (stop.kind, stop.status, stop.account_id) == (
        "stop",
        "WaitingForActivation",
        SECOND_ACCOUNT_ID,
    )
    assert sim.open_order_ids() == ids
    assert sim.open_order_ids(SECOND_ACCOUNT_ID) == []
    with pytest.raises(ValueError, match="unknown account"):
        sim.add_orders(1, account_id="nope")
    with pytest.raises(ValueError, match="side"):
        sim.add_orders(1, side="Long")
    with pytest.raises(ValueError, match="order_ids"):
        sim.add_orders(2, order_ids=["x"])


async def test_accounts_lists_what_the_token_owns(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    async with session.get(sim.url + ACCOUNTS, headers=auth(sim, None)) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.json()
    assert body == [
        {
            "accountId": DEFAULT_ACCOUNT_ID,
            "accountName": "Main",
            "accountType": "Hedging",
            "totalBalanceInRAT": "10000",
            "isCopyTradingAccount": False,
        },
        {
            "accountId": SECOND_ACCOUNT_ID,
            "accountName": "Account 2",
            "accountType": "Hedging",
            "totalBalanceInRAT": "10000",
            "isCopyTradingAccount": False,
        },
    ]
    narrow = sim.issue_token([SECOND_ACCOUNT_ID])
    async with session.get(sim.url + ACCOUNTS, headers=auth(sim, None, narrow)) as resp:
        assert [account["accountId"] for account in await resp.json()] == [SECOND_ACCOUNT_ID]


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic abc", "Bearer "])
async def test_bad_bearer_gets_401_problem(
    session: aiohttp.ClientSession,
    frontoffice_simulator: FrontOfficeSimulator,
    authorization: str | None,
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    url = frontoffice_simulator.url + ACCOUNTS
    async with session.get(url, headers=headers) as resp:
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        body = await resp.json(content_type=None)
    assert (body["status"], body["title"]) == (401, "Unauthorized")
    assert body["traceId"].startswith("00-")
    assert frontoffice_simulator.requests[-1].status == 401


async def test_revoked_token_gets_401(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    token = sim.issue_token()
    order_id = sim.add_orders(1)[0]
    sim.revoke_token(token)
    status, body = await cancel(session, sim, order_id, headers=auth(sim, token=token))
    assert (status, body["detail"]) == (401, "The access token is invalid, expired or revoked.")
    assert sim.orders[order_id].status == "Pending"
    record = sim.requests[-1]
    assert record.token == token
    assert token not in repr(record)


async def test_cancel_order_cancels_and_returns_the_order(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    order_id, other = sim.add_orders(2)
    status, body = await cancel(session, sim, order_id)
    assert status == 200
    order = body["order"]
    assert list(order) == CANCEL_ORDER_KEYS
    assert list(order) == list(sample("cancel_order_200.json")["order"])
    assert order["orderId"] == order_id
    assert order["status"] == "Cancelled"
    assert order["marketId"] == "spot.eth_usdt"
    assert order["marketDisplayName"] == "SPOT ETH/USDT"
    assert (order["orderType"], order["side"], order["timeInForce"]) == ("Limit", "Buy", "Gtc")
    assert (order["requestedAmount"], order["remainingAmount"]) == ("0.1", "0.1")
    assert order["requestedPrice"] == "4405.5"
    assert (order["executionPrice"], order["commission"], order["fillFactor"]) == ("0", "0", "0")
    assert (order["source"], order["rejectDetails"]) == ("Manual", "")
    for key in ("createdAt", "updatedAt", "cancellationDate"):
        assert TIMESTAMP.match(order[key]), order[key]
    assert order["updatedAt"] == order["cancellationDate"]
    assert sim.orders[order_id].status == "Cancelled"
    assert sim.orders[order_id].cancellation_date is not None
    assert sim.open_order_ids() == [other]

    status, body = await cancel(session, sim, order_id)
    assert status == 400
    assert body["detail"] == f"Order {order_id} cannot be cancelled in status Cancelled."


async def test_cancel_checks_in_order(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    mine = sim.add_orders(1)[0]
    theirs = sim.add_orders(1, account_id=SECOND_ACCOUNT_ID)[0]
    stop = sim.add_stop_orders(1)[0]
    done = sim.add_orders(1, status="Completed")[0]

    status, body = await cancel(session, sim, mine, headers=auth(sim, None))
    assert (status, body["errors"]) == (400, {"accountId": ["The accountId header is required."]})
    narrow = sim.issue_token([DEFAULT_ACCOUNT_ID])
    status, body = await cancel(session, sim, theirs, headers=auth(sim, SECOND_ACCOUNT_ID, narrow))
    assert status == 403
    assert body["title"] == "Forbidden"
    for missing in (theirs, stop, "01UNKNOWN"):
        status, body = await cancel(session, sim, missing)
        assert status == 404
        assert (body["title"], body["detail"]) == ("Not Found", f"Order {missing} was not found.")
    status, body = await cancel(session, sim, done)
    assert status == 400
    expected = sample("error_problem_details_400.json")
    assert list(body) == list(expected)
    assert body["type"] == expected["type"]
    assert body["title"] == expected["title"]
    assert body["detail"] == f"Order {done} cannot be cancelled in status Completed."
    assert body["errors"] == {"orderId": ["The order is not active."]}
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", body["traceId"])
    assert sim.orders[theirs].status == "Pending"
    assert sim.orders[mine].status == "Pending"


async def test_cancel_stop_order(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    stop = sim.add_stop_orders(1)[0]
    plain = sim.add_orders(1)[0]
    status, body = await cancel(session, sim, stop, stop=True)
    assert status == 200
    order = body["order"]
    assert list(order) == CANCEL_STOP_KEYS
    assert list(order) == list(sample("cancel_stop_order_200.json")["order"])
    assert (order["orderId"], order["status"], order["side"]) == (stop, "Cancelled", "Buy")
    assert (order["marketId"], order["marketDisplayName"]) == ("perp.btc_usdt", "PERP BTC/USDT")
    assert (order["requestedPrice"], order["activationPrice"]) == ("61000", "61610")
    assert order["requestedAmount"] == "0.05"
    assert order["updatedAt"] == order["cancellationDate"]
    assert sim.orders[stop].status == "Cancelled"
    status, _ = await cancel(session, sim, plain, stop=True)
    assert status == 404
    status, body = await cancel(session, sim, stop, stop=True)
    assert (status, body["errors"]) == (400, {"orderId": ["The order is not active."]})


async def test_encoded_slashes_reach_the_handler_as_one_id(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    odd = "a/b?c#d %2F"
    sim.add_orders(1, order_ids=[odd])
    status, body = await cancel(session, sim, odd)
    assert (status, body["order"]["orderId"]) == (200, odd)
    status, body = await cancel(session, sim, "x/../y")
    assert (status, body["detail"]) == (404, "Order x/../y was not found.")
    first, second = sim.requests
    assert first.order_id == odd
    assert first.path == f"{ORDERS}/a%2Fb%3Fc%23d%20%252F"
    assert (first.endpoint, second.endpoint, second.order_id) == (
        "cancel_order",
        "cancel_order",
        "x/../y",
    )


async def test_place_order(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    limit = {
        "marketId": "spot.btc_usdt",
        "side": "Sell",
        "orderType": "Limit",
        "timeInForce": "Gtc",
        "requestedAmount": "0.25",
        "requestedPrice": "65000",
    }
    async with session.post(sim.url + ORDERS, json={"order": limit}, headers=auth(sim)) as resp:
        assert resp.status == 200
        order = (await resp.json())["order"]
    assert list(order) == CANCEL_ORDER_KEYS
    assert (order["status"], order["requestedPrice"], order["remainingAmount"]) == (
        "Pending",
        "65000",
        "0.25",
    )
    assert CROCKFORD_ID.match(order["orderId"])
    assert sim.open_order_ids() == [order["orderId"]]

    market = {**limit, "orderType": "Market", "timeInForce": "Ioc", "requestedPrice": None}
    async with session.post(sim.url + ORDERS, json={"order": market}, headers=auth(sim)) as resp:
        filled = (await resp.json())["order"]
    assert (filled["status"], filled["remainingAmount"], filled["fillFactor"]) == (
        "Completed",
        "0",
        "1",
    )
    assert (filled["requestedPrice"], filled["executionPrice"]) == (None, "61000")
    assert sim.orders[filled["orderId"]].account_id == DEFAULT_ACCOUNT_ID

    bad = {**limit, "side": "Long", "requestedAmount": "-1", "requestedPrice": None}
    async with session.post(sim.url + ORDERS, json={"order": bad}, headers=auth(sim)) as resp:
        assert resp.status == 400
        problem = await resp.json(content_type=None)
    assert problem["title"] == "One or more validation errors occurred."
    assert set(problem["errors"]) == {
        "order.side",
        "order.requestedAmount",
        "order.requestedPrice",
    }
    async with session.post(sim.url + ORDERS, data=b"{not json", headers=auth(sim)) as resp:
        assert resp.status == 400
        assert "$" in (await resp.json(content_type=None))["errors"]
    assert len(sim.orders) == 2


async def test_unknown_path_is_a_plain_404(
    session: aiohttp.ClientSession, frontoffice_simulator: FrontOfficeSimulator
) -> None:
    sim = frontoffice_simulator
    async with session.get(sim.url + "/frontoffice/api/v3/nothing", headers=auth(sim)) as resp:
        assert resp.status == 404
        assert resp.content_type == "text/plain"
    record = sim.requests[-1]
    assert (record.endpoint, record.status, record.method) == ("unknown", 404, "GET")


async def test_request_log_and_stats(frontoffice_simulator: FrontOfficeSimulator) -> None:
    sim = frontoffice_simulator
    order_id, other = sim.add_orders(2)
    before = asyncio.get_running_loop().time()
    async with aiohttp.ClientSession() as session:  # one keep-alive connection
        await cancel(session, sim, order_id)
        await cancel(session, sim, other)
        await cancel(session, sim, order_id)
    first = sim.requests[0]
    assert (first.method, first.endpoint, first.order_id, first.status, first.fault) == (
        "DELETE",
        "cancel_order",
        order_id,
        200,
        None,
    )
    assert (first.path, first.account_id, first.token) == (
        f"{ORDERS}/{order_id}",
        DEFAULT_ACCOUNT_ID,
        sim.token,
    )
    assert before <= first.started_at <= sim.requests[1].started_at
    assert [r.status for r in sim.requests_for(order_id)] == [200, 400]
    assert sim.stats == SimulatorStats(requests=3, max_in_flight=1, connections_opened=1)

    sim.reset_log()
    assert (sim.requests, sim.stats) == ([], SimulatorStats())
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(3):
            async with session.get(sim.url + ACCOUNTS, headers=auth(sim, None)) as resp:
                assert resp.status == 200
    assert sim.stats.connections_opened == 3


async def test_latency_delays_without_serialising(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.1)
    ids = sim.add_orders(8)
    started = time.perf_counter()
    results = await asyncio.gather(*(cancel(session, sim, order_id) for order_id in ids))
    elapsed = time.perf_counter() - started
    assert [status for status, _ in results] == [200] * 8
    assert 0.1 <= elapsed < 0.5
    assert sim.stats.max_in_flight == 8


async def test_close_interrupts_slow_requests(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(latency=30)
    order_id = sim.add_orders(1)[0]
    task = asyncio.create_task(cancel(session, sim, order_id))
    for _ in range(100):  # until the request is in the handler
        if sim.requests:
            break
        await asyncio.sleep(0.005)
    started = time.perf_counter()
    await sim.close()
    assert time.perf_counter() - started < 0.5
    with pytest.raises(aiohttp.ClientError):
        await task
    assert sim.orders[order_id].status == "Pending"


async def test_update_order_and_mutation(frontoffice_simulator: FrontOfficeSimulator) -> None:
    sim = frontoffice_simulator
    order_id = sim.add_orders(1)[0]
    order = sim.update_order(order_id, status="Working")
    assert sim.orders[order_id] is order
    assert order.status == "Working"
    assert order.updated_at >= order.created_at
    with pytest.raises(TypeError, match="order_id"):
        sim.update_order(order_id, order_id="x")
    with pytest.raises(KeyError):
        sim.update_order("missing", status="Working")
    with pytest.raises(TypeError):
        sim.orders["x"] = order  # type: ignore[index]


async def test_token_exchange_issues_a_jwt(
    session: aiohttp.ClientSession, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    sim = await frontoffice_simulator_factory(offline_token="offline-1", access_token_ttl=600)
    headers = {"Content-Type": "application/json; x-api-version=4.0"}
    body = json.dumps({"token": "offline-1"})
    async with session.post(sim.url + EXCHANGE, data=body, headers=headers) as resp:
        assert resp.status == 200
        answer = await resp.json()
    assert answer["expiresIn"] == 600
    parts = answer["accessToken"].split(".")
    assert len(parts) == 3
    payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    assert abs(payload["exp"] - (time.time() + 600)) < 5
    assert payload["sub"]
    async with session.get(
        sim.url + ACCOUNTS, headers=auth(sim, None, answer["accessToken"])
    ) as resp:
        assert resp.status == 200
        assert len(await resp.json()) == 2
    async with session.post(sim.url + EXCHANGE, json={"token": "wrong"}) as resp:
        assert resp.status == 401
    async with session.post(sim.url + EXCHANGE, json={}) as resp:
        assert resp.status == 400
    assert [r.endpoint for r in sim.requests] == ["access_token", "accounts"] + [
        "access_token"
    ] * 2

    plain = await frontoffice_simulator_factory()
    async with session.post(plain.url + EXCHANGE, json={"token": "offline-1"}) as resp:
        assert resp.status == 404


def test_exchanged_tokens_expire() -> None:
    now = [1000.0]
    registry = TokenRegistry(0, clock=lambda: now[0])
    token = registry.issue_jwt(["a"], ttl=60)
    assert registry.check(token) is not None
    now[0] += 60
    assert registry.check(token) is None


async def test_plugin_fixtures(
    frontoffice_simulator: FrontOfficeSimulator, frontoffice_simulator_factory: SimulatorFactory
) -> None:
    assert frontoffice_simulator.url.startswith("http://127.0.0.1:")
    one = await frontoffice_simulator_factory(seed=5, faults=FaultPlan.none())
    two = await frontoffice_simulator_factory(accounts=["x" * 24])
    assert len({frontoffice_simulator.url, one.url, two.url}) == 3
    assert two.account_ids == ("x" * 24,)
