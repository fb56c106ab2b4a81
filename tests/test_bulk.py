"""Bulk cancelling against the loopback simulator: order, exactly-once, failures, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import tracemalloc
from collections import Counter
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from pathlib import Path
from typing import Any

import attrs
import pytest

from frontoffice_async import (
    APIConnectionError,
    BadRequestError,
    BulkCancelError,
    BulkCancelResult,
    CancelOutcome,
    FrontOfficeClient,
    FrontOfficeError,
    InvalidOrderIdError,
    OpenOrder,
    Order,
    OrderNotFoundError,
    OrderSide,
    OrderStatus,
    RateLimitError,
    RetryPolicy,
    ServerError,
    _converter,
)
from frontoffice_async.testing import (
    DEFAULT_ACCOUNT_ID,
    Fault,
    FaultPlan,
    FrontOfficeSimulator,
)
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from .conftest import sample

SECOND_ACCOUNT_ID = "685a7eaa360f9e7416221a62"
UNKNOWN_ID = "01K2ZZZZZZZZZZZZZZZZZZZZZZ"
LIBRARY_DIR = Path(_converter.__file__).parent


async def no_sleep(_: float) -> None:
    """Backoff without waiting: retries cost no wall-clock time."""


def client_for(sim: FrontOfficeSimulator, **kwargs: Any) -> FrontOfficeClient:
    return FrontOfficeClient(sim.url, token=sim.token, account_id=DEFAULT_ACCOUNT_ID, **kwargs)


def cancel_requests(sim: FrontOfficeSimulator) -> Counter[str | None]:
    """How many DELETE /v3/orders/{id} requests the simulator received, per id."""
    return Counter(r.order_id for r in sim.requests if r.endpoint == "cancel_order")


def library_tasks() -> list[asyncio.Task[Any]]:
    """Unfinished tasks running the library's own code (not its simulator, not the test)."""
    me = asyncio.current_task()
    found = []
    for task in asyncio.all_tasks():
        if task is me or task.done():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        where = Path(code.co_filename) if code is not None else Path()
        in_library = where.is_relative_to(LIBRARY_DIR)
        in_simulator = where.is_relative_to(LIBRARY_DIR / "testing")
        if (in_library and not in_simulator) or task.get_name().startswith("frontoffice-bulk"):
            found.append(task)
    return found


def closing(
    outcomes: AsyncIterator[CancelOutcome],
) -> contextlib.aclosing[AsyncGenerator[CancelOutcome, None]]:
    """`contextlib.aclosing` for `iter_cancel_orders`, which is typed as a bare AsyncIterator."""
    assert isinstance(outcomes, AsyncGenerator)
    return contextlib.aclosing(outcomes)


