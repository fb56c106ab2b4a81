"""The retry middleware on a real loopback server: every fault kind, counted server-side."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from email.utils import formatdate

import aiohttp
import attrs
import pytest

from frontoffice_async import (
    APIConnectionError,
    APITimeoutError,
    FrontOfficeClient,
    OrderNotFoundError,
    OrderStatus,
    RateLimitError,
    ResponseValidationError,
    RetryEvent,
    RetryPolicy,
    ServerError,
)
from frontoffice_async.retry import RetryMiddleware
from frontoffice_async.testing import Fault, FaultKind, FaultPlan, FrontOfficeSimulator

SECRET = "tok-SENTINEL-retry-5b2"
FAST = RetryPolicy(base_delay=0.001, max_delay=0.01)


class Sleeps:
    """An injected sleep: records each delay and returns at once (no real waiting)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def sim() -> AsyncIterator[FrontOfficeSimulator]:
    async with FrontOfficeSimulator(token=SECRET) as simulator:
        yield simulator


def make_client(
    sim: FrontOfficeSimulator,
    *,
    retry: RetryPolicy = FAST,
    sleep: Sleeps | None = None,
    events: list[RetryEvent] | None = None,
    timeout: float | None = 5.0,
    session: aiohttp.ClientSession | None = None,
) -> FrontOfficeClient:
    return FrontOfficeClient(
        sim.url,
        token=sim.token,
        account_id=sim.account_ids[0],
        retry=retry,
        timeout=timeout,
        sleep=sleep or Sleeps(),
        on_retry=None if events is None else events.append,
        session=session,
    )


def script(sim: FrontOfficeSimulator, faults: Sequence[Fault | None]) -> str:
    [order_id] = sim.add_orders(1)
    sim.faults = FaultPlan(scripts={order_id: list(faults)}, slow_delay=1.0)
    return order_id


async def test_scripted_503_then_429_then_success(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.unavailable(), Fault.rate_limited(retry_after=0.05), None])
    sleeps, events = Sleeps(), list[RetryEvent]()
    async with make_client(sim, sleep=sleeps, events=events) as client:
        order = await client.cancel_order(order_id)
    assert order.status is OrderStatus.CANCELLED
    assert [r.status for r in sim.requests_for(order_id)] == [503, 429, 200]
    assert [e.cause for e in events] == ["503", "429"]
    assert [e.attempt for e in events] == [1, 2]
    assert sleeps.delays[1] == 0.05  # Retry-After honoured exactly
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
    async with make_client(sim, retry=policy) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.cancel_order(order_id)
    assert len(sim.requests_for(order_id)) == sent
    assert caught.value.attempts == sent
    assert "server closed the connection" in str(caught.value)
    assert not isinstance(caught.value, aiohttp.ClientError)


async def test_reset_then_success(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.reset(), None])
    async with make_client(sim) as client:
        order = await client.cancel_order(order_id)
    assert order.order_id == order_id
    assert [r.status for r in sim.requests_for(order_id)] == [None, 200]


async def test_bad_gateway_html_until_attempts_run_out(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.bad_gateway()] * 10)
    async with make_client(sim) as client:
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
    async with make_client(sim) as client:
        order = await client.cancel_order(order_id)
    assert order.status is OrderStatus.CANCELLED
    assert len(sim.requests_for(order_id)) == 2


async def test_slow_attempt_times_out_then_fast_one_succeeds(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.slow(0.5), None])
    events: list[RetryEvent] = []
    async with make_client(sim, timeout=0.05, events=events) as client:
        started = time.monotonic()
        order = await client.cancel_order(order_id)
        elapsed = time.monotonic() - started
    assert order.order_id == order_id
    assert [e.cause for e in events] == ["timeout"]
    assert elapsed < 0.4  # the slow answer was not waited for


async def test_deadline_bounds_the_whole_call(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.slow(1.0)] * 10)
    policy = attrs.evolve(FAST, deadline=0.25, max_attempts=10)
    async with make_client(sim, retry=policy, timeout=0.1) as client:
        started = time.monotonic()
        with pytest.raises(APITimeoutError) as caught:
            await client.cancel_order(order_id)
        elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 0.5
    assert 2 <= caught.value.attempts <= 3
    assert isinstance(caught.value, TimeoutError)


async def test_deadline_message(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.slow(1.0)])
    policy = attrs.evolve(FAST, deadline=0.05)
    async with make_client(sim, retry=policy, timeout=None) as client:
        with pytest.raises(APITimeoutError, match=r"deadline of 0\.05s exceeded"):
            await client.cancel_order(order_id)


async def test_retry_after_longer_than_allowed_raises_at_once(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.rate_limited(retry_after=120)])
    sleeps = Sleeps()
    async with make_client(sim, sleep=sleeps) as client:
        with pytest.raises(RateLimitError) as caught:
            await client.cancel_order(order_id)
    assert caught.value.retry_after == 120
    assert caught.value.attempts == 1
    assert sleeps.delays == []


async def test_retry_after_as_http_date(sim: FrontOfficeSimulator) -> None:
    when = formatdate(time.time() + 3, usegmt=True)
    order_id = script(sim, [Fault.rate_limited(retry_after=when), None])
    sleeps = Sleeps()
    async with make_client(sim, sleep=sleeps) as client:
        await client.cancel_order(order_id)
    [delay] = sleeps.delays
    assert 1.5 < delay <= 3.0


