"""Token sources: JWT expiry, proactive refresh, single flight, and the offline exchange."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from frontoffice_async import FrontOfficeClient, OfflineTokenAuth
from frontoffice_async.auth import TokenSource, jwt_expiry
from frontoffice_async.testing import FrontOfficeSimulator


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


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_jwt_is_refreshed_a_minute_before_it_expires() -> None:
    clock = Clock(1000.0)
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
    clock = Clock(0.0)
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
    clock = Clock(10_000.0)
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


async def test_a_provider_returning_garbage_is_refused_without_echoing_it() -> None:
    async def fetch() -> str:
        return "secret-value\r\nX-Evil: 1"

    with pytest.raises(ValueError, match="control") as caught:
        await TokenSource(fetch).header()
    assert "secret-value" not in str(caught.value)


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
