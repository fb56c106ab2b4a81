"""FrontOfficeClient's calls against the loopback simulator: requests, options, validation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import test_utils, web

import frontoffice_async
from frontoffice_async import (
    FrontOfficeClient,
    InvalidOrderIdError,
    OrderNotActiveError,
    OrderNotFoundError,
    OrderSide,
    OrderStatus,
    PermissionDeniedError,
    RetryPolicy,
    StopOrderStatus,
)
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator

from .support import FAST, SECOND_ACCOUNT_ID, SENTINEL_TOKEN, FakeClock, client_for, sample

SECRET = SENTINEL_TOKEN


@pytest.fixture
async def client(sim: FrontOfficeSimulator) -> AsyncIterator[FrontOfficeClient]:
    async with client_for(sim) as c:
        yield c


async def test_cancel_one(sim: FrontOfficeSimulator, client: FrontOfficeClient) -> None:
    [order_id] = sim.add_orders(1)
    order = await client.cancel_order(order_id)
    assert order.order_id == order_id
    assert order.status is OrderStatus.CANCELLED
    assert order.cancellation_date is not None
    assert sim.orders[order_id].status == "Cancelled"
    [request] = sim.requests
    assert request.method == "DELETE"
    assert request.path == f"/frontoffice/api/v3/orders/{order_id}"
    assert request.account_id == sim.account_ids[0]
    assert request.token == SECRET
    assert request.status == 200


async def test_cancel_stop_order(sim: FrontOfficeSimulator, client: FrontOfficeClient) -> None:
    [order_id] = sim.add_stop_orders(1)
    stop = await client.cancel_stop_order(order_id)
    assert stop.order_id == order_id
    assert stop.status == "Cancelled"
    assert isinstance(stop.status, StopOrderStatus)


async def test_list_accounts_sends_no_account_header(
    sim: FrontOfficeSimulator, client: FrontOfficeClient
) -> None:
    accounts = await client.list_accounts()
    assert [a.account_id for a in accounts] == list(sim.account_ids)
    assert sim.requests[0].account_id is None


async def test_headers_user_agent_and_no_body() -> None:
    seen: list[tuple[str | None, str | None, bytes]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(
            (
                request.headers.get("User-Agent"),
                request.headers.get("accountId"),
                await request.read(),
            )
        )
        return web.Response(body=sample("cancel_order_200.json"))

    app = web.Application()
    app.router.add_delete("/frontoffice/api/v3/orders/{id}", handler)
    async with test_utils.TestServer(app) as server:
        url = str(server.make_url("")).rstrip("/")
        async with FrontOfficeClient(url, token="t", account_id="acc") as client:
            await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJB")  # the sample's id
    [(agent, account, body)] = seen
    assert agent is not None
    assert agent.startswith(f"frontoffice-async/{frontoffice_async.__version__} ")
    assert account == "acc"
    assert body == b""


async def test_gather_1000_cancels_share_one_pool(sim: FrontOfficeSimulator) -> None:
    ids = sim.add_orders(1000)
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
        orders = await asyncio.gather(*(c.cancel_order(i) for i in ids))
    assert [o.order_id for o in orders] == ids
    assert sim.open_order_ids() == []
    assert sim.stats.requests == 1000
    # One pool for every call: never more connections than the connector's limit (100).
    assert 1 <= sim.stats.connections_opened <= 100


async def test_per_call_account_override(
    sim: FrontOfficeSimulator, client: FrontOfficeClient
) -> None:
    [order_id] = sim.add_orders(1, account_id=sim.account_ids[1])
    with pytest.raises(OrderNotFoundError):
        await client.cancel_order(order_id)  # default account: not its order
    order = await client.cancel_order(order_id, account_id=sim.account_ids[1])
    assert order.status is OrderStatus.CANCELLED
    assert [r.account_id for r in sim.requests] == [sim.account_ids[0], sim.account_ids[1]]


async def test_account_the_token_does_not_own(
    sim: FrontOfficeSimulator, client: FrontOfficeClient
) -> None:
    with pytest.raises(PermissionDeniedError) as caught:
        await client.cancel_order(
            "01K2PF9XS29WN4JZRHMCTTQYJB", account_id="ffffffffffffffffffffffff"
        )
    assert caught.value.status == 403
    assert SECRET not in str(caught.value)


async def test_unknown_and_already_final(
    sim: FrontOfficeSimulator, client: FrontOfficeClient
) -> None:
    with pytest.raises(OrderNotFoundError) as missing:
        await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJZ")
    assert missing.value.order_id == "01K2PF9XS29WN4JZRHMCTTQYJZ"
    assert missing.value.after_retry is False
    [order_id] = sim.add_orders(1)
    await client.cancel_order(order_id)
    with pytest.raises(OrderNotActiveError, match="cannot be cancelled in status Cancelled"):
        await client.cancel_order(order_id)


async def test_id_is_one_encoded_path_segment(
    sim: FrontOfficeSimulator, client: FrontOfficeClient
) -> None:
    with pytest.raises(OrderNotFoundError):
        await client.cancel_order("a/b?c#d e")
    [request] = sim.requests
    assert request.path == "/frontoffice/api/v3/orders/a%2Fb%3Fc%23d%20e"
    assert request.order_id == "a/b?c#d e"


@pytest.mark.parametrize(
    "bad_id",
    ["", "   ", ".", "..", "a\nb", "a\rb", "tab\there", "x" * 129, " lead", "trail "],
)
async def test_impossible_ids_never_reach_the_network(
    sim: FrontOfficeSimulator, client: FrontOfficeClient, bad_id: str
) -> None:
    with pytest.raises(InvalidOrderIdError) as caught:
        await client.cancel_order(bad_id)
    assert isinstance(caught.value, ValueError)
    assert sim.requests == []


@pytest.mark.parametrize("bad_id", [None, 123, b"01K2", ["x"]])
async def test_non_str_ids_are_type_errors(
    sim: FrontOfficeSimulator, client: FrontOfficeClient, bad_id: object
) -> None:
    with pytest.raises(TypeError):
        await client.cancel_order(bad_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidOrderIdError):
        await client.cancel_stop_order(bad_id)  # type: ignore[arg-type]
    assert sim.requests == []


async def test_missing_account_raises_before_any_request(sim: FrontOfficeSimulator) -> None:
    async with FrontOfficeClient(sim.url, token=sim.token) as client:
        with pytest.raises(ValueError, match="no account id"):
            await client.cancel_order("X")
        with pytest.raises(ValueError, match="no account id"):
            await client.cancel_orders(["X"])
        assert len(await client.list_accounts()) == 2  # needs no account
    assert [r.endpoint for r in sim.requests] == ["accounts"]


@pytest.mark.parametrize("account", ["acc\r\nX-Evil: 1", "acc ount", "cafè", "", "a" * 129])
async def test_account_ids_that_would_corrupt_a_header(
    sim: FrontOfficeSimulator, account: str
) -> None:
    with pytest.raises(ValueError, match="account_id"):
        FrontOfficeClient(sim.url, token=sim.token, account_id=account)
    async with FrontOfficeClient(sim.url, token=sim.token, account_id="a") as client:
        with pytest.raises(ValueError, match="account_id"):
            await client.cancel_order("X", account_id=account)
    assert sim.requests == []


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="base_url"):
        FrontOfficeClient("ftp://x", token="t")
    with pytest.raises(ValueError, match="base_url"):
        FrontOfficeClient("https://user:pw@host", token="t")
    with pytest.raises(ValueError, match=r"base_url is not a valid URL: .*IPv6") as caught:
        FrontOfficeClient("https://bot:S3CRET@[::1", token="t")
    assert "S3CRET" not in str(caught.value)  # a base URL may carry credentials: not echoed
    with pytest.raises(ValueError, match="concurrency"):
        FrontOfficeClient("https://host", token="t", concurrency=0)
    with pytest.raises(ValueError, match="timeout"):
        FrontOfficeClient("https://host", token="t", timeout=-1)
    with pytest.raises(TypeError, match="token"):
        FrontOfficeClient("https://host", token=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token"):
        FrontOfficeClient("https://host", token="a\r\nb")


async def test_repr_says_the_state_and_never_shows_the_token(sim: FrontOfficeSimulator) -> None:
    client = FrontOfficeClient(sim.url, token=SECRET, account_id="acc")
    assert SECRET not in repr(client)
    assert repr(client) == (
        f"<FrontOfficeClient {sim.url} account_id='acc' token=<TokenSource fixed> not started>"
    )
    async with client:
        assert repr(client).endswith(" open>")
        assert repr(client.with_options(timeout=1.0)).startswith("<FrontOfficeClient view of ")
    assert repr(client).endswith(" closed>")


async def test_retry_policy_none_and_timeout_object(sim: FrontOfficeSimulator) -> None:
    [order_id] = sim.add_orders(1)
    async with FrontOfficeClient(
        sim.url,
        token=sim.token,
        account_id=sim.account_ids[0],
        retry=RetryPolicy.none(),
        timeout=aiohttp.ClientTimeout(total=5, sock_connect=2),
    ) as client:
        assert (await client.cancel_order(order_id)).order_id == order_id


# --- per-call options, headers, tracing -------------------------------------------------------


async def test_with_options_shares_everything_but_what_it_changes(
    sim: FrontOfficeSimulator,
) -> None:
    ids = sim.add_orders(3, account_id=SECOND_ACCOUNT_ID)
    [flaky] = sim.add_orders(1)
    sim.faults = FaultPlan(scripts={flaky: [Fault.unavailable(), None]})
    clock = FakeClock()
    async with client_for(sim, rate_limit=100.0, clock=clock, sleep=clock.sleep) as client:
        strict = client.with_options(retry=RetryPolicy.none(), timeout=2.0)
        other = client.with_options(account_id=SECOND_ACCOUNT_ID, concurrency=2)
        with pytest.raises(frontoffice_async.ServerError):
            await strict.cancel_order(flaky)  # no retry on the view
        result = await other.cancel_orders(ids)
        assert await client.cancel_order(flaky)  # the parent still retries
        assert strict.retry == RetryPolicy.none() and client.retry != strict.retry
        assert other.account_id == SECOND_ACCOUNT_ID and other.concurrency == 2
        assert client.account_id == sim.account_ids[0] and client.concurrency == 32
        await strict.close()  # a view has nothing of its own to close
        assert not client.closed
    assert len(result.cancelled) == 3
    assert sim.stats.connections_opened <= 3  # one pool for all
    assert clock.now == pytest.approx(1000.0 + 4 * 0.01)  # one limiter paced all 5 requests
    with pytest.raises(RuntimeError, match="closed"):
        await other.cancel_order(ids[0])  # after the parent's close


async def test_with_options_shares_the_retry_budget(sim: FrontOfficeSimulator) -> None:
    ids = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={i: [Fault.unavailable(), None] for i in ids})
    async with client_for(sim, retry=FAST) as client:
        view = client.with_options(timeout=5.0)
        sim.faults = FaultPlan(scripts={ids[0]: [Fault.unavailable()] * 4})
        with pytest.raises(frontoffice_async.ServerError):
            await view.cancel_order(ids[0])
        assert client.retry_budget_left == view.retry_budget_left == 500 - 3 * 5


async def test_default_headers_are_sent_and_merged_by_views(sim: FrontOfficeSimulator) -> None:
    seen: list[dict[str, str]] = []

    async def on_request_start(
        _: object, __: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        seen.append(dict(params.headers))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    ids = sim.add_orders(2)
    [stop] = sim.add_stop_orders(1)
    async with client_for(
        sim, default_headers={"X-Broker": "b1", "X-Desk": "d1"}, trace_configs=[trace]
    ) as client:
        await client.cancel_order(ids[0])
        await client.with_options(default_headers={"X-Desk": "d2"}).cancel_order(ids[1])
        await client.cancel_stop_order(stop)
    assert seen[0]["X-Broker"] == "b1" and seen[0]["X-Desk"] == "d1"
    assert seen[1]["X-Broker"] == "b1" and seen[1]["X-Desk"] == "d2"
    # The platform's own example sends this on the body-less stop-order DELETE.
    assert seen[2]["Content-Type"] == "application/json; x-api-version=4.0"
    assert "Content-Type" not in seen[0]


async def test_stop_order_content_type_can_be_overridden(sim: FrontOfficeSimulator) -> None:
    seen: list[str | None] = []

    async def on_request_start(
        _: object, __: object, params: aiohttp.TraceRequestStartParams
    ) -> None:
        seen.append(params.headers.get("Content-Type"))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request_start)
    [stop] = sim.add_stop_orders(1)
    async with client_for(
        sim, default_headers={"Content-Type": "application/json"}, trace_configs=[trace]
    ) as client:
        await client.cancel_stop_order(stop)
    assert seen == ["application/json"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "x"},
        {"accountid": "x"},
        {"Bad Name": "x"},
        {"X-A": "a\r\nb"},
        {"Transfer-Encoding": "chunked"},  # a server's parser answers 400: "not active"?
        {"connection": "close"},
        {"X-Client-Trace": "a" * 5000},  # over a server's header limit: 400 again
    ],
)
def test_default_headers_that_cannot_be_sent_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="default_headers"):
        FrontOfficeClient("https://host", token="t", default_headers=headers)


async def test_trace_configs_belong_to_the_session_the_client_creates() -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(ValueError, match="trace_configs"):
            FrontOfficeClient(
                "https://host", token="t", session=session, trace_configs=[aiohttp.TraceConfig()]
            )


async def test_open_orders_filters(sim: FrontOfficeSimulator, client: FrontOfficeClient) -> None:
    eth_buy = sim.add_orders(2, market_id="spot.eth_usdt", side="Buy")
    sim.add_orders(2, market_id="spot.eth_usdt", side="Sell")
    btc = sim.add_orders(1, market_id="spot.btc_usdt", side="Buy")
    assert len(await client.open_orders()) == 5
    found = await client.open_orders(market_id="spot.eth_usdt", side="BUY")
    assert [o.order_id for o in found] == eth_buy
    found = await client.open_orders(side=OrderSide.BUY)
    assert [o.order_id for o in found] == eth_buy + btc
    with pytest.raises(ValueError, match="side"):
        await client.open_orders(side="long")


async def test_order_comment_is_read_when_the_platform_sends_it() -> None:
    body = sample("cancel_order_200.json").replace(
        b'"fillFactor"', b'"comment": "hedge", "fillFactor"'
    )

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body)

    app = web.Application()
    app.router.add_delete("/frontoffice/api/v3/orders/{id}", handler)
    async with test_utils.TestServer(app) as server:
        url = str(server.make_url("")).rstrip("/")
        async with FrontOfficeClient(url, token="t", account_id="acc") as client:
            order = await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJB")  # the sample's id
    assert order.comment == "hedge"


@pytest.mark.parametrize(
    "make",
    [
        lambda: RetryPolicy(deadline=float("inf")),
        lambda: RetryPolicy(max_delay=float("inf")),
        lambda: FrontOfficeClient("https://host", token="t", timeout=float("inf")),
        lambda: FrontOfficeClient("https://host", token="t", timeout=float("nan")),
    ],
)
def test_infinite_limits_are_refused_when_built(make: Any) -> None:
    with pytest.raises(ValueError, match="finite"):
        make()


async def test_with_options_checks_its_arguments(client: FrontOfficeClient) -> None:
    with pytest.raises(TypeError, match="RetryPolicy"):
        client.with_options(retry=None)  # type: ignore[arg-type]
    view = client.with_options(timeout=aiohttp.ClientTimeout(total=2.0))
    assert view._calls.pipeline.retry.timeout == 2.0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"market_id": ""}, ValueError),
        ({"market_id": 123}, TypeError),
        ({"concurrency": 0}, ValueError),
        ({"rounds": 0}, ValueError),
        ({"side": "long"}, ValueError),
    ],
)
async def test_cancel_all_arguments_are_checked_before_anything_is_sent(
    sim: FrontOfficeSimulator, client: FrontOfficeClient, kwargs: dict[str, Any], error: type
) -> None:
    sim.add_orders(3)
    with pytest.raises(error):
        await client.cancel_all_orders(**kwargs)
    assert sim.requests == []  # not even a snapshot


async def test_the_rate_limit_is_delivered_through_the_client(sim: FrontOfficeSimulator) -> None:
    """Loopback, real time: generous margins (a loaded 2-core CI machine), the exact schedule
    is tested on an injected clock in tests/http/test_ratelimit.py."""
    rate, n = 500, 600
    ids = sim.add_orders(n)
    async with client_for(sim, rate_limit=rate, concurrency=32) as client:
        started = time.perf_counter()
        result = await client.cancel_orders(ids)
        elapsed = time.perf_counter() - started
    assert len(result.cancelled) == n
    assert elapsed >= (n - 1) / rate * 0.99  # never faster than the rate
    assert (n - 1) / elapsed >= 0.85 * rate, f"{(n - 1) / elapsed:.0f}/s of {rate}/s"