async def test_garbage_retry_after_falls_back_to_backoff(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.rate_limited(retry_after="soon-ish"), None])
    sleeps = Sleeps()
    async with make_client(sim, sleep=sleeps) as client:
        await client.cancel_order(order_id)
    [delay] = sleeps.delays
    assert 0 <= delay <= 0.001


async def test_malformed_body_is_not_resent(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.malformed()])
    async with make_client(sim) as client:
        with pytest.raises(ResponseValidationError, match="not JSON") as caught:
            await client.cancel_order(order_id)
    assert len(sim.requests_for(order_id)) == 1
    assert caught.value.attempts == 1
    assert sim.orders[order_id].status == "Cancelled"  # the server did cancel it


async def test_lost_response_then_404_means_probably_cancelled(sim: FrontOfficeSimulator) -> None:
    # The platform's answer for an order it no longer knows: the simulator keeps final
    # orders (and says 400), so the second answer is scripted as a real broker's 404.
    gone = Fault.response(404, body=b'{"title": "Not Found", "status": 404}')
    order_id = script(sim, [Fault.lost_response(), gone])
    async with make_client(sim) as client:
        with pytest.raises(OrderNotFoundError) as caught:
            await client.cancel_order(order_id)
    assert caught.value.after_retry is True
    assert caught.value.attempts == 2
    assert sim.orders[order_id].status == "Cancelled"


async def test_lost_response_then_400_not_active_is_also_probably_cancelled(
    sim: FrontOfficeSimulator,
) -> None:
    order_id = script(sim, [Fault.lost_response(), None])  # the simulator then says 400
    async with make_client(sim) as client:
        with pytest.raises(OrderNotFoundError) as caught:
            await client.cancel_order(order_id)
        result = await client.cancel_orders([order_id])
    assert caught.value.after_retry is True
    assert caught.value.status == 400
    assert "cannot be cancelled in status Cancelled" in caught.value.message
    assert result[0].error is not None  # without an earlier ambiguous attempt: a refusal
    assert not result[0].not_found


async def test_users_own_session_still_gets_retries(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.unavailable(), Fault.reset(), None])
    async with aiohttp.ClientSession() as session:
        async with make_client(sim, session=session) as client:
            order = await client.cancel_order(order_id)
        assert not session.closed
    assert order.order_id == order_id
    assert len(sim.requests_for(order_id)) == 3


async def test_post_is_never_resent(sim: FrontOfficeSimulator) -> None:
    sim.faults = FaultPlan(sequence=[Fault.unavailable(), None])
    middleware = RetryMiddleware(FAST, sleep=Sleeps())
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
    headers = {"Authorization": f"Bearer {sim.token}", "accountId": sim.account_ids[0]}
    async with (
        aiohttp.ClientSession(middlewares=(middleware,)) as session,
        session.post(sim.url + "/frontoffice/api/v3/orders", json=body, headers=headers) as resp,
    ):
        assert resp.status == 503
    assert [r.endpoint for r in sim.requests] == ["place_order"]


async def test_get_is_retried(sim: FrontOfficeSimulator) -> None:
    sim.faults = FaultPlan(sequence=[Fault.server_error(), None])
    async with make_client(sim) as client:
        assert len(await client.list_accounts()) == 2
    assert [r.status for r in sim.requests] == [500, 200]


async def test_retry_budget_stops_a_retry_storm(sim: FrontOfficeSimulator) -> None:
    sim.faults = FaultPlan(rates={FaultKind.UNAVAILABLE: 1.0})
    n = 10_000
    ids = [f"ORDER{i:021d}" for i in range(n)]
    async with make_client(sim) as client:
        result = await client.cancel_orders(ids, concurrency=64)
        budget_left = client.retry_budget_left
    assert len(result.failed) == n
    sent = sim.stats.requests
    # 500 tokens at 5 per retry: about 100 retries in all, then every call fails fast.
    assert n <= sent <= n + 100
    assert sent < 2 * n
    assert budget_left < 5


async def test_budget_refills_on_success(sim: FrontOfficeSimulator) -> None:
    order_id = script(sim, [Fault.unavailable(), None])
    async with make_client(sim) as client:
        await client.cancel_order(order_id)
        assert client.retry_budget_left == 500  # the 5 tokens came back with the success


async def test_retries_are_logged_at_debug_without_secrets(
    sim: FrontOfficeSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    order_id = script(sim, [Fault.unavailable(), None])
    with caplog.at_level(logging.DEBUG, logger="frontoffice_async"):
        async with make_client(sim) as client:
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

    client = FrontOfficeClient(
        sim.url, token=sim.token, account_id=sim.account_ids[0], retry=FAST, on_retry=broken
    )
    async with client:
        order = await client.cancel_order(order_id)
    assert order.order_id == order_id
    assert "on_retry callback failed" in caplog.text


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_rate_limit_paces_requests(sim: FrontOfficeSimulator) -> None:
    ids = sim.add_orders(5)
    clock = FakeClock()
    async with FrontOfficeClient(
        sim.url,
        token=sim.token,
        account_id=sim.account_ids[0],
        rate_limit=10,
        sleep=clock.sleep,
        clock=clock,
    ) as client:
        await asyncio.gather(*(client.cancel_order(i) for i in ids))
    assert clock.now == pytest.approx(0.4)  # 5 requests at 10/s: slots 0.0 .. 0.4
    assert len(sim.requests) == 5
