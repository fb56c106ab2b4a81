"""The token source: JWT expiry, proactive refresh, single flight, provider failures."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable

import pytest

from frontoffice_async import OfflineTokenAuth, TokenProviderError
from frontoffice_async._http.tokens import (
    FAILED_COOLDOWN,
    REFUSED_COOLDOWN,
    Credential,
    TokenSource,
    jwt_expiry,
)
from frontoffice_async.testing import FrontOfficeSimulator

from ..support import FakeClock, client_for


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

    source = TokenSource(fetch, clock=clock, wall=clock)
    first = (await source.credential()).value
    assert (await source.credential()).value == first  # cached
    clock.now += 3600 - 61
    assert (await source.credential()).value == first  # still more than a minute left
    clock.now += 2
    second = (await source.credential()).value
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

    source = TokenSource(fetch, clock=clock, wall=clock)
    assert (await source.credential()).value == "Bearer opaque-1"
    clock.now = 55 * 60 - 1
    assert (await source.credential()).value == "Bearer opaque-1"
    clock.now = 55 * 60
    assert (await source.credential()).value == "Bearer opaque-2"


async def test_an_already_expired_jwt_does_not_cause_a_refresh_loop() -> None:
    clock = FakeClock(10_000.0)
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        return jwt({"exp": 1.0})  # the issuer's clock is wrong

    source = TokenSource(fetch, clock=clock, wall=clock)
    await source.credential()
    await source.credential()
    assert calls == 1  # used for at least a second before asking again


async def test_concurrent_first_use_fetches_once() -> None:
    calls = 0

    async def fetch() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return "tok"

    source = TokenSource(fetch)
    headers = [c.value for c in await asyncio.gather(*(source.credential() for _ in range(50)))]
    assert set(headers) == {"Bearer tok"}
    assert calls == 1


@pytest.mark.parametrize("returned", ["secret-value\r\nX-Evil: 1", "", None, 42])
async def test_a_provider_returning_no_usable_token_is_a_provider_error(
    returned: object,
) -> None:
    async def fetch() -> object:
        return returned

    with pytest.raises(TokenProviderError, match="no usable token") as caught:
        await TokenSource(fetch).credential()  # type: ignore[arg-type]
    assert "secret-value" not in str(caught.value)
    assert caught.value.__cause__ is None  # the refused value is not kept anywhere


async def test_a_provider_that_raises_is_a_provider_error_with_its_cause() -> None:
    async def fetch() -> str:
        raise OSError("vault says: token=abc123")

    with pytest.raises(TokenProviderError) as caught:
        await TokenSource(fetch).credential()
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
    results = await asyncio.gather(
        *(source.credential() for _ in range(20)), return_exceptions=True
    )
    assert calls == 1
    assert all(isinstance(r, TokenProviderError) for r in results)


async def test_a_waiter_that_gives_up_leaves_the_call_to_the_others() -> None:
    release = asyncio.Event()

    async def fetch() -> str:
        await release.wait()
        return "tok"

    source = TokenSource(fetch)
    impatient = asyncio.create_task(source.credential())
    patient = asyncio.create_task(source.credential())
    await asyncio.sleep(0)
    impatient.cancel()
    release.set()
    assert (await patient).value == "Bearer tok"
    assert source.refreshes == 1
    await source.aclose()


# --- the monotonic clock: a step of the wall clock changes nothing ----------------------------


async def test_a_failed_provider_is_asked_again_after_a_wall_clock_step_back() -> None:
    monotonic, wall = FakeClock(50.0), FakeClock(1_750_000_000.0)
    answers: list[str | Exception] = [ConnectionError("vault down"), "tok-2"]

    async def fetch() -> str:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    source = TokenSource(fetch, clock=monotonic, wall=wall)
    with pytest.raises(TokenProviderError):
        await source.credential()
    wall.now -= 3600.0  # NTP steps the wall clock back an hour
    monotonic.advance(FAILED_COOLDOWN + 0.01)
    assert (
        await source.credential()
    ).value == "Bearer tok-2"  # the healthy provider is asked again


async def test_a_refused_token_rests_the_provider_on_the_monotonic_clock() -> None:
    monotonic, wall = FakeClock(50.0), FakeClock(1_750_000_000.0)
    source = TokenSource(_counting(), clock=monotonic, wall=wall)
    used = await source.credential()
    source.refused(used)
    assert not source.should_refresh(used)
    wall.now -= 3600.0
    monotonic.advance(REFUSED_COOLDOWN)
    assert source.should_refresh(used)


async def test_a_jwt_expiry_becomes_a_monotonic_deadline_when_accepted() -> None:
    monotonic, wall = FakeClock(50.0), FakeClock(1_750_000_000.0)
    issued: list[str] = []

    async def fetch() -> str:
        issued.append(jwt({"exp": 1_750_000_000 + 600, "n": len(issued)}))
        return issued[-1]

    source = TokenSource(fetch, clock=monotonic, wall=wall)
    first = await source.credential()
    wall.now += 10_000.0  # the wall clock jumps ahead: the token is still good for 10 minutes
    assert source.cached_credential() is first
    monotonic.advance(600 - 61)
    assert source.cached_credential() is first
    monotonic.advance(2)
    assert source.cached_credential() is None  # a minute before `exp`, on the monotonic clock
    assert (await source.credential()) is not first


async def test_a_client_uses_its_own_clock_for_the_provider_cooldown(
    sim: FrontOfficeSimulator,
) -> None:
    clock = FakeClock()
    failures = [True]

    async def provider() -> str:
        if failures and failures.pop():
            raise ConnectionError("vault down")
        return sim.token

    [order_id] = sim.add_orders(1)
    async with client_for(sim, token=provider, clock=clock) as client:
        with pytest.raises(TokenProviderError):
            await client.cancel_order(order_id)
        clock.advance(FAILED_COOLDOWN + 0.01)  # no real time passes
        assert (await client.cancel_order(order_id)).order_id == order_id


# --- credentials: the token is never a local variable's text -----------------------------------


def test_a_credential_never_shows_its_token() -> None:
    credential = Credential("Bearer tok-SECRET-1", 3)
    assert "SECRET" not in repr(credential) and "SECRET" not in str(credential)
    assert repr(credential) == "<Credential #3>"


async def test_the_stale_credential_is_known_by_identity() -> None:
    source = TokenSource(_counting())
    first = await source.credential()
    assert await source.refresh(stale=None) is first  # still fresh: no new call
    second = await source.refresh(stale=first)
    assert second is not first and second.generation == first.generation + 1
    assert await source.refresh(stale=first) is second  # someone refreshed already
    assert source.refreshes == 2


def _counting() -> Callable[[], Awaitable[str]]:
    count = 0

    async def fetch() -> str:
        nonlocal count
        count += 1
        return f"tok-{count}"

    return fetch


def test_an_offline_token_is_among_the_secrets_before_any_token_is_fetched() -> None:
    # The long-lived secret behind every token: masked in echoes and kept out of the guard's
    # environment, however many tokens were fetched since.
    offline = "offline-" + "k" * 40
    source = TokenSource(OfflineTokenAuth(offline))
    assert source.secrets == (offline,)
    assert TokenSource("plain-token-" + "p" * 20).secrets == ("plain-token-" + "p" * 20,)
