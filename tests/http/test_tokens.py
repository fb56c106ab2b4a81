"""The token source: JWT expiry, proactive refresh, single flight, provider failures."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from frontoffice_async import TokenProviderError
from frontoffice_async._http.tokens import TokenSource, jwt_expiry

from ..support import FakeClock


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
