"""Flatten (issue 21): every account asked for is left with no open order, no open position
and no live stop order given, verified by fresh snapshots; or the call says exactly what is
still open. On the loopback simulator, with faults on every path.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import random
import re
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async import (
    AccountFlatten,
    APIConnectionError,
    BulkCancelError,
    CancelOutcome,
    FlattenError,
    FrontOfficeClient,
    FrontOfficeError,
    InvalidOrderIdError,
    InvalidPositionIdError,
    OrdersStillOpenError,
    PermissionDeniedError,
    PositionsStillOpenError,
    RetryPolicy,
)
from frontoffice_async.testing import (
    Fault,
    FaultKind,
    FaultPlan,
    FrontOfficeSimulator,
    HubFault,
)
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from ..support import FAST, SECOND_ACCOUNT_ID, client_for

FIRST = "685a7eaa360f9e7416221a61"


def book(
    sim: FrontOfficeSimulator, *, orders: int, positions: int, stops: int
) -> dict[str, list[str]]:
    """Orders, positions (CFD and Perpetual) and stop orders on both accounts; the stop
    order ids per account."""
    stop_ids: dict[str, list[str]] = {}
    for account in sim.account_ids:
        sim.add_orders(orders, account_id=account)
        sim.add_positions(positions // 2, account_id=account, market_id="cfd.btc_usd")
        sim.add_positions(
            positions - positions // 2, account_id=account, market_id="perp.eth_usdt"
        )
        stop_ids[account] = sim.add_stop_orders(stops, account_id=account)
    return stop_ids


def assert_flat(sim: FrontOfficeSimulator) -> None:
    assert sim.open_order_ids() == []
    assert sim.open_position_ids() == []
    assert sim.open_stop_order_ids() == []


def bulk_closes(sim: FrontOfficeSimulator) -> list[Any]:
    return [r for r in sim.requests if r.endpoint == "close_all_positions"]


async def test_the_issues_scenario_ends_verified_with_everything_accounted_for(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """2 accounts x (500 orders, 50 positions, 20 stop orders), 10% REST faults, a stop-out
    order created mid-run, one bulk close applied whose answer is lost."""
    sim = frontoffice_simulator
    stops = book(sim, orders=500, positions=50, stops=20)
    was_open = set(sim.open_order_ids())
    sim.stop_out_on_close(FIRST, count=1)
    rates = dict.fromkeys(
        [FaultKind.RATE_LIMITED, FaultKind.SERVER_ERROR, FaultKind.UNAVAILABLE, FaultKind.RESET],
        0.025,
    )
    sim.faults = FaultPlan(
        rates=rates,
        scripts={"close_all_positions": [Fault.lost_response()]},
        endpoints={"cancel_order", "cancel_stop_order", "close_all_positions"},
        retry_after=None,
        seed=21,
    )
    outcomes: list[CancelOutcome[Any]] = []
    async with client_for(sim, retry=FAST) as client:
        result = await client.flatten(
            accounts="all", stop_order_ids=stops, rounds=4, on_outcome=outcomes.append
        )

    assert result.verified, result.as_dict()
    result.raise_for_failures()
    assert_flat(sim)
    stop_outs = {i for i, o in sim.orders.items() if o.reason == "StopOut"}
    assert stop_outs  # the stop-out happened mid-run, and was cancelled too
    cancelled = {o.order_id for o in outcomes if o.ok}
    # Every order that was open, stop-outs included, has its outcome; so has each stop order.
    assert was_open | stop_outs <= {o.order_id for o in outcomes}
    assert was_open | stop_outs <= cancelled | {
        o.order_id for o in outcomes if o.not_active or o.not_found
    }
    for account, ids in stops.items():
        assert {o.order_id for o in result.accounts[account].stop_orders} == set(ids)
    # A bulk close is sent once per round that still saw positions (a 429 refuses it: resent).
    for account, flat in result.accounts.items():
        sent = [r for r in bulk_closes(sim) if r.account_id == account and r.status != 429]
        assert len(sent) == flat.positions.rounds
    first = result.accounts[FIRST].positions
    # The lost answer: no acknowledgement, an error kept, and the next round's snapshot found
    # the positions gone (the close had been applied): no second bulk close.
    assert first.rounds == 1 and first.accepted == () and first.verified
    assert [type(e).__name__ for e in first.errors] == ["APIConnectionError"]


async def test_a_position_that_never_closes_is_named(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    sim.add_orders(5)
    positions = sim.add_positions(3, market_id="cfd.btc_usd")
    stuck = positions[1]
    sim.faults = FaultPlan(scripts={stuck: [Fault.not_applied()] * 10})
    async with client_for(sim) as client:
        result = await client.flatten(market_id="cfd.btc_usd", rounds=2)
    assert sim.open_position_ids() == [stuck]
    account = result.accounts[FIRST]
    assert not result.verified and not account.verified
    assert [p.position_id for p in account.positions.remaining] == [stuck]
    assert set(account.positions.accepted) == set(positions)  # accepted is not proof
    with pytest.raises(FlattenError) as caught:
        result.raise_for_failures()
    [still_open] = caught.value.accounts[FIRST]
    assert isinstance(still_open, PositionsStillOpenError)
    assert [p.position_id for p in still_open.positions] == [stuck]
    assert still_open.account_id == FIRST


async def test_one_forbidden_account_leaves_the_others_alone(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    book(sim, orders=20, positions=4, stops=0)
    sim.forbid_account(SECOND_ACCOUNT_ID)
    async with client_for(sim) as client:
        result = await client.flatten(accounts="all")
    first, second = result.accounts[FIRST], result.accounts[SECOND_ACCOUNT_ID]
    assert first.verified
    assert sim.open_order_ids(FIRST) == [] and sim.open_position_ids(FIRST) == []
    assert not second.verified and second.error is not None
    assert sim.open_order_ids(SECOND_ACCOUNT_ID)  # nothing could be done there
    with pytest.raises(FlattenError) as caught:
        result.raise_for_failures()
    assert list(caught.value.accounts) == [SECOND_ACCOUNT_ID]


async def test_a_refused_token_stops_sending_on_that_account(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    sim.add_orders(100)
    sim.faults = FaultPlan(sequence=[Fault.response(403)] * 200, endpoints={"cancel_order"})
    async with client_for(sim, concurrency=8) as client:
        result = await client.flatten()
    account = result.accounts[FIRST]
    assert isinstance(account.error, PermissionDeniedError)
    assert len([r for r in sim.requests if r.endpoint == "cancel_order"]) <= 8
    assert account.orders.rounds == 1  # no second round of refused requests


@pytest.mark.parametrize(
    ("script", "posts"),
    [
        pytest.param([Fault.rate_limited(retry_after=0.01)], 2, id="429-is-resent"),
        pytest.param([Fault.server_error()], 1, id="500-is-not"),
        pytest.param([Fault.reset()], 1, id="reset-after-sending-is-not"),
        pytest.param([Fault.lost_response()], 1, id="lost-answer-is-not"),
    ],
)
async def test_a_bulk_close_is_resent_only_when_it_surely_did_not_reach_the_platform(
    frontoffice_simulator: FrontOfficeSimulator, script: list[Fault], posts: int
) -> None:
    sim = frontoffice_simulator
    sim.add_positions(3)
    sim.faults = FaultPlan(scripts={"close_all_positions": script})
    async with client_for(sim) as client:
        with contextlib.suppress(FrontOfficeError):  # the error is not what is tested here
            await client.close_all_positions()
    assert len(bulk_closes(sim)) == posts


async def test_a_close_that_could_not_connect_is_sent_once_it_can() -> None:
    sim = FrontOfficeSimulator()
    await sim.start()
    try:
        sim.add_positions(2)
        url, token = sim.url, sim.token
        await sim.close()  # nothing listens: the POST never leaves
        async with FrontOfficeClient(
            url, token=token, account_id=FIRST, retry=RetryPolicy(max_attempts=2, base_delay=0)
        ) as client:
            with pytest.raises(APIConnectionError) as caught:
                await client.close_all_positions()
        assert caught.value.attempts == 0  # resent (twice tried), never sent
    finally:
        await sim.close()


async def test_dry_run_reads_and_sends_nothing(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    stops = book(sim, orders=4, positions=2, stops=1)
    async with client_for(sim) as client:
        result = await client.flatten(accounts="all", stop_order_ids=stops, dry_run=True)
    assert not result.verified and result.dry_run
    assert {r.endpoint for r in sim.requests} == {"accounts", "hub"}  # no cancel, no close
    for flat in result.accounts.values():
        assert len(flat.orders.remaining) == 4 and len(flat.positions.remaining) == 2


async def test_keep_positions_leaves_them_alone(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    sim.add_orders(3)
    kept = sim.add_positions(2)
    async with client_for(sim) as client:
        result = await client.flatten(close_positions=False)
    assert result.verified  # what was asked: orders
    assert sim.open_position_ids() == kept
    assert not result.accounts[FIRST].positions.checked


async def test_bad_arguments_send_nothing(frontoffice_simulator: FrontOfficeSimulator) -> None:
    sim = frontoffice_simulator
    async with client_for(sim) as client:
        with pytest.raises(InvalidOrderIdError):
            await client.flatten(stop_order_ids=[""])
        with pytest.raises(ValueError, match="account"):
            await client.flatten(accounts=[FIRST, SECOND_ACCOUNT_ID], stop_order_ids=["A"])
        with pytest.raises(ValueError, match="not flattened"):
            await client.flatten(stop_order_ids={SECOND_ACCOUNT_ID: ["A"]})
        with pytest.raises(ValueError, match="rounds"):
            await client.flatten(rounds=0)
        with pytest.raises(InvalidPositionIdError):
            await client.close_position("a/../b\n")
    assert sim.requests == []


async def test_the_journal_tells_the_run_and_never_the_token(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    stops = book(sim, orders=3, positions=2, stops=1)
    sim.faults = FaultPlan(scripts={"close_all_positions": [Fault.server_error()]})
    journal = io.StringIO()
    began = datetime.now(UTC).replace(microsecond=0)
    async with client_for(sim) as client:
        result = await client.flatten(accounts="all", stop_order_ids=stops, journal=journal)
    ended = datetime.now(UTC)
    lines = journal.getvalue().splitlines()
    events = [json.loads(line) for line in lines]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run" and kinds[-1] == "summary"
    # Every event's time: UTC to the millisecond, in order, within the run.
    times = [e["time"] for e in events]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t) for t in times)
    stamps = [datetime.fromisoformat(t) for t in times]
    assert stamps == sorted(stamps) and began <= stamps[0] and stamps[-1] <= ended
    assert {"snapshot", "request", "outcome", "round"} <= set(kinds)
    assert events[-1]["verified"] is result.verified is True
    failed = [e for e in events if e["event"] == "request" and e["status"] == 500]
    assert failed and failed[0]["path"] == "/frontoffice/api/v4/positions/bulk-close"
    streams = {(e["account"], e["stream"]) for e in events if e["event"] == "snapshot"}
    assert {s for _, s in streams} == {"OpenOrders", "OpenPositions"}
    assert sim.token not in journal.getvalue()


async def test_stop_orders_given_for_an_account_no_longer_listed_are_tried_not_fatal(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    # accounts="all" with stop orders given by account (as the guard holds them since it
    # armed): an account the listing no longer shows is tried and reported, and every listed
    # account is flattened, instead of a ValueError that stops them all.
    sim = frontoffice_simulator
    stops = book(sim, orders=2, positions=0, stops=1)
    gone = "0123456789abcdef01234567"  # closed since: the platform does not list it
    given = {**stops, gone: ["01K2PF9XS29WN4JZRHMCTTQYJB"]}
    async with client_for(sim) as client:
        result = await client.flatten(accounts="all", stop_order_ids=given)
    assert all(result.accounts[a].verified for a in sim.account_ids)
    assert sim.open_order_ids() == [] and sim.open_stop_order_ids() == []
    unlisted = result.accounts[gone]
    assert not unlisted.verified and unlisted.error is not None
    assert [o.order_id for o in unlisted.stop_orders] == given[gone]  # an outcome, failed


async def test_journal_fields_come_first_in_the_run_event_and_may_not_replace_its_own(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    sim = frontoffice_simulator
    book(sim, orders=1, positions=0, stops=0)
    journal = io.StringIO()
    async with client_for(sim) as client:
        with pytest.raises(ValueError, match=r"\['rounds'\]"):
            await client.flatten(journal=journal, journal_fields={"rounds": 9})
        assert journal.getvalue() == "" and sim.requests == []  # refused before anything
        await client.flatten(journal=journal, journal_fields={"trigger": "manual", "n": 1})
    run = json.loads(journal.getvalue().splitlines()[0])
    assert list(run)[:5] == ["event", "time", "trigger", "n", "version"]
    assert run["trigger"] == "manual" and run["call"] == "flatten"


# --- the promise under random faults -----------------------------------------------------------

_KINDS = [
    FaultKind.RATE_LIMITED,
    FaultKind.SERVER_ERROR,
    FaultKind.UNAVAILABLE,
    FaultKind.RESET,
    FaultKind.LOST_RESPONSE,
    FaultKind.NOT_APPLIED,
]
_HUB = [HubFault.close(), HubFault.split(pages=3), HubFault.empty_first(), HubFault.drop()]


@pytest.mark.parametrize("seed", range(16))
async def test_flatten_is_verified_with_empty_books_or_names_what_is_open(
    frontoffice_simulator: FrontOfficeSimulator, seed: int
) -> None:
    rng = random.Random(4000 + seed)
    sim = frontoffice_simulator
    stops: dict[str, list[str]] = {}
    for account in sim.account_ids:
        sim.add_orders(rng.randint(0, 30), account_id=account)
        if rng.random() < 0.7:
            sim.add_positions(rng.randint(1, 6), account_id=account)
        stops[account] = sim.add_stop_orders(rng.randint(0, 3), account_id=account)
    if rng.random() < 0.5:
        sim.stop_out_on_close(rng.choice(sim.account_ids), count=rng.randint(1, 3))
    kinds = rng.sample(_KINDS, k=rng.randint(1, 3))
    sim.faults = FaultPlan(
        rates=dict.fromkeys(kinds, rng.uniform(0.0, 0.3) / len(kinds)),
        hub=[rng.choice([*_HUB, None]) for _ in range(rng.randint(0, 4))],
        positions_hub=[rng.choice([*_HUB, None]) for _ in range(rng.randint(0, 3))],
        endpoints={"cancel_order", "cancel_stop_order", "close_all_positions"},
        retry_after=None,
        seed=seed,
    )
    async with client_for(sim, retry=FAST) as client:
        result = await client.flatten(accounts="all", stop_order_ids=stops, rounds=3)

    if result.verified:
        # Verified means nothing is open: no order, no position; and no stop order given,
        # but one the platform answered "Cancelled" without cancelling (NOT_APPLIED). Nothing
        # lists stop orders, so no client can see that lie (docs/flatten.md says so).
        assert sim.open_order_ids() == [] and sim.open_position_ids() == []
        assert set(sim.open_stop_order_ids()) <= lied_about(sim)
        result.raise_for_failures()
        return
    with pytest.raises(FlattenError) as caught:
        result.raise_for_failures()
    for account, flat in result.accounts.items():
        if flat.verified:
            assert sim.open_order_ids(account) == [] and sim.open_position_ids(account) == []
            continue
        assert account in caught.value.accounts
        _assert_named(sim, account, flat, caught.value.accounts[account])


def lied_about(sim: FrontOfficeSimulator) -> set[str]:
    """Stop orders whose last cancel was answered "Cancelled" while nothing changed."""
    last: dict[str, Any] = {}
    for request in sim.requests:
        if request.endpoint == "cancel_stop_order" and request.order_id is not None:
            last[request.order_id] = request
    return {i for i, r in last.items() if r.fault is FaultKind.NOT_APPLIED}


def _assert_named(
    sim: FrontOfficeSimulator, account: str, flat: AccountFlatten, errors: Sequence[Any]
) -> None:
    """What is open on an unverified account is named by its errors (an error that stopped
    the account says nothing more can be known)."""
    if flat.error is not None:
        assert flat.error in errors
        return
    named_orders = {
        o.order_id for e in errors if isinstance(e, BulkCancelError) for o in e.outcomes
    }
    for e in errors:
        for inner in getattr(e, "exceptions", [e]):
            if isinstance(inner, OrdersStillOpenError):
                named_orders |= {o.order_id for o in inner.orders}
    named_positions = {
        p.position_id
        for e in errors
        if isinstance(e, PositionsStillOpenError)
        for p in e.positions
    }
    assert set(sim.open_order_ids(account)) <= named_orders
    assert set(sim.open_position_ids(account)) <= named_positions
    still_live = set(sim.open_stop_order_ids(account)) - lied_about(sim)
    failed_stops = {o.order_id for o in flat.stop_orders.failed}
    assert still_live & {o.order_id for o in flat.stop_orders} <= failed_stops


# --- a journal survives the process ------------------------------------------------------------

_KILLED_RUN = """
import asyncio, sys
from frontoffice_async import FrontOfficeClient

