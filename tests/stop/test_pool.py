"""Bulk cancelling: the pool over a fake canceller, and against the loopback simulator."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import tracemalloc
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from frontoffice_async import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BulkCancelError,
    BulkCancelResult,
    CancelOutcome,
    ClientClosedError,
    FrontOfficeClient,
    FrontOfficeError,
    InvalidOrderIdError,
    Order,
    OrderNotActiveError,
    OrderStatus,
    PermissionDeniedError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TokenProviderError,
)
from frontoffice_async._converter import structure
from frontoffice_async._http.gate import Halt
from frontoffice_async._stop import pool
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ..support import (
    FAST,
    SECOND_ACCOUNT_ID,
    UNKNOWN_ID,
    agen,
    cancel_requests,
    client_for,
    library_tasks,
    sample,
)


def closing(
    outcomes: AsyncIterator[CancelOutcome[Order]],
) -> contextlib.aclosing[AsyncGenerator[CancelOutcome[Order], None]]:
    """`contextlib.aclosing` for `iter_cancel_orders`."""
    assert isinstance(outcomes, AsyncGenerator)
    return contextlib.aclosing(outcomes)


def as_input(kind: str, items: list[Any]) -> Any:
    """The same ids as a list, a one-shot generator, or an async generator."""
    if kind == "list":
        return list(items)
    if kind == "generator":
        return (item for item in items)
    return agen(items)


INPUT_KINDS = ["list", "generator", "async generator"]


def sample_order() -> Order:
    return structure(json.loads(sample("cancel_order_200.json"))["order"], Order)


async def instant(order_id: str, halt: Halt | None) -> tuple[Order, int]:
    """A canceller that answers at once: measures the pool, not HTTP."""
    return SAMPLE, 1


SAMPLE = sample_order()


# --- ordering and exactly-once -------------------------------------------------------------------


@pytest.mark.parametrize("kind", INPUT_KINDS)
async def test_duplicates_give_one_outcome_per_id_in_first_seen_order(
    frontoffice_simulator: FrontOfficeSimulator, kind: str
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(30)
    rng = random.Random(5)
    with_duplicates = ids + rng.choices(ids, k=40)
    rng.shuffle(with_duplicates)
    first_seen = list(dict.fromkeys(with_duplicates))
    assert len(first_seen) == 30 and len(with_duplicates) == 70

    async with client_for(sim) as client:
        result = await client.cancel_orders(as_input(kind, with_duplicates), concurrency=4)

    assert [o.order_id for o in result] == first_seen
    assert all(o.ok and o.attempts == 1 for o in result)
    assert [o.order.order_id for o in result if o.order is not None] == first_seen
    assert cancel_requests(sim) == Counter(first_seen)  # each id requested exactly once
    assert sim.open_order_ids() == []


# --- BulkCancelResult --------------------------------------------------------------------------


async def test_result_sorts_outcomes_into_the_four_categories(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ok_a, ok_b, cancelled_before, flaky = sim.add_orders(4)
    (completed,) = sim.add_orders(1, status="Completed")
    sim.faults = FaultPlan(scripts={flaky: [Fault.server_error()]})

    async with client_for(sim, retry=RetryPolicy.none()) as client:
        await client.cancel_order(cancelled_before)
        ids = [ok_a, UNKNOWN_ID, cancelled_before, completed, flaky, "", ok_b]
        result = await client.cancel_orders(ids)

    assert [o.order_id for o in result] == ids
    assert [order.order_id for order in result.cancelled] == [ok_a, ok_b]
    assert all(order.status == OrderStatus.CANCELLED for order in result.cancelled)
    assert result.not_found == [UNKNOWN_ID]
    # An order that is already final (cancelled before, or filled) answers 400: not active,
    # which is not a failure: it is not live.
    assert result.not_active == [cancelled_before, completed]
    assert all(isinstance(result[i].error, OrderNotActiveError) for i in (2, 3))
    failed = {o.order_id: o.error for o in result.failed}
    assert list(failed) == [flaky, ""]
    assert isinstance(failed[flaky], ServerError)
    assert isinstance(failed[""], InvalidOrderIdError)
    assert [o.category for o in result] == [
        "cancelled",
        "not_found",
        "not_active",
        "not_active",
        "failed",
        "failed",
        "cancelled",
    ]
    assert [o.attempts for o in result.failed] == [1, 0]
    assert result.attempts == 6  # every id but the invalid one, once
    assert repr(result) == (
        "<BulkCancelResult 7 ids: 2 cancelled, 1 not found, 2 not active, 2 failed>"
    )

    with pytest.raises(BulkCancelError) as excinfo:
        result.raise_for_failures()
    error = excinfo.value
    assert isinstance(error, ExceptionGroup) and isinstance(error, FrontOfficeError)
    assert list(error.exceptions) == list(failed.values())
    assert {o.order_id: o.error for o in error.outcomes} == failed
    assert str(error).startswith("2 of 7 cancels failed")


async def test_raise_for_failures_splits_with_except_star(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ok, flaky = sim.add_orders(2)
    (completed,) = sim.add_orders(1, status="Completed")
    sim.faults = FaultPlan(scripts={flaky: [Fault.server_error(503)], ok: [Fault.reset()]})
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        result = await client.cancel_orders([ok, flaky, completed, ".."])

    caught: dict[str, BaseExceptionGroup[BaseException]] = {}
    try:
        result.raise_for_failures()
    except* ServerError as server_errors:
        caught["server"] = server_errors
    except* APIConnectionError as connection_errors:
        caught["connection"] = connection_errors
    except* ValueError as invalid_ids:  # InvalidOrderIdError is also a ValueError
        caught["invalid"] = invalid_ids

    assert set(caught) == {"server", "connection", "invalid"}
    expected_ids = {"server": [flaky], "connection": [ok], "invalid": [".."]}
    for name, group in caught.items():
        # `derive` keeps the type and the outcomes that belong to the split-off errors.
        assert isinstance(group, BulkCancelError), name
        assert [o.order_id for o in group.outcomes] == expected_ids[name]
        assert [o.error for o in group.outcomes] == list(group.exceptions)


async def test_raise_for_failures_is_silent_without_failures(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(3)
    async with client_for(sim) as client:
        result = await client.cancel_orders([*ids, UNKNOWN_ID])
    assert len(result.cancelled) == 3 and result.not_found == [UNKNOWN_ID]
    assert result.failed == []
    result.raise_for_failures()  # a 404 is not a failure: nothing raised
    BulkCancelResult[Order]([]).raise_for_failures()


# --- invalid ids ------------------------------------------------------------------------------

INVALID_IDS: list[Any] = ["", " ", "..", "a\nb", "x" * 129, 5]


async def test_invalid_ids_fail_without_a_request(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    first, last = sim.add_orders(2)
    ids: list[Any] = [first, *INVALID_IDS, last]
    async with client_for(sim) as client:
        result = await client.cancel_orders(ids)

    assert [o.order_id for o in result] == ids
    assert [o.order_id for o in result.failed] == INVALID_IDS
    for outcome in result.failed:
        assert isinstance(outcome.error, InvalidOrderIdError), outcome
        assert outcome.attempts == 0 and outcome.order is None
    not_a_str: object = result.failed[-1].error
    assert isinstance(not_a_str, TypeError)  # 5 is not a str
    assert [order.order_id for order in result.cancelled] == [first, last]
    assert cancel_requests(sim) == Counter([first, last])
    assert len(sim.requests) == 2


# --- many ids, transient faults ------------------------------------------------------------------


async def test_ten_thousand_ids_with_transient_faults(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    # 20% of requests get a 429/500/502/503/reset, none of which changes the book; the
    # default policy retries up to 4 attempts. Measured on 2 cores: about 5 s.
    # Seed 11 gave 9981 cancelled, 0 not found, 19 failed, 12478 requests.
    sim = await frontoffice_simulator_factory(faults=FaultPlan.uniform(0.2, seed=11))
    ids = sim.add_orders(10_000)
    started = time.perf_counter()
    async with client_for(sim, concurrency=64) as client:
        result = await client.cancel_orders(ids)
    elapsed = time.perf_counter() - started

    assert [o.order_id for o in result] == ids  # exactly one outcome per id, in order
    counts = {
        "cancelled": len(result.cancelled),
        "not_found": len(result.not_found),
        "failed": len(result.failed),
        "requests": len(sim.requests),
    }
    print(f"10k run in {elapsed:.1f}s: {counts}")
    for outcome in result:
        if outcome.ok:
            assert sim.orders[outcome.order_id].status == "Cancelled"
    # Transient faults have no side effect: an id that failed is still open, and vice versa.
    failed = {o.order_id for o in result.failed}
    assert set(sim.open_order_ids()) == failed
    assert result.not_found == []
    assert counts["cancelled"] + counts["failed"] == 10_000
    assert 0 < counts["failed"] < 100  # 0.2**4 of 10,000 is 16 expected
    for outcome in result.failed:
        assert isinstance(outcome.error, ServerError | RateLimitError | APIConnectionError)
        assert outcome.attempts == 4
    # The attempts each outcome reports are the requests the server saw for that id.
    assert cancel_requests(sim) == Counter({o.order_id: o.attempts for o in result})
    assert result.attempts == len(sim.requests) > 10_000


# --- memory -------------------------------------------------------------------------------------

N_MEMORY = 100_000


def memory_ids() -> Iterator[str]:
    for i in range(N_MEMORY):
        yield f"01K2PF9XS2{i * 7919:016d}"  # 26 characters, uppercase: like a ULID


def traced_peak(build: Callable[[], object]) -> int:
    """The tracemalloc peak while `build()` runs and its result is alive."""
    tracemalloc.start()
    try:
        kept = build()
        peak = tracemalloc.get_traced_memory()[1]
        del kept
    finally:
        tracemalloc.stop()
    return peak


async def test_iter_cancel_orders_memory_is_bounded_with_dedupe() -> None:
    ids = list(memory_ids())
    # What holding every id as text would cost: the strings and a set of them.
    as_strings = traced_peak(lambda: {i.encode().decode() for i in ids})
    count = 0
    tracemalloc.start()
    try:
        async with closing(pool.iter_cancel_orders(instant, iter(ids), concurrency=32)) as outs:
            async for outcome in outs:
                count += outcome.ok
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"{N_MEMORY} ids: peak {peak / 2**20:.2f} MiB, set of str {as_strings / 2**20:.2f} MiB")
    assert count == N_MEMORY  # every outcome ok, each id once
    # The seen-set keeps a ULID as an int: well under the strings, under 10 MiB in all.
    assert peak < 10 * 2**20
    assert peak < 0.85 * as_strings
    assert current < 1_000_000  # nothing kept once the iteration is over


async def test_the_seen_set_is_exact() -> None:
    ulid = "01K2PF9XS29WN4JZRHMCTTQYJB"
    # Case matters (the server's ids are case-sensitive) and so does every character: the
    # compact form must never merge two different ids, nor split two equal ones.
    ids: list[Any] = [ulid, ulid.lower(), ulid[:-1] + "C", "0" * 26, "0" * 25 + "1", 0, ulid]
    result = await pool.cancel_orders(instant, ids, concurrency=2)
    assert [o.order_id for o in result] == ids[:-1]


async def test_without_dedupe_memory_is_o_concurrency_for_any_number_of_ids() -> None:
    peaks = []
    for n in (10_000, N_MEMORY):
        count = 0
        tracemalloc.start()
        try:
            ids = (f"01K2PF9XS2{i:016d}" for i in range(n))
            stream = pool.iter_cancel_orders(instant, ids, concurrency=32, dedupe=False)
            async with closing(stream) as outcomes:
                async for outcome in outcomes:
                    count += outcome.ok
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert count == n
    # Ten times the ids, the same peak (give or take allocator noise): nothing per id.
    assert peaks[1] < peaks[0] * 1.5 + 50_000
    assert peaks[1] < 1_000_000


async def test_failed_outcomes_are_light(frontoffice_simulator: FrontOfficeSimulator) -> None:
    # A kept error must not hold its traceback (frames, the response, the connection): a
    # failed outcome costs about what a cancelled one does. (The simulator runs in this
    # process, so both figures include its own request log.)
    sim, n = frontoffice_simulator, 400
    cancelled = sim.add_orders(n + 10)
    unknown = [f"01K2ZZZZZZZZZZZZZZZZZ{i:05d}" for i in range(n + 10)]
    per_outcome: dict[str, float] = {}
    async with client_for(sim) as client:
        await client.cancel_orders(cancelled[:10])  # warm up: pool, caches
        await client.cancel_orders(unknown[:10])
        for name, ids in (("cancelled", cancelled[10:]), ("not_found", unknown[10:])):
            tracemalloc.start()
            try:
                result = await client.cancel_orders(ids)
                per_outcome[name] = tracemalloc.get_traced_memory()[0] / n
            finally:
                tracemalloc.stop()
            assert len(getattr(result, name)) == n
    assert all(o.error is not None and o.error.__traceback__ is None for o in result)
    print(f"bytes per outcome: {per_outcome}")
    assert per_outcome["not_found"] < 1.3 * per_outcome["cancelled"]
    assert per_outcome["not_found"] < 5 * 1024  # was ~7.4 KiB with the traceback


async def test_without_dedupe_a_repeated_id_is_sent_again(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    [order_id] = frontoffice_simulator.add_orders(1)
    async with client_for(frontoffice_simulator) as client:
        result = await client.cancel_orders([order_id, order_id], dedupe=False, concurrency=1)
    assert len(result) == 2
    assert len(frontoffice_simulator.requests_for(order_id)) == 2
    assert result[0].ok
    assert result[1].not_active  # already cancelled by the first


# --- caller cancellation -------------------------------------------------------------------------


async def test_cancelling_the_caller_stops_workers_and_keeps_received_outcomes(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.02)
    ids = sim.add_orders(200)
    collected: list[CancelOutcome[Order]] = []
    ten_arrived = asyncio.Event()

    def collect(outcome: CancelOutcome[Order]) -> None:
        collected.append(outcome)
        if len(collected) == 10:
            ten_arrived.set()

    concurrency = 8
    async with client_for(sim) as client:
        task = asyncio.create_task(
            client.cancel_orders(ids, on_outcome=collect, concurrency=concurrency)
        )
        async with asyncio.timeout(5):
            await ten_arrived.wait()
        assert len(library_tasks()) == 1 + concurrency  # the call and its workers, running
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert library_tasks() == []
        requests_at_cancel = len(sim.requests)
        await asyncio.sleep(0.06)  # longer than the latency: requests in flight finish
        assert len(sim.requests) == requests_at_cancel  # no worker sends anything more

    collected_ids = [o.order_id for o in collected]
    assert len(set(collected_ids)) == len(collected_ids) >= 10
    assert all(o.ok for o in collected)
    requested = cancel_requests(sim)
    assert set(requested.values()) == {1}
    cancelled_in_book = {i for i in ids if sim.orders[i].status == "Cancelled"}
    # Every outcome received reached on_outcome; the server may also have cancelled the
    # orders whose responses were in flight (at most one per worker) when the task stopped.
    assert set(collected_ids) <= cancelled_in_book <= set(requested)
    assert len(cancelled_in_book) - len(collected) <= concurrency
    assert len(requested) < len(ids)


# --- iter_cancel_orders ------------------------------------------------------------------------


async def test_iter_cancel_orders_yields_in_completion_order(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    iter_ids = sim.add_orders(4)
    bulk_ids = sim.add_orders(4)
    slow = Fault.slow(0.05)
    sim.faults = FaultPlan(scripts={iter_ids[0]: [slow], bulk_ids[0]: [slow]})
    async with client_for(sim) as client:
        yielded = [o async for o in client.iter_cancel_orders(iter_ids, concurrency=4)]
        result = await client.cancel_orders(bulk_ids, concurrency=4)

    assert sorted(o.order_id for o in yielded) == sorted(iter_ids)
    assert all(o.ok for o in yielded)
    assert yielded[-1].order_id == iter_ids[0]  # the slow one comes last ...
    assert [o.order_id for o in result] == bulk_ids  # ... while cancel_orders keeps input order


async def test_breaking_out_of_iter_cancel_orders_stops_the_workers(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.01)
    ids = sim.add_orders(200)
    concurrency = 4
    seen: list[CancelOutcome[Order]] = []
    async with client_for(sim) as client:
        stream = client.iter_cancel_orders(ids, concurrency=concurrency)
        async with asyncio.timeout(5), closing(stream) as outcomes:
            async for outcome in outcomes:
                seen.append(outcome)
                if len(seen) == 5:
                    break
        assert library_tasks() == []
        requests_at_break = len(sim.requests)
        await asyncio.sleep(0.05)
        assert len(sim.requests) == requests_at_break

    assert len(seen) == 5 and all(o.ok for o in seen)
    # Beyond what was consumed: at most `concurrency` outcomes queued, plus one per worker.
    assert requests_at_break <= 5 + 2 * concurrency
    assert set(cancel_requests(sim).values()) == {1}


async def test_leaving_iter_cancel_orders_with_a_full_queue_does_not_hang(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(50)
    concurrency = 2
    async with client_for(sim) as client:
        stream = client.iter_cancel_orders(ids, concurrency=concurrency)
        async with closing(stream) as outcomes:
            async for _ in outcomes:
                # A slow consumer: meanwhile the workers fill the queue (maxsize=concurrency)
                # and then wait to put one more outcome each.
                await asyncio.sleep(0.05)
                break
            async with asyncio.timeout(1):  # today: TimeoutError, aclose() hangs
                await outcomes.aclose()
        assert library_tasks() == []
        requests_at_close = len(sim.requests)
        await asyncio.sleep(0.02)
        assert len(sim.requests) == requests_at_close
    assert requests_at_close <= 1 + 2 * concurrency


# --- a failing input iterator --------------------------------------------------------------------


class SourceBrokenError(Exception):
    """Raised by the test's input iterator."""


