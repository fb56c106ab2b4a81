"""Tokens: JWT expiry, proactive refresh, the 401 refresh, single flight, provider failures,
and the offline exchange."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from frontoffice_async import (
    AuthenticationError,
    FrontOfficeClient,
    OfflineTokenAuth,
    OrderStatus,
    TokenProviderError,
)
from frontoffice_async.auth import TokenSource, jwt_expiry
from frontoffice_async.testing import FrontOfficeSimulator

from .support import FakeClock


def jwt(claims: object) -> str:
    def part(data: object) -> str:
        raw = json.dumps(data).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (jwt({"exp": 1_900_000_000}), 1_900_000_000.0),
        (jwt({"exp": 1.5}), 1.5),
        (jwt({"sub": "x"}), None),
        (jwt({"exp": "soon"}), None),
        (jwt({"exp": True}), None),
        (jwt([1, 2]), None),
        ("not-a-jwt", None),
        ("a.b.c", None),
        ("a.%%%.c", None),
    ],
)
def test_jwt_expiry(token: str, expected: float | None) -> None:
    assert jwt_expiry(token) == expected


async def test_a_jwt_is_refreshed_a_minute_before_it_expires() -> None:
    clock = FakeClock(1000.0)
    issued: list[str] = []

    async def fetch() -> str:
        issued.append(jwt({"exp": clock.now + 3600, "n": len(issued)}))
        return issued[-1]

    source = TokenSource(fetch, clock=clock)
    first = await source.header()
    assert await source.header() == first  # cached
    clock.now += 3600 - 61
    assert await source.header() == first  # still more than a minute left
    clock.now += 2
    second = await source.header()
    assert second != first
    assert second == "Bearer " + issued[1]
    assert source.refreshes == 2


async def test_a_token_without_readable_expiry_is_refreshed_after_55_minutes() -> None:
    clock = FakeClock(0.0)
    count = 0

    async def fetch() -> str:
        nonlocal count
        count += 1
        return f"opaque-{count}"

    source = TokenSource(fetch, clock=clock)
    assert await source.header() == "Bearer opaque-1"
    clock.now = 55 * 60 - 1
    assert await source.header() == "Bearer opaque-1"
    clock.now = 55 * 60
    assert await source.header() == "Bearer opaque-2"


async def test_an_already_expired_jwt_does_not_cause_a_refresh_loop() -> None:
    clock = FakeClock(10_000.0)
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        return jwt({"exp": 1.0})  # the issuer's clock is wrong

    source = TokenSource(fetch, clock=clock)
    await source.header()
    await source.header()
    assert calls == 1  # used for at least a second before asking again


async def test_concurrent_first_use_fetches_once() -> None:
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return "tok"

    source = TokenSource(fetch)
    headers = await asyncio.gather(*(source.header() for _ in range(50)))
    assert set(headers) == {"Bearer tok"}
    assert calls == 1


@pytest.mark.parametrize("returned", ["secret-value\r\nX-Evil: 1", "", None, 42])
async def test_a_provider_returning_no_usable_token_is_a_provider_error(
    returned: object,
) -> None:
    async def fetch() -> object:
        return returned

    with pytest.raises(TokenProviderError, match="no usable token") as caught:
        await TokenSource(fetch).header()  # type: ignore[arg-type]
    assert "secret-value" not in str(caught.value)
    assert caught.value.__cause__ is None  # the refused value is not kept anywhere


async def test_a_provider_that_raises_is_a_provider_error_with_its_cause() -> None:
    async def fetch() -> str:
        raise OSError("vault says: token=abc123")

    with pytest.raises(TokenProviderError) as caught:
        await TokenSource(fetch).header()
    assert isinstance(caught.value.__cause__, OSError)
    assert "abc123" not in str(caught.value)  # the provider's own text is not repeated


async def test_waiters_share_one_failing_provider_call() -> None:
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        raise ConnectionError("down")

    source = TokenSource(fetch)
    results = await asyncio.gather(*(source.header() for _ in range(20)), return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, TokenProviderError) for r in results)


async def test_a_waiter_that_gives_up_leaves_the_call_to_the_others() -> None:
    release = asyncio.Event()

    async def fetch() -> str:
        await release.wait()
        return "tok"

    source = TokenSource(fetch)
    impatient = asyncio.create_task(source.header())
    patient = asyncio.create_task(source.header())
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert await patient == "Bearer tok"
    assert source.refreshes == 1
    await source.aclose()


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