async def agen(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        await asyncio.sleep(0)
        yield item


def as_input(kind: str, items: list[Any]) -> Any:
    """The same ids as a list, a one-shot generator, or an async generator."""
    if kind == "list":
        return list(items)
    if kind == "generator":
        return (item for item in items)
    return agen(items)


INPUT_KINDS = ["list", "generator", "async generator"]


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


async def test_result_sorts_outcomes_into_cancelled_not_found_and_failed(
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
    # The simulator answers an already final order (cancelled before, or filled) with 400,
    # not 404: such ids are failures, not "not found", although the order is not live.
    failed = {o.order_id: o.error for o in result.failed}
    assert list(failed) == [cancelled_before, completed, flaky, ""]
    assert isinstance(failed[cancelled_before], BadRequestError)
    assert isinstance(failed[completed], BadRequestError)
    assert isinstance(failed[flaky], ServerError)
    assert isinstance(failed[""], InvalidOrderIdError)
    assert [o.attempts for o in result.failed] == [1, 1, 1, 0]
    assert result.attempts == 6  # every id but the invalid one, once
    assert len(result) == 7 and result[1].not_found and result[-1].ok
    assert repr(result) == ("<BulkCancelResult 7 ids: 2 cancelled, 1 not found, 4 failed>")

    with pytest.raises(BulkCancelError) as excinfo:
        result.raise_for_failures()
    error = excinfo.value
    assert isinstance(error, ExceptionGroup) and isinstance(error, FrontOfficeError)
    assert list(error.exceptions) == list(failed.values())
    assert {o.order_id: o.error for o in error.outcomes} == failed
    assert str(error).startswith("4 of 7 cancels failed")


async def test_raise_for_failures_splits_with_except_star(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ok, flaky = sim.add_orders(2)
    (completed,) = sim.add_orders(1, status="Completed")
    sim.faults = FaultPlan(scripts={flaky: [Fault.server_error(503)]})
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        result = await client.cancel_orders([ok, flaky, completed, ".."])

    caught: dict[str, BaseExceptionGroup[BaseException]] = {}
    try:
        result.raise_for_failures()
    except* ServerError as server_errors:
        caught["server"] = server_errors
    except* BadRequestError as bad_requests:
        caught["bad"] = bad_requests
    except* ValueError as invalid_ids:  # InvalidOrderIdError is also a ValueError
        caught["invalid"] = invalid_ids

    assert set(caught) == {"server", "bad", "invalid"}
    expected_ids = {"server": [flaky], "bad": [completed], "invalid": [".."]}
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
    BulkCancelResult([]).raise_for_failures()


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
    async with client_for(sim, sleep=no_sleep, concurrency=64) as client:
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
        yield f"01K2PF9XS29WN4JZR{i:09d}"  # 26 chars, like a ULID


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


def sample_order() -> Order:
    return _converter.structure(json.loads(sample("cancel_order_200.json"))["order"], Order)


def instant_cancel(order: Order) -> Callable[..., Awaitable[tuple[Order, int]]]:
    """A stand-in for `client._cancel` that answers at once: measures the pool, not HTTP."""

    async def cancel(
        prefix: str, cls: type[Order], order_id: str, account_id: str | None
    ) -> tuple[Order, int]:
        return order, 1

    return cancel


async def test_iter_cancel_orders_memory_is_bounded(
    frontoffice_simulator: FrontOfficeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = sample_order()

    # What holding everything would cost: the ids and their outcomes in lists.
    def materialise() -> object:
        ids = list(memory_ids())
        return ids, [CancelOutcome(i, order=order, attempts=1) for i in ids]

    materialised = traced_peak(materialise)
    # What exactly-once costs by design: the set of ids seen (bulk.py keeps it whole).
    seen_set = traced_peak(lambda: set(memory_ids()))

    async with client_for(frontoffice_simulator, concurrency=32) as client:
        monkeypatch.setattr(client, "_cancel", instant_cancel(order))
        count = 0
        tracemalloc.start()
        try:
            async with closing(client.iter_cancel_orders(memory_ids())) as outcomes:
                async for outcome in outcomes:
                    count += outcome.ok
            current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()

    print(
        f"tracemalloc peaks for {N_MEMORY} ids: iter_cancel_orders {peak / 1e6:.2f} MB "
        f"(after: {current / 1e6:.2f} MB), set of ids {seen_set / 1e6:.2f} MB, "
        f"materialised ids+outcomes {materialised / 1e6:.2f} MB"
    )
    assert count == N_MEMORY  # every outcome ok
    # Measured: peak 12.3 MB = the seen-set (12.2 MB) + ~0.1 MB; materialised is 16.3 MB.
    # The pool itself must be O(concurrency): beyond the seen-set it may not grow with the
    # number of ids (1 MB is 10 bytes per id; one outcome alone is ~70 bytes).
    assert peak - seen_set < 1_000_000
    assert peak < materialised
    assert current < 1_000_000  # nothing kept once the iteration is over
    assert frontoffice_simulator.requests == []  # the stub replaced every request


async def test_without_dedupe_memory_is_o_concurrency_for_any_number_of_ids(
    frontoffice_simulator: FrontOfficeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = sample_order()

    peaks = []
    async with client_for(frontoffice_simulator, concurrency=32) as client:
        monkeypatch.setattr(client, "_cancel", instant_cancel(order))
        for n in (10_000, N_MEMORY):
            count = 0
            tracemalloc.start()
            try:
                ids = (f"01K2PF9XS2{i:016d}" for i in range(n))
                stream = client.iter_cancel_orders(ids, dedupe=False)
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


async def test_without_dedupe_a_repeated_id_is_sent_again(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    [order_id] = frontoffice_simulator.add_orders(1)
    async with client_for(frontoffice_simulator) as client:
        result = await client.cancel_orders([order_id, order_id], dedupe=False, concurrency=1)
    assert len(result) == 2
    assert len(frontoffice_simulator.requests_for(order_id)) == 2
    assert result[0].ok
    assert isinstance(result[1].error, BadRequestError)  # already cancelled by the first


# --- caller cancellation -------------------------------------------------------------------------


async def test_cancelling_the_caller_stops_workers_and_keeps_received_outcomes(
    frontoffice_simulator_factory: SimulatorFactory,
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.02)
    ids = sim.add_orders(200)
    collected: list[CancelOutcome] = []
    ten_arrived = asyncio.Event()

    def collect(outcome: CancelOutcome) -> None:
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
    seen: list[CancelOutcome] = []
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


# --- cancel_all_orders ---------------------------------------------------------------------------


async def _book_with_two_markets_and_accounts(
    sim: FrontOfficeSimulator,
) -> tuple[dict[tuple[str, str], list[str]], list[str]]:
    """Two orders per (market, side) on the default account, and four on the second one."""
    mine: dict[tuple[str, str], list[str]] = {}
    for market in ("spot.eth_usdt", "spot.btc_usdt"):
        for side in ("Buy", "Sell"):
            mine[market, side] = sim.add_orders(2, market_id=market, side=side)
    other = sim.add_orders(4, account_id=SECOND_ACCOUNT_ID, market_id="spot.eth_usdt")
    return mine, other


@pytest.mark.parametrize(
    ("market_id", "side", "expected"),
    [
        (
            None,
            None,
            {"spot.eth_usdt/Buy", "spot.eth_usdt/Sell", "spot.btc_usdt/Buy", "spot.btc_usdt/Sell"},
        ),
        ("spot.eth_usdt", None, {"spot.eth_usdt/Buy", "spot.eth_usdt/Sell"}),
        (None, "Sell", {"spot.eth_usdt/Sell", "spot.btc_usdt/Sell"}),
        ("spot.btc_usdt", OrderSide.BUY, {"spot.btc_usdt/Buy"}),
        ("spot.eth_usdt", "Buy", {"spot.eth_usdt/Buy"}),
        ("spot.xrp_usdt", None, set()),
    ],
)
async def test_cancel_all_orders_filters(
    frontoffice_simulator: FrontOfficeSimulator,
    market_id: str | None,
    side: OrderSide | str | None,
    expected: set[str],
) -> None:
    sim = frontoffice_simulator
    mine, other = await _book_with_two_markets_and_accounts(sim)
    wanted = {i for (m, s), group in mine.items() if f"{m}/{s}" in expected for i in group}
    everything_mine = {i for group in mine.values() for i in group}

    async with client_for(sim) as client:
        result = await client.cancel_all_orders(market_id=market_id, side=side)

    assert {o.order_id for o in result} == wanted
    assert {order.order_id for order in result.cancelled} == wanted
    assert result.failed == [] and result.not_found == []
    assert set(cancel_requests(sim)) == wanted
    assert set(sim.open_order_ids(DEFAULT_ACCOUNT_ID)) == everything_mine - wanted
    assert sorted(sim.open_order_ids(SECOND_ACCOUNT_ID)) == sorted(other)


async def test_cancel_all_orders_on_another_account(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    mine, other = await _book_with_two_markets_and_accounts(sim)
    async with client_for(sim) as client:
        result = await client.cancel_all_orders(account_id=SECOND_ACCOUNT_ID)

    assert sorted(order.order_id for order in result.cancelled) == sorted(other)
    assert sim.open_order_ids(SECOND_ACCOUNT_ID) == []
    assert len(sim.open_order_ids(DEFAULT_ACCOUNT_ID)) == sum(len(g) for g in mine.values())
    hub = [r for r in sim.requests if r.endpoint == "hub"]
    cancels = [r for r in sim.requests if r.endpoint == "cancel_order"]
    assert len(hub) == 1 and len(cancels) == len(other)
    assert {r.account_id for r in cancels} == {SECOND_ACCOUNT_ID}


def _snapshot_then(
    client: FrontOfficeClient, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], object]
) -> list[OpenOrder]:
    """Make `open_orders` take the real snapshot, then run `meanwhile` before returning it."""
    real_open_orders = client.open_orders
    snapshots: list[OpenOrder] = []

    async def open_orders(**kwargs: Any) -> list[OpenOrder]:
        orders = await real_open_orders(**kwargs)
        snapshots.extend(orders)
        meanwhile()
        return orders

    monkeypatch.setattr(client, "open_orders", open_orders)
    return snapshots


async def test_cancel_all_orders_unknown_id_in_snapshot_is_not_found(
    frontoffice_simulator: FrontOfficeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(3)
    async with client_for(sim) as client:
        real_open_orders = client.open_orders

        async def open_orders(**kwargs: Any) -> list[OpenOrder]:
            orders = await real_open_orders(**kwargs)
            # An order the server no longer knows at all by the time we cancel it.
            ghost = attrs.evolve(orders[0], order_id=UNKNOWN_ID)
            return [*orders, ghost]

        monkeypatch.setattr(client, "open_orders", open_orders)
        result = await client.cancel_all_orders()

    assert [o.order_id for o in result] == [*ids, UNKNOWN_ID]
    assert result.not_found == [UNKNOWN_ID]
    assert result.failed == []
    assert isinstance(result[-1].error, OrderNotFoundError)
    assert sim.open_order_ids() == []


@pytest.mark.parametrize("final_status", ["Cancelled", "Completed"])
async def test_cancel_all_orders_order_finalised_in_between_is_not_a_failure(
    frontoffice_simulator: FrontOfficeSimulator,
    monkeypatch: pytest.MonkeyPatch,
    final_status: str,
) -> None:
    # The API notes: a halted market makes the platform cancel its orders by itself, so an
    # order can vanish between listing and cancelling. The docstring of cancel_all_orders
    # promises such orders come back as `not_found`, not as failures.
    sim = frontoffice_simulator
    ids = sim.add_orders(3)
    vanished = ids[1]
    async with client_for(sim) as client:
        snapshot = _snapshot_then(
            client, monkeypatch, lambda: sim.update_order(vanished, status=final_status)
        )
        result = await client.cancel_all_orders()

    assert [o.order_id for o in snapshot] == ids  # it was open when listed
    assert sorted(order.order_id for order in result.cancelled) == sorted([ids[0], ids[2]])
    assert result.failed == []
    assert result.not_found == [vanished]


# --- on_outcome -------------------------------------------------------------------------------


async def test_on_outcome_sees_each_outcome_exactly_once(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(20)
    sim.faults = FaultPlan(scripts={ids[3]: [Fault.unavailable()], ids[7]: [Fault.reset()]})
    collected: list[CancelOutcome] = []
    order_ids: list[Any] = [*ids, ids[0], ids[5], UNKNOWN_ID, "", 7, UNKNOWN_ID]
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        result = await client.cancel_orders(order_ids, on_outcome=collected.append, concurrency=5)

    assert len(result) == 20 + 3  # distinct ids: 20 orders, the unknown one, "" and 7
    assert len(collected) == len(result)
    assert Counter(map(id, collected)) == Counter(map(id, result))  # the same objects, once
    assert len(result.cancelled) == 18
    assert result.not_found == [UNKNOWN_ID]
    assert [o.order_id for o in result.failed] == [ids[3], ids[7], "", 7]
