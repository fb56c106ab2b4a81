"""FrontOfficeClient against the loopback simulator: requests, lifecycle, auth, validation."""

from __future__ import annotations

import asyncio
import gc
import warnings
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import test_utils, web

import frontoffice_async
from frontoffice_async import (
    AuthenticationError,
    BadRequestError,
    FrontOfficeClient,
    InvalidOrderIdError,
    OfflineTokenAuth,
    OrderNotFoundError,
    OrderStatus,
    PermissionDeniedError,
    RetryPolicy,
    StopOrderStatus,
)
from frontoffice_async.testing import FrontOfficeSimulator

from .conftest import sample

SECRET = "tok-SENTINEL-7c1e9d"


@pytest.fixture
async def sim() -> AsyncIterator[FrontOfficeSimulator]:
    async with FrontOfficeSimulator(token=SECRET) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: FrontOfficeSimulator) -> AsyncIterator[FrontOfficeClient]:
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
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
            await client.cancel_order("X")
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
    with pytest.raises(BadRequestError, match="cannot be cancelled in status Cancelled"):
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


# --- auth ---------------------------------------------------------------------------------------


async def test_refreshable_token_is_fetched_lazily_and_refreshed_on_401(
    sim: FrontOfficeSimulator,
) -> None:
    issued: list[str] = []

    async def fetch() -> str:
        issued.append(sim.issue_token())
        return issued[-1]

    ids = sim.add_orders(2)
    async with FrontOfficeClient(sim.url, token=fetch, account_id=sim.account_ids[0]) as client:
        assert issued == []  # nothing fetched before the first call
        await client.cancel_order(ids[0])
        sim.revoke_token(issued[0])  # the token expires server-side
        order = await client.cancel_order(ids[1])
    assert order.status is OrderStatus.CANCELLED
    assert len(issued) == 2
    assert [r.status for r in sim.requests] == [200, 401, 200]
    assert [r.token for r in sim.requests] == [issued[0], issued[0], issued[1]]


async def test_100_concurrent_401s_trigger_one_refresh(sim: FrontOfficeSimulator) -> None:
    calls = 0
    first = sim.issue_token()

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)  # let the other waiters pile up on the lock
        return first if calls == 1 else sim.issue_token()

    ids = sim.add_orders(100)
    async with FrontOfficeClient(sim.url, token=fetch, account_id=sim.account_ids[0]) as client:
        await client.list_accounts()
        sim.revoke_token(first)
        orders = await asyncio.gather(*(client.cancel_order(i) for i in ids))
    assert len(orders) == 100
    assert calls == 2  # the first fetch, then exactly one refresh for all 100


async def test_second_401_raises_authentication_error(sim: FrontOfficeSimulator) -> None:
    revoked = sim.issue_token()
    sim.revoke_token(revoked)
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        return revoked

    async with FrontOfficeClient(sim.url, token=fetch, account_id=sim.account_ids[0]) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.cancel_order("X")
    assert calls == 2
    assert len(sim.requests) == 2
    assert revoked not in str(caught.value)
    assert revoked not in repr(caught.value)


async def test_fixed_token_401_is_not_retried(sim: FrontOfficeSimulator) -> None:
    async with FrontOfficeClient(sim.url, token="wrong", account_id=sim.account_ids[0]) as client:
        with pytest.raises(AuthenticationError):
            await client.cancel_order("X")
    assert len(sim.requests) == 1


async def test_offline_token_exchange() -> None:
    async with FrontOfficeSimulator(
        offline_token="offline-SENTINEL", access_token_ttl=3600
    ) as sim:
        auth = OfflineTokenAuth("offline-SENTINEL")
        [order_id] = sim.add_orders(1)
        async with FrontOfficeClient(sim.url, token=auth, account_id=sim.account_ids[0]) as client:
            await client.cancel_order(order_id)
            await client.list_accounts()
        assert auth.exchanges == 1
        assert [r.endpoint for r in sim.requests] == ["access_token", "cancel_order", "accounts"]
        assert "offline-SENTINEL" not in repr(auth)


async def test_offline_token_refused() -> None:
    async with FrontOfficeSimulator(offline_token="right") as sim:
        client = FrontOfficeClient(sim.url, token=OfflineTokenAuth("wrong"), account_id="a")
        async with client:
            with pytest.raises(AuthenticationError):
                await client.list_accounts()


# --- lifecycle ----------------------------------------------------------------------------------


async def test_close_is_idempotent_and_calls_after_close_fail(sim: FrontOfficeSimulator) -> None:
    client = FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0])
    await client.list_accounts()
    await client.close()
    await client.close()
    assert client.closed
    with pytest.raises(RuntimeError, match="closed"):
        await client.cancel_order("X")
    with pytest.raises(RuntimeError, match="closed"):
        await client.list_accounts()


async def test_borrowed_session_is_left_open(sim: FrontOfficeSimulator) -> None:
    async with aiohttp.ClientSession() as session:
        [order_id] = sim.add_orders(1)
        async with FrontOfficeClient(
            sim.url, token=sim.token, account_id=sim.account_ids[0], session=session
        ) as client:
            await client.cancel_order(order_id)
        assert not session.closed
        async with session.get(sim.url + "/frontoffice/api/v3/accounts") as response:
            assert response.status == 401  # still usable, and it never got our token


async def test_no_session_before_first_use_and_none_left_unclosed(
    sim: FrontOfficeSimulator,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(20):
            async with FrontOfficeClient(sim.url, token=sim.token, account_id="a") as client:
                await client.list_accounts()
        never_used = FrontOfficeClient(sim.url, token=sim.token)
        await never_used.close()
        del client, never_used
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_use_from_another_event_loop_is_a_clear_error(sim: FrontOfficeSimulator) -> None:
    async with FrontOfficeClient(sim.url, token=sim.token, account_id="a") as client:
        await client.list_accounts()

        async def elsewhere() -> None:
            await client.list_accounts()

        with pytest.raises(RuntimeError, match="another event loop"):
            await asyncio.to_thread(asyncio.run, elsewhere())


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match="base_url"):
        FrontOfficeClient("ftp://x", token="t")
    with pytest.raises(ValueError, match="base_url"):
        FrontOfficeClient("https://user:pw@host", token="t")
    with pytest.raises(ValueError, match="concurrency"):
        FrontOfficeClient("https://host", token="t", concurrency=0)
    with pytest.raises(ValueError, match="timeout"):
        FrontOfficeClient("https://host", token="t", timeout=-1)
    with pytest.raises(TypeError, match="token"):
        FrontOfficeClient("https://host", token=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token"):
        FrontOfficeClient("https://host", token="a\r\nb")


def test_repr_never_shows_the_token() -> None:
    client = FrontOfficeClient("https://host/", token=SECRET, account_id="acc")
    assert SECRET not in repr(client)
    assert repr(client) == (
        "<FrontOfficeClient https://host account_id='acc' token=<TokenSource fixed> open>"
    )


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