def broken_source(ids: list[str]) -> Iterator[str]:
    yield from ids
    raise SourceBrokenError("the id file is corrupt")


async def broken_async_source(ids: list[str]) -> AsyncIterator[str]:
    for order_id in ids:
        await asyncio.sleep(0)
        yield order_id
    raise SourceBrokenError("the id feed died")


async def run_to_completion(client: FrontOfficeClient, api: str, order_ids: Any) -> None:
    if api == "cancel_orders":
        await client.cancel_orders(order_ids, concurrency=3)
        return
    async with closing(client.iter_cancel_orders(order_ids, concurrency=3)) as outcomes:
        async for _ in outcomes:
            pass


@pytest.mark.parametrize("source", ["generator", "async generator"])
@pytest.mark.parametrize("api", ["cancel_orders", "iter_cancel_orders"])
async def test_input_iterator_error_propagates_unwrapped(
    frontoffice_simulator: FrontOfficeSimulator, source: str, api: str
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(5)
    order_ids = broken_source(ids) if source == "generator" else broken_async_source(ids)
    async with client_for(sim) as client:
        with pytest.raises(SourceBrokenError) as excinfo:
            await run_to_completion(client, api, order_ids)
        assert type(excinfo.value) is SourceBrokenError  # not a one-item ExceptionGroup
        assert library_tasks() == []


# --- on_outcome -------------------------------------------------------------------------------


async def test_on_outcome_sees_each_outcome_exactly_once(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(20)
    sim.faults = FaultPlan(scripts={ids[3]: [Fault.unavailable()], ids[7]: [Fault.reset()]})
    collected: list[CancelOutcome[Order]] = []
    order_ids: list[Any] = [*ids, ids[0], ids[5], UNKNOWN_ID, "", 7, UNKNOWN_ID]
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        result = await client.cancel_orders(order_ids, on_outcome=collected.append, concurrency=5)

    assert len(result) == 20 + 3  # distinct ids: 20 orders, the unknown one, "" and 7
    assert len(collected) == len(result)
    assert Counter(map(id, collected)) == Counter(map(id, result))  # the same objects, once
    assert len(result.cancelled) == 18
    assert result.not_found == [UNKNOWN_ID]
    assert [o.order_id for o in result.failed] == [ids[3], ids[7], "", 7]


# --- fail fast, aborts, close ------------------------------------------------------------------


async def test_a_revoked_token_stops_sending_after_the_first_401(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(2000)
    revoked = sim.issue_token()
    sim.revoke_token(revoked)
    async with client_for(sim, token=revoked) as client:
        result = await client.cancel_orders(ids, concurrency=32)
    assert [o.order_id for o in result] == ids  # every id still gets its outcome
    assert all(isinstance(o.error, AuthenticationError) for o in result)
    assert len(sim.requests) <= 32  # at most the requests already in flight; not 2,000
    assert sum(o.attempts for o in result) == len(sim.requests)
    assert sum(o.attempts == 0 for o in result) >= 2000 - 32


async def test_a_wrong_account_stops_sending_after_the_first_403(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(500, account_id=SECOND_ACCOUNT_ID)
    token = sim.issue_token([sim.account_ids[0]])  # does not own the second account
    async with client_for(sim, token=token) as client:
        result = await client.cancel_orders(ids, account_id=SECOND_ACCOUNT_ID, concurrency=8)
    assert all(isinstance(o.error, PermissionDeniedError) for o in result)
    assert len(sim.requests) <= 8


async def test_a_failing_token_provider_is_asked_once_and_fails_fast(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        raise OSError("vault unreachable")

    ids = frontoffice_simulator.add_orders(200)
    async with client_for(frontoffice_simulator, token=provider) as client:
        result = await client.cancel_orders(ids)
    assert calls == 1
    assert frontoffice_simulator.requests == []
    assert all(isinstance(o.error, TokenProviderError) and o.attempts == 0 for o in result)
    error = result[0].error
    assert isinstance(error, TokenProviderError)
    assert isinstance(error.__cause__, OSError)
    assert not isinstance(error, APIConnectionError)  # not a network failure of the DELETE


class SourceDiedError(Exception):
    """The caller's id feed failed."""


async def test_an_aborted_call_reports_every_id_it_took(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.02)
    ids = sim.add_orders(300)
    delivered: list[CancelOutcome[Order]] = []

    async def feed() -> AsyncIterator[str]:
        for n, order_id in enumerate(ids):
            if n == 100:
                raise SourceDiedError("feed died")
            yield order_id

    async with client_for(sim) as client:
        with pytest.raises(SourceDiedError) as caught:
            await client.cancel_orders(feed(), on_outcome=delivered.append, concurrency=32)
        assert library_tasks() == []
    assert type(caught.value) is SourceDiedError  # the one original exception, no group
    # Requests already sent finished, and their outcomes were delivered: the server's
    # cancellations and the outcomes match one to one.
    cancelled_on_server = {i for i in ids if sim.orders[i].status == "Cancelled"}
    assert {o.order_id for o in delivered if o.ok} == cancelled_on_server
    assert len(delivered) == len(set(cancel_requests(sim))) == 100


async def test_a_bug_in_the_canceller_stops_the_pool_cleanly() -> None:
    calls = 0

    async def cancel(order_id: str, halt: Halt | None) -> tuple[Order, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if order_id == "B":
            raise KeyError("bug")
        return SAMPLE, 1

    delivered: list[CancelOutcome[Order]] = []
    with pytest.raises(KeyError):
        await pool.cancel_orders(
            cancel, list("ABCDEFG"), concurrency=2, on_outcome=delivered.append
        )
    assert [o.order_id for o in delivered] == ["A", "C"][: len(delivered)]
    assert calls <= 3  # stopped taking ids


async def test_close_during_a_bulk_call_reports_what_was_sent_then_raises(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.02)
    ids = sim.add_orders(500)
    delivered: list[CancelOutcome[Order]] = []
    forty = asyncio.Event()

    def deliver(outcome: CancelOutcome[Order]) -> None:
        delivered.append(outcome)
        if len(delivered) == 40:
            forty.set()

    client = client_for(sim)
    async with client:
        call = asyncio.create_task(client.cancel_orders(ids, on_outcome=deliver, concurrency=16))
        await forty.wait()
        await client.close()
        with pytest.raises(ClientClosedError) as caught:
            await call
    assert isinstance(caught.value, RuntimeError)
    cancelled_on_server = {i for i in ids if sim.orders[i].status == "Cancelled"}
    assert {o.order_id for o in delivered if o.ok} == cancelled_on_server
    assert all(o.ok or isinstance(o.error, ClientClosedError) for o in delivered)
    assert len(delivered) < len(ids)


@pytest.mark.parametrize("kind", INPUT_KINDS)
@pytest.mark.parametrize("ids", [[], ["A"], ["A", "B", "C"]])
async def test_a_huge_concurrency_over_a_few_ids_costs_a_few_workers(
    ids: list[str], kind: str
) -> None:
    names: set[str] = set()

    async def cancel(order_id: str, halt: Halt | None) -> tuple[Order, int]:
        names.update(t.get_name() for t in library_tasks())
        await asyncio.sleep(0)
        return SAMPLE, 1

    started = time.perf_counter()
    result = await pool.cancel_orders(cancel, as_input(kind, ids), concurrency=1_000_000)
    assert [o.order_id for o in result] == ids
    workers = {n for n in names if n.startswith("frontoffice-bulk-worker")}
    assert len(workers) <= len(ids) + 1  # at most one waiting for an id that never comes
    assert time.perf_counter() - started < 1.0  # a million workers took 22 s and 1 GiB


async def test_resending_the_failures_gives_no_false_failures(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    # Every answer of the first call is lost: the orders were cancelled, but the call only
    # knows it failed. A second call over its failed ids must not report them as failures.
    sim = frontoffice_simulator
    ids = sim.add_orders(20)
    sim.faults = FaultPlan(scripts={i: [Fault.lost_response()] * 4 for i in ids})
    async with client_for(sim, retry=FAST) as client:
        first = await client.cancel_orders(ids)
        second = await client.cancel_orders(o.order_id for o in first.failed)
    assert len(first.failed) == 20
    assert second.failed == []
    assert second.not_active == ids
    second.raise_for_failures()
    assert sim.open_order_ids() == []


async def test_as_dict_is_json_ready(frontoffice_simulator: FrontOfficeSimulator) -> None:
    sim = frontoffice_simulator
    ok, flaky = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={flaky: [Fault.server_error()]})
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        result = await client.cancel_orders([ok, flaky, UNKNOWN_ID])
    document = json.loads(json.dumps(result.as_dict()))
    assert document["counts"] == {"cancelled": 1, "not_found": 1, "not_active": 0, "failed": 1}
    first, second, third = document["outcomes"]
    assert first["category"] == "cancelled"
    assert first["order"]["order_id"] == ok
    assert first["order"]["requested_amount"] == "0.1"  # decimals as strings
    assert first["order"]["created_at"].endswith("Z")
    assert first["order"]["status"] == "Cancelled"
    assert second["error"]["type"] == "ServerError"
    assert second["error"]["status"] == 500
    assert second["error"]["trace_id"].startswith("00-")
    assert third["category"] == "not_found"
    assert sim.token not in json.dumps(document)


async def test_closing_while_the_token_provider_runs_reports_every_id_taken(
    sim: FrontOfficeSimulator,
) -> None:
    started = asyncio.Event()

    async def slow_provider() -> str:
        started.set()
        await asyncio.sleep(30)
        return sim.token

    ids = sim.add_orders(5)
    delivered: list[CancelOutcome[Order]] = []
    client = client_for(sim, token=slow_provider, concurrency=2)
    bulk_call = asyncio.create_task(client.cancel_orders(ids, on_outcome=delivered.append))
    single = asyncio.create_task(client.cancel_order(ids[-1]))
    await started.wait()
    await client.close()
    with pytest.raises(ClientClosedError):
        await bulk_call
    with pytest.raises(ClientClosedError):  # not a CancelledError nobody asked for
        await single
    assert not single.cancelled()
    assert delivered and all(isinstance(o.error, ClientClosedError) for o in delivered)
    assert sim.requests == []


async def test_fail_fast_also_stops_requests_waiting_for_the_rate_limiter(
    sim: FrontOfficeSimulator,
) -> None:
    ids = sim.add_orders(20, account_id=SECOND_ACCOUNT_ID)
    token = sim.issue_token([sim.account_ids[0]])  # 403 on the second account
    # Real time: the 403 (a millisecond away) must come while the others wait for a slot.
    async with client_for(
        sim, token=token, rate_limit=100, sleep=asyncio.sleep, concurrency=8
    ) as client:
        result = await client.cancel_orders(ids, account_id=SECOND_ACCOUNT_ID)
    assert len(sim.requests) == 1  # the others were waiting for a slot when the 403 came
    assert sum(o.attempts for o in result) == 1
    assert isinstance(result.stopped_by, PermissionDeniedError)
    assert all(isinstance(o.error, PermissionDeniedError) for o in result)


async def test_a_hung_token_provider_fails_the_bulk_call_fast() -> None:
    async def hung() -> str:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    policy = RetryPolicy(deadline=0.2)
    async with FrontOfficeSimulator() as sim:
        ids = sim.add_orders(40)
        async with client_for(sim, token=hung, retry=policy, concurrency=4) as client:
            started = time.perf_counter()
            result = await client.cancel_orders(ids)
            elapsed = time.perf_counter() - started
    assert elapsed < 1.0  # one deadline, not one per id (40 ids, 4 workers: 2 s)
    assert all(isinstance(o.error, APITimeoutError) and o.attempts == 0 for o in result)
    assert result.stopped_by is not None


async def test_an_abandoned_iterator_does_not_outlive_its_client(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.005)
    ids = sim.add_orders(200)
    async with client_for(sim, concurrency=8) as client:
        outcomes = client.iter_cancel_orders(ids)
        async for _ in outcomes:
            break  # left without aclose(), and the generator is still referenced
    assert library_tasks() == []  # the client's close stopped the workers
    requests = len(sim.requests)
    await asyncio.sleep(0.05)
    assert len(sim.requests) == requests
    del outcomes


# --- a CancelledError nobody asked for, close() from another task (issue 19, items 1-2) --------


async def test_a_provider_raising_cancelled_error_is_a_provider_failure_for_every_id(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    async def provider() -> str:
        raise asyncio.CancelledError  # an HTTP client inside it, being torn down

    ids = frontoffice_simulator.add_orders(298)
    async with client_for(frontoffice_simulator, token=provider) as client:
        result = await client.cancel_orders(ids)
        with pytest.raises(TokenProviderError) as single:
            await client.cancel_order(ids[0])
        with pytest.raises(TokenProviderError):
            await client.open_orders()
    assert [o.order_id for o in result] == ids  # not `<BulkCancelResult 0 ids>`
    assert all(isinstance(o.error, TokenProviderError) for o in result)
    assert isinstance(single.value.__cause__, asyncio.CancelledError)
    with pytest.raises(BulkCancelError):
        result.raise_for_failures()
    assert frontoffice_simulator.open_order_ids() == ids  # and nothing claims otherwise


async def test_a_provider_that_raises_cancelled_error_once_fails_the_call_loudly(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncio.CancelledError
        return sim.token

    ids = sim.add_orders(400)
    async with client_for(sim, token=provider) as client:
        result = await client.cancel_orders(ids)
    assert len(result) == 400  # was 105 outcomes for 400 ids, and no error
    still_open = set(sim.open_order_ids())
    assert still_open <= {o.order_id for o in result.failed}
    if still_open:
        with pytest.raises(BulkCancelError):
            result.raise_for_failures()


def _feed_raising_cancelled_after(ids: list[str], n: int) -> AsyncIterator[str]:
    async def feed() -> AsyncIterator[str]:
        for i, order_id in enumerate(ids):
            if i == n:
                raise asyncio.CancelledError  # the caller's own code, not a cancellation
            yield order_id

    return feed()


async def test_an_input_raising_cancelled_error_propagates_after_every_outcome(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.01)
    ids = sim.add_orders(298)
    delivered: list[CancelOutcome[Order]] = []
    async with client_for(sim) as client:
        with pytest.raises(asyncio.CancelledError):
            await client.cancel_orders(
                _feed_raising_cancelled_after(ids, 150), on_outcome=delivered.append
            )
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # nobody cancelled this task
        assert library_tasks() == []
    assert len(delivered) == 150  # every id taken has its outcome
    cancelled_on_server = {i for i in ids if sim.orders[i].status == "Cancelled"}
    assert {o.order_id for o in delivered if o.ok} == cancelled_on_server


async def test_iter_cancel_orders_over_an_input_raising_cancelled_error_ends(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    ids = frontoffice_simulator.add_orders(60)
    seen: list[str] = []

    async def consume(client: FrontOfficeClient) -> None:
        outcomes = client.iter_cancel_orders(_feed_raising_cancelled_after(ids, 30))
        async with contextlib.aclosing(outcomes):
            async for outcome in outcomes:
                seen.append(outcome.order_id)

    async with client_for(frontoffice_simulator) as client:
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(consume(client), 10)  # it used to hang here
    assert sorted(seen) == sorted(ids[:30])


@pytest.mark.parametrize("kind", ["list", "async generator"])
async def test_close_from_another_task_ends_an_iterating_consumer_with_every_outcome(
    frontoffice_simulator_factory: SimulatorFactory, kind: str
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.02)
    ids = sim.add_orders(400)
    seen: list[CancelOutcome[Order]] = []
    twenty = asyncio.Event()

    async def consume(client: FrontOfficeClient) -> None:
        outcomes = client.iter_cancel_orders(as_input(kind, ids), concurrency=16)
        async with contextlib.aclosing(outcomes):
            async for outcome in outcomes:
                seen.append(outcome)
                if len(seen) == 20:
                    twenty.set()

    client = client_for(sim)
    async with client:
        consumer = asyncio.create_task(consume(client))
        await twenty.wait()
        await asyncio.wait_for(client.close(), 10)
        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(consumer, 10)  # it used to wait forever
    cancelled_on_server = {i for i in ids if sim.orders[i].status == "Cancelled"}
    assert {o.order_id for o in seen if o.ok} == cancelled_on_server  # none lost (16 were)
    assert library_tasks() == []


async def test_close_ends_a_bulk_call_waiting_for_its_async_input(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    ids = frontoffice_simulator.add_orders(5)
    stuck = asyncio.Event()

    async def feed() -> AsyncIterator[str]:
        for order_id in ids:
            yield order_id
        stuck.set()
        await asyncio.Event().wait()  # a feed that goes quiet
        yield "never"

    delivered: list[CancelOutcome[Order]] = []
    client = client_for(frontoffice_simulator)
    async with client:
        call = asyncio.create_task(client.cancel_orders(feed(), on_outcome=delivered.append))
        await stuck.wait()
        await asyncio.wait_for(client.close(), 10)
        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(call, 10)  # it used to never end
    assert sorted(o.order_id for o in delivered) == sorted(ids)
    assert library_tasks() == []


async def test_close_keeps_the_outcomes_of_an_abandoned_iterator(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.02)
    ids = sim.add_orders(200)
    client = client_for(sim, concurrency=8)
    async with client:
        outcomes = client.iter_cancel_orders(ids)
        seen = [await anext(outcomes)]  # then walked away without aclose()
        await asyncio.sleep(0.05)  # the workers go on until the outbox is full
        await asyncio.wait_for(client.close(), 10)
        assert library_tasks() == []

        async def rest() -> None:
            async for outcome in outcomes:  # whoever comes back finds every outcome
                seen.append(outcome)

        with pytest.raises(ClientClosedError):
            await asyncio.wait_for(rest(), 10)  # it used to hang: the workers were killed
    cancelled_on_server = {i for i in ids if sim.orders[i].status == "Cancelled"}
    assert {o.order_id for o in seen if o.ok} == cancelled_on_server
