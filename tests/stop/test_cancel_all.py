"""Cancel-all, verified: selection, rounds, tolerant snapshots, and the promise under faults."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Coroutine, Sequence
from typing import Any

import pytest

from frontoffice_async import (
    BulkCancelError,
    BulkCancelResult,
    CancelOutcome,
    ConflictError,
    FrontOfficeError,
    HubError,
    Order,
    OrderNotActiveError,
    OrderNotFoundError,
    OrderSide,
    OrdersStillOpenError,
    PermissionDeniedError,
)
from frontoffice_async._converter import structure
from frontoffice_async._http.gate import Halt
from frontoffice_async._stop import pool
from frontoffice_async._stop.cancel_all import Feed, cancel_all, run_pass
from frontoffice_async._stop.ops import AccountOps
from frontoffice_async.testing import (
    DEFAULT_ACCOUNT_ID,
    Fault,
    FaultKind,
    FaultPlan,
    FrontOfficeSimulator,
    HubFault,
)

from ..support import (
    DATA,
    FAST,
    SECOND_ACCOUNT_ID,
    UNKNOWN_ID,
    cancel_requests,
    client_for,
    library_tasks,
    script,
)

BUSY = Fault.response(
    409,
    body=b'{"title": "Conflict", "status": 409, "detail": "Order is being modified, retry later"}',
    headers={"Content-Type": "application/problem+json"},
)


def book_with_two_markets_and_accounts(
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
        (None, "SELL", {"spot.eth_usdt/Sell", "spot.btc_usdt/Sell"}),
        ("spot.btc_usdt", OrderSide.BUY, {"spot.btc_usdt/Buy"}),
        ("spot.eth_usdt", "buy", {"spot.eth_usdt/Buy"}),
        ("spot.xrp_usdt", None, set()),
    ],
)
async def test_filters(
    frontoffice_simulator: FrontOfficeSimulator,
    market_id: str | None,
    side: OrderSide | str | None,
    expected: set[str],
) -> None:
    sim = frontoffice_simulator
    mine, other = book_with_two_markets_and_accounts(sim)
    wanted = {i for (m, s), group in mine.items() if f"{m}/{s}" in expected for i in group}
    everything_mine = {i for group in mine.values() for i in group}

    async with client_for(sim) as client:
        result = await client.cancel_all_orders(market_id=market_id, side=side)
        open_now = await client.open_orders(market_id=market_id, side=side)

    assert {o.order_id for o in result} == wanted
    assert {order.order_id for order in result.cancelled} == wanted
    assert result.failed == [] and result.not_found == [] and result.remaining == []
    assert result.verified and open_now == []
    assert result.rounds == (1 if wanted else 0)
    assert set(cancel_requests(sim)) == wanted
    assert set(sim.open_order_ids(DEFAULT_ACCOUNT_ID)) == everything_mine - wanted
    assert sorted(sim.open_order_ids(SECOND_ACCOUNT_ID)) == sorted(other)
    if market_id == "spot.xrp_usdt":  # a mistyped market: the result says what is open
        assert result.filtered_out == {"spot.eth_usdt": 4, "spot.btc_usdt": 4}


async def test_another_account(frontoffice_simulator: FrontOfficeSimulator) -> None:
    sim = frontoffice_simulator
    mine, other = book_with_two_markets_and_accounts(sim)
    async with client_for(sim) as client:
        result = await client.cancel_all_orders(account_id=SECOND_ACCOUNT_ID)

    assert sorted(order.order_id for order in result.cancelled) == sorted(other)
    assert sim.open_order_ids(SECOND_ACCOUNT_ID) == []
    assert len(sim.open_order_ids(DEFAULT_ACCOUNT_ID)) == sum(len(g) for g in mine.values())
    hub = [r for r in sim.requests if r.endpoint == "hub"]
    cancels = [r for r in sim.requests if r.endpoint == "cancel_order"]
    assert len(hub) == 2  # the snapshot, and the one that verified
    assert len(cancels) == len(other)
    assert {r.account_id for r in cancels} == {SECOND_ACCOUNT_ID}


async def test_an_order_filled_in_between_is_not_active_not_a_failure(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    # A halted market makes the platform cancel its orders by itself, and orders fill: an
    # order can stop being active between the snapshot and its cancel.
    sim = frontoffice_simulator
    ids = sim.add_orders(3)
    filled = ids[1]
    async with client_for(sim) as client:
        result = await client.cancel_all_orders(
            on_outcome=lambda _: sim.update_order(filled, status="Completed")
        )
    assert result.not_active == [filled] or filled in {o.order_id for o in result.cancelled}
    assert result.failed == [] and result.verified
    result.raise_for_failures()


async def test_a_busy_order_is_cancelled_in_the_next_round(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    # 502, then 409 "being modified": the order is still live. The next snapshot still shows
    # it, so the next round cancels it.
    sim = frontoffice_simulator
    others = sim.add_orders(5)
    busy = script(sim, [Fault.bad_gateway(), BUSY])
    rounds: list[list[CancelOutcome[Order]]] = [[]]

    def seen(outcome: CancelOutcome[Order]) -> None:
        rounds[-1].append(outcome)
        if len(rounds[-1]) == 6:
            rounds.append([])

    async with client_for(sim, retry=FAST) as client:
        result = await client.cancel_all_orders(on_outcome=seen)
    first_try = next(o for o in rounds[0] if o.order_id == busy)
    assert isinstance(first_try.error, ConflictError)  # a failure: it may still be live
    assert first_try.failed
    assert result.rounds == 2 and result.verified
    assert {o.order.order_id for o in result if o.order} == {*others, busy}
    assert sim.open_order_ids() == []
    # Every request of every round counts, not only those of the outcome kept per order.
    assert result.attempts == sum(cancel_requests(sim).values()) == 5 + 2 + 1


async def test_an_order_that_stays_busy_is_reported_still_open(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    sim.add_orders(3)
    stuck = script(sim, [BUSY] * 20)
    async with client_for(sim, retry=FAST) as client:
        result = await client.cancel_all_orders(rounds=3)
    assert result.rounds == 3
    assert not result.verified
    assert [o.order_id for o in result.remaining] == [stuck] == sim.open_order_ids()
    assert [o.order_id for o in result.failed] == [stuck]
    with pytest.raises(BulkCancelError) as caught:
        result.raise_for_failures()
    kinds = {type(e) for e in caught.value.exceptions}
    assert kinds == {ConflictError, OrdersStillOpenError}
    still_open = next(e for e in caught.value.exceptions if isinstance(e, OrdersStillOpenError))
    assert [o.order_id for o in still_open.orders] == [stuck]
    assert cancel_requests(sim)[stuck] == 3  # one try per round


async def test_dry_run_shows_the_selection_and_cancels_nothing(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    eth = sim.add_orders(3, market_id="spot.eth_usdt")
    sim.add_orders(2, market_id="spot.btc_usdt")
    async with client_for(sim) as client:
        result = await client.cancel_all_orders(market_id="spot.eth_usdt", dry_run=True)
    assert [o.order_id for o in result.remaining] == eth
    assert len(result) == 0 and result.rounds == 0 and not result.verified
    assert result.filtered_out == {"spot.btc_usdt": 2}
    assert cancel_requests(sim) == {}
    assert len(sim.open_order_ids()) == 5
    async with client_for(sim) as client:
        nothing = await client.cancel_all_orders(market_id="spot.xrp_usdt", dry_run=True)
    assert nothing.verified and nothing.remaining == []  # nothing to cancel: seen empty


# --- tolerant snapshots: unit tests over a fake hub and a fake canceller ------------------------


def record(order_id: Any, **fields: Any) -> dict[str, Any]:
    """An OpenOrders record as the hub sends it."""
    base = {
        "marketId": "spot.eth_usdt",
        "marketDisplayName": "SPOT ETH/USDT",
        "orderId": order_id,
        "timeInForce": "Gtc",
        "status": "Pending",
        "source": "Manual",
        "side": "Buy",
        "orderType": "Limit",
        "requestedAmount": "0.1",
        "remainingAmount": "0.1",
        "requestedPrice": "4000",
        "executionPrice": "0",
        "createdAt": "2025-08-15T08:59:51.97Z",
        "updatedAt": "2025-08-15T08:59:51.97Z",
        "fillFactor": "0",
    }
    return {**base, **fields}


class FakeAccount:
    """Snapshots from a list of records; a cancel removes the order (or answers an error)."""

    def __init__(self, records: Sequence[dict[str, Any] | Any]) -> None:
        self.records = list(records)
        self.cancelled: list[str] = []
        self.refuse: dict[str, Exception] = {}
        self.lag: set[str] = set()  # cancelled orders the next snapshot still lists

    async def snapshot(self, on_item: Callable[[list[Any]], object] | None = None) -> list[Any]:
        listed = [r for r in self.records if not _is(r, self.cancelled) or _is(r, self.lag)]
        self.lag.clear()
        if on_item is not None:
            on_item(listed)
        return listed

    def canceller(
        self,
    ) -> Callable[[AsyncIterable[str]], Coroutine[Any, Any, BulkCancelResult[Order]]]:
        async def cancel_one(order_id: str, halt: Halt | None) -> tuple[Order, int]:
            if order_id in self.refuse:
                raise self.refuse[order_id]
            if order_id in self.cancelled:
                raise _not_active(order_id)
            self.cancelled.append(order_id)
            return _order(order_id), 1

        async def cancel_ids(ids: AsyncIterable[str]) -> BulkCancelResult[Order]:
            return await pool.cancel_orders(cancel_one, ids, concurrency=4)

        return cancel_ids


def _is(raw: Any, ids: Collection[str]) -> bool:
    return isinstance(raw, dict) and raw.get("orderId") in ids


def _order(order_id: str) -> Order:
    data = {**record(order_id), "status": "Cancelled", "commission": "0"}
    return structure(data, Order)


def _not_active(order_id: str) -> OrderNotActiveError:
    return OrderNotActiveError(
        "not active", order_id=order_id, status=400, method="DELETE", url="http://x"
    )


async def run(account: FakeAccount, **kwargs: Any) -> BulkCancelResult[Order]:
    kwargs.setdefault("market_id", None)
    kwargs.setdefault("side", None)
    kwargs.setdefault("rounds", 3)
    return await cancel_all(account.snapshot, account.canceller(), **kwargs)


async def test_one_malformed_record_does_not_stop_the_others() -> None:
    account = FakeAccount(
        [
            record("A"),
            record("B", fillFactor="lots"),  # readable id: cancelled all the same
            record("C", createdAt=None),
            {"orderId": 17, "marketId": "spot.eth_usdt"},  # no readable id
            "garbage",
            record("D"),
        ]
    )
    result = await run(account)
    assert account.cancelled == ["A", "B", "C", "D"]
    assert {o.order.order_id for o in result if o.order} == {"A", "B", "C", "D"}
    assert len(result.unreadable) == 2  # what the last snapshot could not read
    assert not result.verified
    with pytest.raises(BulkCancelError) as caught:
        result.raise_for_failures()
    [still_open] = caught.value.exceptions
    assert isinstance(still_open, OrdersStillOpenError)
    assert len(still_open.unreadable) == 2


async def test_an_id_listed_twice_is_cancelled_once() -> None:
    account = FakeAccount([record("A"), record("B"), record("A")])
    result = await run(account)
    assert account.cancelled == ["A", "B"]
    assert [o.order_id for o in result] == ["A", "B"]
    assert result.verified


async def test_a_lagging_hub_does_not_turn_cancelled_into_not_active() -> None:
    account = FakeAccount([record("A"), record("B")])
    original = account.canceller()

    async def cancel_ids(ids: AsyncIterable[str]) -> BulkCancelResult[Order]:
        first_pass = not account.cancelled
        result = await original(ids)
        if first_pass:
            account.lag.update(account.cancelled)  # the next snapshot still lists them, once
        return result

    result = await cancel_all(account.snapshot, cancel_ids, market_id=None, side=None, rounds=3)
    assert result.rounds == 2  # the lagging snapshot made a second pass ...
    assert [o.category for o in result] == ["cancelled", "cancelled"]  # ... that changed nothing
    assert result.verified


async def test_a_filter_field_that_cannot_be_read_is_reported_not_guessed() -> None:
    account = FakeAccount([record("A"), record("B", marketId=None), record("C", side=5)])
    result = await run(account, market_id="spot.eth_usdt", side=OrderSide.BUY)
    assert account.cancelled == ["A"]
    assert len(result.unreadable) == 2 and not result.verified


async def test_rounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="rounds"):
        await run(FakeAccount([]), rounds=0)


# --- the promise, under random faults ----------------------------------------------------------

_REST_FAULTS = [
    FaultKind.RATE_LIMITED,
    FaultKind.SERVER_ERROR,
    FaultKind.BAD_GATEWAY,
    FaultKind.UNAVAILABLE,
    FaultKind.RESET,
    FaultKind.LOST_RESPONSE,
    FaultKind.MALFORMED,
]


@pytest.mark.parametrize("seed", range(16))
async def test_cancel_all_never_reports_success_while_an_order_is_open(
    frontoffice_simulator: FrontOfficeSimulator, seed: int
) -> None:
    rng = random.Random(seed)
    sim = frontoffice_simulator
    ids = sim.add_orders(rng.randint(1, 60))
    done = sim.add_orders(rng.randint(0, 5), status="Completed")
    busy = {
        i: [BUSY] * rng.randint(1, 3) for i in rng.sample(ids, k=min(rng.randint(0, 2), len(ids)))
    }
    kinds = rng.sample(_REST_FAULTS, k=rng.randint(1, len(_REST_FAULTS)))
    rates = dict.fromkeys(kinds, rng.uniform(0.0, 0.5) / len(kinds))
    sim.faults = FaultPlan(rates=rates, scripts=busy, seed=seed, retry_after=None)
    was_open = set(sim.open_order_ids())

    rounds = rng.randint(1, 4)
    async with client_for(sim, retry=FAST) as client:
        result = await client.cancel_all_orders(rounds=rounds)

    still_open = set(sim.open_order_ids())
    cancelled_on_server = was_open - still_open
    # Every order the call cancelled on the server is one of its outcomes.
    assert cancelled_on_server <= {o.order_id for o in result}
    assert not set(done) & {o.order_id for o in result}  # final orders are never listed
    if result.rounds < rounds:  # it stopped early: nothing was left to do
        assert result.verified and result.failed == []
        result.raise_for_failures()
    if result.verified:
        assert still_open == set()
        assert result.remaining == []
    else:
        with pytest.raises(BulkCancelError):
            result.raise_for_failures()
        named = {o.order_id for o in result.remaining} | {o.order_id for o in result.failed}
        assert still_open <= named  # nothing open is left unnamed
        assert {o.order_id for o in result.remaining} == still_open


async def test_unknown_id_in_a_snapshot_is_not_found(
    frontoffice_simulator: FrontOfficeSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(3)
    real = AccountOps.orders_snapshot
    calls = 0

    async def snapshot(
        self: AccountOps, on_item: Callable[[list[Any]], object] | None = None
    ) -> list[Any]:
        nonlocal calls
        calls += 1
        records = await real(self, None)
        # An order the server no longer knows at all by the time we cancel it.
        records = [*records, record(UNKNOWN_ID)] if calls == 1 else records
        if on_item is not None:
            on_item(records)
        return records

    monkeypatch.setattr(AccountOps, "orders_snapshot", snapshot)
    async with client_for(sim) as client:
        result = await client.cancel_all_orders()

    assert [o.order_id for o in result] == [*ids, UNKNOWN_ID]
    assert result.not_found == [UNKNOWN_ID]
    assert isinstance(result[-1].error, OrderNotFoundError)
    assert result.failed == [] and result.verified
    assert sim.open_order_ids() == []


_HUB_FAULTS = [
    HubFault.close(),  # a deploy
    HubFault.close(allow_reconnect=None),
    HubFault.complete(),
    HubFault.drop(),
    HubFault.duplicate(),
    HubFault.bad_record("fillFactor", "lots"),
    HubFault.bad_record("createdAt", None),
    HubFault.bad_record("orderId", remove=True),
    HubFault.refuse(503),
    HubFault.close_with_error(),
]


@pytest.mark.parametrize("seed", range(16))
async def test_the_promise_holds_with_a_hostile_hub_too(
    frontoffice_simulator: FrontOfficeSimulator, seed: int
) -> None:
    rng = random.Random(1000 + seed)
    sim = frontoffice_simulator
    sim.add_orders(rng.randint(1, 40))
    hub = [rng.choice([*_HUB_FAULTS, None, None]) for _ in range(rng.randint(1, 5))]
    rates = dict.fromkeys(rng.sample(_REST_FAULTS, k=2), rng.uniform(0.0, 0.2))
    sim.faults = FaultPlan(rates=rates, hub=hub, seed=seed, retry_after=None)
    was_open = set(sim.open_order_ids())
    delivered: list[CancelOutcome[Order]] = []

    async with client_for(sim, retry=FAST) as client:
        try:
            result = await client.cancel_all_orders(rounds=3, on_outcome=delivered.append)
        except FrontOfficeError:
            result = None  # a loud failure (the hub refused or failed): never a false success

    still_open = set(sim.open_order_ids())
    # Every order cancelled on the server reached on_outcome, whatever the call ended in.
    assert was_open - still_open <= {o.order_id for o in delivered}
    if result is None:
        return
    if result.verified:
        assert still_open == set()
    else:
        with pytest.raises(BulkCancelError):
            result.raise_for_failures()
        named = {o.order_id for o in result.remaining} | {o.order_id for o in result.failed}
        # An order the last snapshot listed without a readable id cannot be named, only counted.
        assert len(still_open - named) <= len(result.unreadable)


async def test_a_forbidden_account_is_not_asked_again_in_the_next_rounds(
    sim: FrontOfficeSimulator,
) -> None:
    sim.add_orders(50)
    # The hub lets this token read the account, but the REST API refuses its cancels.
    sim.faults = FaultPlan(sequence=[Fault.response(403)] * 500)
    async with client_for(sim, concurrency=8) as client:
        result = await client.cancel_all_orders(rounds=3)
    assert sum(cancel_requests(sim).values()) <= 8  # one wave, not one per round
    assert result.rounds == 1 and not result.verified
    assert isinstance(result.stopped_by, PermissionDeniedError)
    assert len(result.remaining) == 50
    with pytest.raises(BulkCancelError):
        result.raise_for_failures()


# --- the settle window, and answers that look like success (issue 19, items 3-5) --------------


async def test_cancels_start_on_the_first_item_and_later_items_join_the_pass() -> None:
    first_cancel = asyncio.Event()
    account = FakeAccount([record("A"), record("B"), record("C")])
    cancel_ids = account.canceller()

    async def snapshot(on_item: Callable[[list[Any]], object] | None = None) -> list[Any]:
        listed = await account.snapshot()
        if on_item is None:
            return listed
        on_item(listed[:1])  # the first item: one order
        # The window is still open: a snapshot that only handed its ids over at the end would
        # wait here forever.
        await asyncio.wait_for(first_cancel.wait(), 5)
        on_item(listed[1:])  # the rest, later in the window
        return listed

    async def cancel(ids: AsyncIterable[str]) -> BulkCancelResult[Order]:
        async def watched() -> AsyncIterator[str]:
            async for order_id in ids:
                first_cancel.set()
                yield order_id

        return await cancel_ids(watched())

    result = await cancel_all(snapshot, cancel, market_id=None, side=None, rounds=3)
    assert account.cancelled == ["A", "B", "C"]
    assert result.rounds == 1 and result.verified


SPLIT_SNAPSHOTS = [
    pytest.param(HubFault.empty_first(), id="empty-first"),
    pytest.param(HubFault.split(pages=3), id="pages"),
    pytest.param(HubFault.update_first(), id="update-first"),
]


@pytest.mark.parametrize("fault", SPLIT_SNAPSHOTS)
async def test_a_snapshot_in_several_items_is_not_a_smaller_book(
    frontoffice_simulator: FrontOfficeSimulator, fault: HubFault
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(10)
    sim.faults = FaultPlan(hub=[fault] * 4)
    async with client_for(sim) as client:
        result = await client.cancel_all_orders()
    assert result.verified and result.rounds >= 1  # was: verified, 0 rounds, 10 open
    assert sim.open_order_ids() == []
    assert {o.order_id for o in result if o.ok} == set(ids)


async def test_an_error_right_after_the_first_item_fails_the_snapshot(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    sim.add_orders(5)
    sim.faults = FaultPlan(hub=[HubFault.fail_after_first()] * 10)
    async with client_for(sim) as client:
        with pytest.raises(HubError):
            await client.cancel_all_orders()


_SAMPLE_ORDER = json.loads((DATA / "cancel_order_200.json").read_text())["order"]


def odd_answer(order_id: str, kind: str) -> Fault:
    """An answer that changes nothing on the server but may look like success."""
    if kind.startswith("200-"):
        status, other = kind.removeprefix("200-"), "01K2PF9XS29WN4JZRHMCTTQYJB"
        order = {**_SAMPLE_ORDER, "orderId": order_id, "status": status}
        if status == "other-id":
            order = {**_SAMPLE_ORDER, "orderId": other}
        return Fault.response(200, body=json.dumps({"order": order}).encode())
    problem = {"Content-Type": "application/problem+json"}
    bodies = {
        "400-empty": b"",
        "400-validation": json.dumps(
            {
                "title": "One or more validation errors occurred.",
                "status": 400,
                "errors": {"accountId": ["The accountId field is required."]},
            }
        ).encode(),
        "400-api-version": json.dumps(
            {"title": "Unsupported API version", "status": 400, "code": "UnsupportedApiVersion"}
        ).encode(),
    }
    return Fault.response(400, body=bodies[kind], headers=problem)


ODD_ANSWERS = [
    "200-Working",
    "200-Pending",
    "200-Completed",
    "200-PendingCancel",
    "200-other-id",
    "400-empty",
    "400-validation",
    "400-api-version",
]


@pytest.mark.parametrize("kind", ODD_ANSWERS)
async def test_an_answer_that_did_not_cancel_is_never_verified_away(
    frontoffice_simulator: FrontOfficeSimulator, kind: str
) -> None:
    sim = frontoffice_simulator
    ids = sim.add_orders(3)
    odd = ids[1]
    sim.faults = FaultPlan(scripts={odd: [odd_answer(odd, kind)] * 10})  # every round
    async with client_for(sim) as client:
        result = await client.cancel_all_orders(rounds=2)
    assert sim.open_order_ids() == [odd]
    assert not result.verified
    assert [o.order_id for o in result.remaining] == [odd]
    with pytest.raises(BulkCancelError):
        result.raise_for_failures()


@pytest.mark.parametrize("seed", range(16))
async def test_the_promise_holds_through_split_snapshots_and_odd_answers(
    frontoffice_simulator: FrontOfficeSimulator, seed: int
) -> None:
    rng = random.Random(2000 + seed)
    sim = frontoffice_simulator
    ids = sim.add_orders(rng.randint(1, 40))
    odd = rng.sample(ids, k=min(len(ids), rng.randint(0, 4)))
    scripts = {i: [odd_answer(i, rng.choice(ODD_ANSWERS))] * rng.randint(1, 4) for i in odd}
    hub_kinds = [HubFault.empty_first(), HubFault.split(pages=rng.randint(2, 4))]
    hub_kinds += [HubFault.update_first(), HubFault.close(), HubFault.duplicate()]
    hub = [rng.choice([*hub_kinds, None]) for _ in range(rng.randint(1, 6))]
    rates = dict.fromkeys(rng.sample(_REST_FAULTS, k=2), rng.uniform(0.0, 0.2))
    sim.faults = FaultPlan(rates=rates, scripts=scripts, hub=hub, seed=seed, retry_after=None)
    was_open = set(sim.open_order_ids())
    delivered: list[CancelOutcome[Order]] = []

    async with client_for(sim, retry=FAST) as client:
        result = await client.cancel_all_orders(rounds=3, on_outcome=delivered.append)

    still_open = set(sim.open_order_ids())
    assert was_open - still_open <= {o.order_id for o in delivered}
    if result.verified:
        assert still_open == set()  # verified means nothing is open
        result.raise_for_failures()
    else:
        with pytest.raises(BulkCancelError):
            result.raise_for_failures()
        assert {o.order_id for o in result.remaining} == still_open  # named, exactly


async def test_a_caller_cancelled_while_a_failed_snapshots_cancels_finish_stops_them() -> None:
    # The snapshot failed, so the pass lets what was sent finish; if its caller is cancelled
    # meanwhile, the cancels stop too: nothing of the pass outlives it.
    started, hold = asyncio.Event(), asyncio.Event()

    async def snapshot(on_item: Callable[[list[Any]], object] | None) -> list[Any]:
        assert on_item is not None
        on_item([{"orderId": "A", "status": "Pending"}])
        await started.wait()
        raise HubError("the hub failed the stream")

    async def cancel(ids: AsyncIterable[str]) -> BulkCancelResult[Order]:
        async for _ in ids:
            started.set()
            await hold.wait()  # the DELETE is on the wire, and stays there
        raise AssertionError("unreachable")

    task = asyncio.ensure_future(run_pass(snapshot, cancel, Feed((), None, None)))
    await started.wait()
    for _ in range(5):
        await asyncio.sleep(0)  # the snapshot has failed; the pass waits for the cancels
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert library_tasks() == []
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


def test_a_pass_feeds_only_what_an_item_shows_open() -> None:
    # An update inside the window that lists a just-filled order needs no DELETE, and must not
    # make the pass look busy (a round that sent nothing is the verdict).
    feed = Feed((), None, None)
    feed.add_item(
        [
            {"orderId": "A", "status": "Completed"},
            {"orderId": "B", "status": "Pending"},
            {"orderId": "C", "status": "Cancelled"},
            {"orderId": "D", "status": "PendingCancel"},  # unknown: may be live
        ]
    )
    assert feed.count == 2
