"""The retry middleware on a real loopback server: every fault kind, counted server-side."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from email.utils import formatdate

import aiohttp
import attrs
import pytest

from frontoffice_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    Order,
    OrderNotActiveError,
    OrderNotFoundError,
    OrderStatus,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    RetryEvent,
    RetryPolicy,
    ServerError,
    TokenProviderError,
)
from frontoffice_async._http.gate import Halt, Halted
from frontoffice_async._http.middleware import RetryMiddleware, Shared
from frontoffice_async._http.tokens import TokenSource
from frontoffice_async.testing import Fault, FaultKind, FaultPlan, FrontOfficeSimulator
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ..support import (
    FAST,
    SENTINEL_TOKEN,
    FakeClock,
    Sleeps,
    client_for,
    frame_locals,
    script,
)

SECRET = SENTINEL_TOKEN


async def test_scripted_503_then_429_then_success(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.unavailable(), Fault.rate_limited(retry_after=2), None])
    sleeps, events = Sleeps(), list[RetryEvent]()
    async with client_for(sim, retry=FAST, sleep=sleeps, on_retry=events.append) as client:
        order = await client.cancel_order(order_id)
    assert order.status is OrderStatus.CANCELLED
    assert [r.status for r in sim.requests_for(order_id)] == [503, 429, 200]
    assert [e.cause for e in events] == ["503", "429"]
    assert [e.attempt for e in events] == [1, 2]
    assert sleeps.delays[1] == 2.0  # Retry-After honoured exactly
    assert 0 <= sleeps.delays[0] <= 0.001  # full jitter within base_delay
    assert all(SECRET not in repr(e) for e in events)
    assert events[0].url == f"{sim.url}/frontoffice/api/v3/orders/{order_id}"


@pytest.mark.parametrize(
    ("policy", "sent"),
    [(RetryPolicy.none(), 1), (attrs.evolve(FAST, max_attempts=2), 2), (FAST, 4)],
)
async def test_connection_reset_attempts_are_the_policys_alone(
    sim: FrontOfficeSimulator, policy: RetryPolicy, sent: int
) -> None:
    # aiohttp would replay a reset DELETE once by itself; the middleware owns every resend.
    order_id = script(sim, [Fault.reset()] * 10)
    async with client_for(sim, retry=policy) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.cancel_order(order_id)
    assert len(sim.requests_for(order_id)) == sent
    assert caught.value.attempts == sent
    assert "server closed the connection" in str(caught.value)
    assert not isinstance(caught.value, aiohttp.ClientError)


async def test_reset_then_success(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.reset(), None])
    async with client_for(sim, retry=FAST) as client:
        order = await client.cancel_order(order_id)
    assert order.order_id == order_id
    assert [r.status for r in sim.requests_for(order_id)] == [None, 200]


async def test_bad_gateway_html_until_attempts_run_out(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.bad_gateway()] * 10)
    async with client_for(sim, retry=FAST) as client:
        with pytest.raises(ServerError) as caught:
            await client.cancel_order(order_id)
    assert caught.value.status == 502
    assert caught.value.message == "502 Bad Gateway"
    assert caught.value.attempts == 4
    assert len(sim.requests_for(order_id)) == 4


@pytest.mark.parametrize(
    "fault", [Fault.server_error(), Fault.server_error(status=504), Fault.unavailable()]
)
async def test_5xx_is_retried(sim: FrontOfficeSimulator, fault: Fault) -> None:
    order_id = script(sim, [fault, None])
    async with client_for(sim, retry=FAST) as client:
        order = await client.cancel_order(order_id)
    assert order.status is OrderStatus.CANCELLED
    assert len(sim.requests_for(order_id)) == 2


async def test_slow_attempt_times_out_then_fast_one_succeeds(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.slow(0.5), None])
    events: list[RetryEvent] = []
    async with client_for(sim, retry=FAST, timeout=0.05, on_retry=events.append) as client:
        started = time.monotonic()
        order = await client.cancel_order(order_id)
        elapsed = time.monotonic() - started
    assert order.order_id == order_id
    assert [e.cause for e in events] == ["timeout"]
    assert elapsed < 0.4  # the slow answer was not waited for


async def test_deadline_bounds_the_whole_call(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.slow(1.0)] * 10)
    policy = attrs.evolve(FAST, deadline=0.25, max_attempts=10)
    async with client_for(sim, retry=policy, timeout=0.1) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError) as caught:
            await client.cancel_order(order_id)
        elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 0.5
    assert caught.value.attempts == len(sim.requests_for(order_id))  # nothing after it
    assert 2 <= caught.value.attempts <= 3
    assert isinstance(caught.value, TimeoutError)


async def test_deadline_message(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.slow(1.0)])
    policy = attrs.evolve(FAST, deadline=0.05)
    async with client_for(sim, retry=policy, timeout=None) as client:
        with pytest.raises(APITimeoutError, match=r"deadline of 0\.05s exceeded"):
            await client.cancel_order(order_id)


async def test_retry_after_longer_than_allowed_raises_at_once(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.rate_limited(retry_after=120)])
    sleeps = Sleeps()
    async with client_for(sim, retry=FAST, sleep=sleeps) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.cancel_order(order_id)
    assert caught.value.retry_after == 120
    assert caught.value.attempts == 1
    assert sleeps.delays == []


async def test_retry_after_as_http_date(sim: FrontOfficeSimulator) -> None:
    when = formatdate(time.time() + 3, usegmt=True)
    order_id = script(sim, [Fault.rate_limited(retry_after=when), None])
    sleeps = Sleeps()
    async with client_for(sim, retry=FAST, sleep=sleeps) as client:
        await client.cancel_order(order_id)
    [delay] = sleeps.delays
    assert 1.5 < delay <= 3.0


@pytest.mark.parametrize("value", ["soon-ish", "1_0", "+3", "-0", "\u0663", "1.5"])
async def test_invalid_retry_after_falls_back_to_backoff(
    sim: FrontOfficeSimulator, value: str
) -> None:
    order_id = script(sim, [Fault.rate_limited(retry_after=value), None])
    sleeps = Sleeps()
    async with client_for(sim, retry=FAST, sleep=sleeps) as client:
        await client.cancel_order(order_id)
    [delay] = sleeps.delays
    assert 0 <= delay <= 0.001


async def test_a_400_digit_retry_after_raises_at_once(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.rate_limited(retry_after="9" * 400)])
    sleeps = Sleeps()
    async with client_for(sim, retry=FAST, sleep=sleeps) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.cancel_order(order_id)
    assert caught.value.retry_after == float("inf")
    assert sleeps.delays == []


async def test_malformed_body_is_not_resent(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.malformed()])
    async with client_for(sim, retry=FAST) as client:
        with pytest.raises(ResponseValidationError, match="not JSON") as caught:
            await client.cancel_order(order_id)
    assert len(sim.requests_for(order_id)) == 1
    assert caught.value.attempts == 1
    assert sim.orders[order_id].status == "Cancelled"  # the server did cancel it


async def test_lost_response_then_404_means_probably_cancelled(sim: FrontOfficeSimulator) -> None:
    # What a broker answers for an order it no longer knows (the simulator keeps final
    # orders and says 400), scripted.
    gone = Fault.response(404, body=b'{"title": "Not Found", "status": 404}')
    order_id = script(sim, [Fault.lost_response(), gone])
    async with client_for(sim, retry=FAST) as client:
        with pytest.raises(OrderNotFoundError) as caught:
            await client.cancel_order(order_id)
    assert caught.value.after_retry is True
    assert caught.value.attempts == 2
    assert sim.orders[order_id].status == "Cancelled"


async def test_lost_response_then_400_is_not_active_after_retry(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.lost_response(), None])  # the simulator then says 400
    async with client_for(sim, retry=FAST) as client:
        with pytest.raises(OrderNotActiveError) as caught:
            await client.cancel_order(order_id)
        result = await client.cancel_orders([order_id])
    assert caught.value.after_retry is True
    assert caught.value.status == 400
    assert caught.value.order_id == order_id
    assert "cannot be cancelled in status Cancelled" in caught.value.message
    assert result[0].not_active  # a later call: "not active", not a failure
    assert not result[0].failed
    assert not result[0].error.after_retry  # type: ignore[union-attr]


async def test_users_own_session_still_gets_retries(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.unavailable(), Fault.reset(), None])
    async with aiohttp.ClientSession() as session:
        async with client_for(sim, retry=FAST, session=session) as client:
            order = await client.cancel_order(order_id)
        assert not session.closed
    assert order.order_id == order_id
    assert len(sim.requests_for(order_id)) == 3


async def test_post_is_never_resent(sim: FrontOfficeSimulator) -> None:
    sim.faults = FaultPlan(sequence=[Fault.unavailable(), None])
    middleware = RetryMiddleware(FAST, None, Shared(TokenSource(sim.token), sleep=Sleeps()))
    body = {
        "order": {
            "marketId": "spot.eth_usdt",
            "side": "Buy",
            "orderType": "Limit",
            "timeInForce": "Gtc",
            "requestedAmount": "1",
            "requestedPrice": "10",
        }
    }
    headers = {"accountId": sim.account_ids[0]}
    async with (
        aiohttp.ClientSession(middlewares=(middleware,)) as session,
        session.post(sim.url + "/frontoffice/api/v3/orders", json=body, headers=headers) as resp,
    ):
        assert resp.status == 503
    assert [r.endpoint for r in sim.requests] == ["place_order"]


async def test_get_is_retried(sim: FrontOfficeSimulator) -> None:
    sim.faults = FaultPlan(sequence=[Fault.server_error(), None])
    async with client_for(sim, retry=FAST) as client:
        assert len(await client.list_accounts()) == 2
    assert [r.status for r in sim.requests] == [500, 200]


async def test_retry_budget_stops_a_retry_storm(sim: FrontOfficeSimulator) -> None:
    sim.faults = FaultPlan(rates={FaultKind.UNAVAILABLE: 1.0})
    n = 10_000
    ids = [f"ORDER{i:021d}" for i in range(n)]
    async with client_for(sim, retry=FAST) as client:
        result = await client.cancel_orders(ids, concurrency=64)
        budget_left = client.retry_budget_left
    assert len(result.failed) == n
    sent = sim.stats.requests
    # 500 tokens at 5 per retry: about 100 retries in all, then every call fails fast.
    assert n <= sent <= n + 100
    assert budget_left < 5


async def test_budget_refills_on_success(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.unavailable(), None])
    async with client_for(sim, retry=FAST) as client:
        await client.cancel_order(order_id)
        assert client.retry_budget_left == 500  # the 5 tokens came back with the success


async def test_retries_are_logged_at_debug_without_secrets(
    sim: FrontOfficeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    order_id = script(sim, [Fault.unavailable(), None])
    with caplog.at_level(logging.DEBUG, logger="frontoffice_async"):
        async with client_for(sim, retry=FAST) as client:
            await client.cancel_order(order_id)
    [record] = [r for r in caplog.records if r.name == "frontoffice_async"]
    assert record.levelno == logging.DEBUG
    assert "after attempt 1 (503)" in record.getMessage()
    assert SECRET not in caplog.text


async def test_broken_on_retry_callback_does_not_abort_the_cancel(
    sim: FrontOfficeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    order_id = script(sim, [Fault.unavailable(), None])

    def broken(event: RetryEvent) -> None:
        raise ValueError("bug in user code")

    async with client_for(sim, retry=FAST, on_retry=broken) as client:
        order = await client.cancel_order(order_id)
    assert order.order_id == order_id
    assert "on_retry callback failed" in caplog.text


# --- a 401 refresh is one attempt of the same call ---------------------------------------------


def revoking_provider(sim: FrontOfficeSimulator) -> tuple[list[str], object]:
    """A provider that hands out a fresh token each time; the test revokes them."""
    issued: list[str] = []

    async def provider() -> str:
        issued.append(sim.issue_token())
        return issued[-1]

    return issued, provider


async def test_401_refresh_counts_as_an_attempt_and_does_not_restart_the_loop(
    sim: FrontOfficeSimulator,
) -> None:
    issued, provider = revoking_provider(sim)
    order_id = script(sim, [Fault.unavailable()] * 10)
    sleeps = Sleeps()

    def revoke_once(event: RetryEvent) -> None:
        if event.attempt == 1:
            sim.revoke_token(issued[0])  # so attempt 2 gets a 401

    events: list[RetryEvent] = []

    def watch(event: RetryEvent) -> None:
        events.append(event)
        revoke_once(event)

    async with client_for(sim, token=provider, retry=FAST, sleep=sleeps, on_retry=watch) as client:
        with pytest.raises(ServerError) as caught:
            await client.cancel_order(order_id)
        budget = client.retry_budget_left
    # 503, 401 (refresh), 503, 503: four attempts in all, as the policy says; never 8.
    assert [r.status for r in sim.requests_for(order_id)] == [503, 401, 503, 503]
    assert caught.value.attempts == 4
    assert len(issued) == 2
    assert len(sleeps.delays) == 2  # backoff for the 503s only; the refresh is immediate
    assert [(e.attempt, e.cause, e.delay) for e in events][1] == (2, "401", 0.0)
    assert budget == 500 - 2 * 5  # the refresh spent no budget


async def test_401_on_the_last_attempt_is_not_refreshed(sim: FrontOfficeSimulator) -> None:
    issued, provider = revoking_provider(sim)
    order_id = script(sim, [Fault.unavailable()])

    def revoke(event: RetryEvent) -> None:
        sim.revoke_token(issued[0])

    policy = attrs.evolve(FAST, max_attempts=2)
    async with client_for(sim, token=provider, retry=policy, on_retry=revoke) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.cancel_order(order_id)
    assert [r.status for r in sim.requests_for(order_id)] == [503, 401]
    assert caught.value.attempts == 2
    assert len(issued) == 1  # the provider was not asked again


async def test_a_provider_that_keeps_returning_a_revoked_token_is_asked_once(
    sim: FrontOfficeSimulator,
) -> None:
    revoked = sim.issue_token()
    sim.revoke_token(revoked)
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        return revoked

    ids = sim.add_orders(5)
    async with client_for(sim, token=provider, retry=FAST) as client:
        for order_id in ids:  # one call after the other
            with pytest.raises(AuthenticationError):
                await client.cancel_order(order_id)
    assert calls == 2  # the first fetch and one refresh; not one per call
    assert len(sim.requests) == 2 + 4  # the first call sent two, the others one each


# --- the deadline bounds every wait ------------------------------------------------------------


async def test_token_provider_is_bounded_by_the_deadline(sim: FrontOfficeSimulator) -> None:
    started_fetching = asyncio.Event()

    async def never() -> str:
        started_fetching.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    policy = attrs.evolve(FAST, deadline=0.1)
    async with client_for(sim, token=never, retry=policy, timeout=0.05) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError, match="token provider") as caught:
            await client.cancel_order(sim.add_orders(1)[0])
        elapsed = time.monotonic() - started
    assert started_fetching.is_set()
    assert 0.09 <= elapsed < 0.5
    assert caught.value.attempts == 0
    assert sim.requests == []


async def test_rate_limiter_slot_after_the_deadline_is_a_timeout_at_once(
    sim: FrontOfficeSimulator,
) -> None:
    ids = sim.add_orders(6)
    policy = attrs.evolve(FAST, deadline=1.5)
    clock = FakeClock()
    async with client_for(
        sim, retry=policy, rate_limit=1.0, clock=clock, sleep=clock.sleep
    ) as client:
        results = await asyncio.gather(
            *(client.cancel_order(i) for i in ids), return_exceptions=True
        )
    # One slot a second: a call whose slot would come after its 1.5 s deadline gives up at
    # once, without sending, instead of waiting to fail.
    late = [r for r in results if isinstance(r, APITimeoutError)]
    assert len(late) >= 3
    assert all(r.attempts == 0 and "rate limiter" in str(r) for r in late)
    assert len(sim.requests) == len(ids) - len(late)  # nothing sent for the late ones
    assert all(not isinstance(r, BaseException) for r in results if r not in late)


async def test_rate_limit_paces_requests(sim: FrontOfficeSimulator) -> None:
    ids = sim.add_orders(5)
    clock = FakeClock()
    async with client_for(sim, rate_limit=10, sleep=clock.sleep, clock=clock) as client:
        await asyncio.gather(*(client.cancel_order(i) for i in ids))
    assert clock.now - 1000.0 == pytest.approx(0.4)  # 5 requests at 10/s: 0.0 .. 0.4
    assert len(sim.requests) == 5


# --- bodies and borrowed sessions --------------------------------------------------------------


async def test_a_body_over_the_cap_is_refused_early(sim: FrontOfficeSimulator) -> None:
    big = b'{"order": "' + b"x" * 50_000 + b'"}'
    order_id = script(sim, [Fault.response(200, body=big), Fault.response(500, body=big)])
    async with client_for(sim, retry=RetryPolicy.none(), max_body_size=10_000) as client:
        with pytest.raises(ResponseValidationError, match="larger than the 10000 bytes"):
            await client.cancel_order(order_id)
        with pytest.raises(ServerError) as caught:
            await client.cancel_order(order_id)
    assert len(caught.value.body) <= 4096


@pytest.mark.parametrize("raise_for_status", [True, False])
async def test_borrowed_session_with_raise_for_status_gives_typed_errors(
    sim: FrontOfficeSimulator, raise_for_status: bool
) -> None:
    [done] = sim.add_orders(1, status="Completed")
    async with (
        aiohttp.ClientSession(raise_for_status=raise_for_status) as session,
        client_for(sim, session=session) as client,
    ):
        with pytest.raises(OrderNotFoundError):
            await client.cancel_order("01K2ZZZZZZZZZZZZZZZZZZZZZZ")
        result = await client.cancel_orders([done, "01K2ZZZZZZZZZZZZZZZZZZZZZZ"])
    assert result.not_active == [done]
    assert result.not_found == ["01K2ZZZZZZZZZZZZZZZZZZZZZZ"]
    assert result.failed == []


async def test_a_closed_borrowed_session_is_one_clear_error(sim: FrontOfficeSimulator) -> None:
    ids = sim.add_orders(3)
    session = aiohttp.ClientSession()
    await session.close()
    async with client_for(sim, session=session) as client:
        with pytest.raises(RuntimeError, match="session= is closed"):
            await client.cancel_order(ids[0])
        with pytest.raises(RuntimeError, match="closed"):
            await client.cancel_orders(ids)
    assert sim.requests == []


async def test_an_attempt_that_never_got_a_connection_is_not_counted(
    sim: FrontOfficeSimulator,
) -> None:
    # One connection in the pool, held by a slow answer: the other call's first attempt times
    # out waiting for it, so nothing was sent. Its later 400 is not "after a retry".
    [slow] = sim.add_orders(1)
    [done] = sim.add_orders(1, status="Completed")
    sim.faults = FaultPlan(scripts={slow: [Fault.slow(0.4)]})
    policy = attrs.evolve(FAST, max_attempts=4)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session,
        client_for(sim, session=session, retry=policy, timeout=0.15) as client,
    ):
        patient = client.with_options(timeout=2.0)
        holder = asyncio.create_task(patient.cancel_order(slow))
        await asyncio.sleep(0.05)
        with pytest.raises(OrderNotActiveError) as caught:
            await client.cancel_order(done)
        await holder
    assert caught.value.attempts == len(sim.requests_for(done)) == 1
    assert caught.value.after_retry is False


# --- no frame's locals hold the token -----------------------------------------------------------

#: Long enough to be masked anywhere; searched for whole in every local's repr.
FRAME_TOKEN = "tok-FRAME-LOCALS-SENTINEL-7c1d9a2b3e4f5a6b"


async def _refresh_then_provider_fails(sim: FrontOfficeSimulator) -> BaseException:
    answers = [FRAME_TOKEN + "-revoked"]  # the simulator refuses it (401); then a failure

    async def provider() -> str:
        if answers:
            return answers.pop()
        raise ConnectionError("vault down")

    [order_id] = sim.add_orders(1)
    async with client_for(sim.url, token=provider) as client:
        with pytest.raises(TokenProviderError) as caught:
            await client.cancel_order(order_id)
    return caught.value


async def _reset_on_the_last_attempt(sim: FrontOfficeSimulator) -> BaseException:
    order_id = script(sim, [Fault.reset()])
    async with client_for(sim.url, token=FRAME_TOKEN, retry=RetryPolicy.none()) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.cancel_order(order_id)
    return caught.value


async def _rate_limiter_slot_after_the_deadline(sim: FrontOfficeSimulator) -> BaseException:
    clock = FakeClock()
    ids = sim.add_orders(2)
    view = RetryPolicy(deadline=0.5)
    async with client_for(sim.url, token=FRAME_TOKEN, rate_limit=1, clock=clock) as client:
        await client.cancel_order(ids[0])  # the first slot is now, the next in 1 s
        with pytest.raises(APITimeoutError) as caught:
            await client.with_options(retry=view).cancel_order(ids[1])
    return caught.value


PROVOKE = {
    "401-refresh-then-provider-error": _refresh_then_provider_fails,
    "connection-reset": _reset_on_the_last_attempt,
    "rate-limiter-deadline": _rate_limiter_slot_after_the_deadline,
}


@pytest.mark.parametrize("provoke", list(PROVOKE.values()), ids=list(PROVOKE))
async def test_no_frame_local_holds_the_token(
    frontoffice_simulator_factory: SimulatorFactory,
    provoke: Callable[[FrontOfficeSimulator], Awaitable[BaseException]],
) -> None:
    sim = await frontoffice_simulator_factory(token=FRAME_TOKEN)
    error = await provoke(sim)
    leaks = [where for where, text in frame_locals(error) if "FRAME-LOCALS-SENTINEL" in text]
    assert leaks == []
    captured = traceback.TracebackException.from_exception(error, capture_locals=True)
    assert "FRAME-LOCALS-SENTINEL" not in "".join(captured.format())


# --- flatten's request slot ---------------------------------------------------------------------


async def test_a_request_slot_is_waited_for_outside_the_attempts_timeout(
    sim: FrontOfficeSimulator,
) -> None:
    # Waiting for a slot (flatten's gate over its accounts) is not the platform being slow: it
    # must not time the attempt out, nor cost the retry budget.
    [order_id] = sim.add_orders(1)
    slot = asyncio.Semaphore(1)
    await slot.acquire()  # another account's request holds it
    events: list[RetryEvent] = []
    async with client_for(sim, retry=FAST, timeout=0.02, on_retry=events.append) as client:
        cancel = client._calls.canceller(Order, None, slot=slot)
        task = asyncio.ensure_future(cancel(order_id, None))
        await asyncio.sleep(0.1)  # five attempt timeouts long
        assert sim.requests == []  # nothing left while the slot was held
        slot.release()
        order, attempts = await task
    assert order.order_id == order_id and attempts == 1
    assert events == []  # no attempt timed out, no retry was paid for
    assert slot._value == 1  # given back once the answer was read


async def test_a_call_halted_while_it_waits_for_a_slot_sends_nothing(
    sim: FrontOfficeSimulator,
) -> None:
    # A 403 elsewhere in the bulk call stops it: the requests queued for a slot must not
    # leave once they get one.
    [order_id] = sim.add_orders(1)
    slot, halt = asyncio.Semaphore(1), Halt()
    await slot.acquire()
    async with client_for(sim) as client:
        cancel = client._calls.canceller(Order, None, slot=slot)
        task = asyncio.ensure_future(cancel(order_id, halt))
        await asyncio.sleep(0)
        halt.error = PermissionDeniedError(
            "forbidden", status=403, method="DELETE", url="http://x", attempts=1
        )
        slot.release()
        with pytest.raises(Halted):
            await task
    assert sim.requests == []
    assert slot._value == 1
