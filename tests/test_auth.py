"""Tokens through the client: the 401 refresh, its single flight, and the offline exchange."""

from __future__ import annotations

import asyncio

import pytest

from frontoffice_async import (
    AuthenticationError,
    FrontOfficeClient,
    OfflineTokenAuth,
    OrderStatus,
    TokenProviderError,
)
from frontoffice_async.testing import FrontOfficeSimulator


async def test_offline_token_refreshed_before_expiry_end_to_end() -> None:
    async with FrontOfficeSimulator(offline_token="offline-x", access_token_ttl=30) as sim:
        auth = OfflineTokenAuth("offline-x")
        async with FrontOfficeClient(sim.url, token=auth, account_id=sim.account_ids[0]) as c:
            await c.list_accounts()
            await c.list_accounts()
        # A 30 s token is already inside the one-minute margin: each call may exchange,
        # but never more than once per call, and every call succeeds.
        assert 1 <= auth.exchanges <= 2
        assert [r.status for r in sim.requests if r.endpoint == "accounts"] == [200, 200]


def test_offline_token_path_is_configurable_and_repr_is_safe() -> None:
    auth = OfflineTokenAuth("offline-secret", path="custom/exchange")
    assert auth.path == "/custom/exchange"
    assert "offline-secret" not in repr(auth)
    with pytest.raises(ValueError, match="empty"):
        OfflineTokenAuth("   ")


async def test_unbound_offline_token_auth_says_how_to_use_it() -> None:
    with pytest.raises(RuntimeError, match="FrontOfficeClient"):
        await OfflineTokenAuth("x")()


# --- against the simulator: lazy fetch, 401 refresh, single flight ---------------------------


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
            with pytest.raises(TokenProviderError, match="offline token is invalid") as caught:
                await client.list_accounts()
    assert isinstance(caught.value.__cause__, AuthenticationError)
    assert caught.value.attempts == 0
    assert [r.endpoint for r in sim.requests] == ["access_token"]