async def main() -> None:
    url, token, journal = sys.argv[1:4]
    async with FrontOfficeClient(url, token=token, account_id="685a7eaa360f9e7416221a61",
                                 concurrency=4) as client:
        await client.flatten(accounts="all", journal=journal)

asyncio.run(main())
"""


async def test_a_journal_of_a_run_killed_mid_way_parses_line_by_line(
    frontoffice_simulator_factory: SimulatorFactory, tmp_path: Path
) -> None:
    sim = await frontoffice_simulator_factory(latency=0.01)
    book(sim, orders=300, positions=4, stops=0)
    journal = tmp_path / "run.jsonl"
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KILLED_RUN, sim.url, sim.token, str(journal)
    )
    try:
        for _ in range(500):  # until the run is well under way
            await asyncio.sleep(0.02)
            if journal.exists() and journal.read_text().count("\n") > 40:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    text = journal.read_text()
    assert text.endswith("\n")  # every line was written whole
    events = [json.loads(line) for line in text.splitlines()]  # each line parses
    assert events[0]["event"] == "run"
    assert "summary" not in {e["event"] for e in events}  # it was killed before the end
    assert {"request", "outcome"} <= {e["event"] for e in events}
    assert sim.token not in text
    assert oct(journal.stat().st_mode & 0o777) == "0o600"
