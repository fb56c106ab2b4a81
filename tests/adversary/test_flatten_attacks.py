"""Adversary: flatten's promises under hostile callers and platforms.

Promises (design.md, docs/flatten.md): every id gets exactly one outcome; a result with
`verified=True` means nothing given, listed or shown is still open.
"""

from __future__ import annotations

import asyncio
from typing import Any

from frontoffice_async import CancelOutcome, FrontOfficeClient, FrontOfficeError
from frontoffice_async.testing import FrontOfficeSimulator

from ._platform import (
    ACCOUNT,
    EMPTY_ORDERS,
    EMPTY_POSITIONS,
    TOKEN,
    Platform,
    item,
    json_response,
    open_order,
)


async def test_an_on_outcome_raising_cancelled_error_leaves_stop_orders_live_but_verified(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """A progress hook that raises a `CancelledError` nobody asked for (it reads `.result()`
    of a future that was cancelled: an everyday asyncio mistake). design.md: "A broken
    progress hook must not stop the other cancels", and a `CancelledError` the caller did not
    ask for is an error of its source, never a reason to return with fewer outcomes.

    Expected: all 8 stop orders cancelled, or the ones left named (not verified).
    Happened: the pool's `keep` (`_stop/pool.py`, `cancel_orders.keep`) catches only
    `Exception`, so the `CancelledError` escapes `_Pool._work` after `_sink`; the worker task
    ends as "cancelled", which the TaskGroup ignores, and the ids it would have taken are never
    taken. With `concurrency=2`, each round cancels 2 stop orders; the rest get no outcome at
    all, `stop_orders.failed` is empty, and flatten returns `verified=True` while 2 stop orders
    given are still `WaitingForActivation` on the platform."""
    sim = frontoffice_simulator
    account = sim.account_ids[0]
    stops = sim.add_stop_orders(8)
    gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    gone.cancel()

    def hook(outcome: CancelOutcome[Any]) -> None:
        gone.result()  # raises CancelledError: the hook is broken, nobody cancelled anything

    async with FrontOfficeClient(sim.url, token=sim.token, account_id=account) as client:
        result = await client.flatten(stop_order_ids=stops, concurrency=2, on_outcome=hook)
    left = sim.open_stop_order_ids(account)
    given = {o.order_id for o in result.accounts[account].stop_orders}
    assert not (result.verified and left), f"verified=True with stop orders still live: {left}"
    assert given == set(stops), f"{len(stops) - len(given)} stop orders given got no outcome"


async def test_a_dry_run_calls_an_account_with_live_stop_orders_given_verified(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The same hole by the dry run's door: the account has nothing on its streams but 2
    stop orders given, still waiting. A dry run sends nothing, so they have no outcome, and
    `AccountFlatten.verified` (`bulk.py`), which checks `not self.stop_orders.failed` rather
    than "every stop order given ended cancelled, not active or not found" (its own docstring),
    says True: `frontoffice flatten --dry-run --json` prints `"verified": true` for an account
    whose stop orders would still fire. Expected: the account not verified."""
    sim = frontoffice_simulator
    account = sim.account_ids[0]
    stops = sim.add_stop_orders(2)
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=account) as client:
        result = await client.flatten(stop_order_ids=stops, dry_run=True)
    assert sim.open_stop_order_ids(account) == stops  # nothing was sent: right
    flat = result.accounts[account]
    assert not flat.verified, "an account with live stop orders given is 'verified'"


async def test_one_odd_account_id_in_the_listing_stops_every_account() -> None:
    """`flatten(accounts="all")` on a desk whose account listing holds one account id the
    client cannot put in a header (a space in it: a platform or a migration bug). docs/flatten.md:
    "One account's error never stops another"; the guard runs exactly this call when the bot
    dies. Expected: the good account's open order cancelled, the odd account reported with its
    error (not verified). Happened: `FrontOfficeClient._list_accounts` (`client.py`) runs
    `self._calls.account_for(a)` over every listed id, and the first odd one raises
    InvalidAccountIdError out of flatten before any account is touched: the good account's
    order stays open and no result says so."""
    order = open_order("01K2PF9XS29WN4JZRHMCTTQYJB")
    cancelled = dict(order, status="Cancelled", commission="0", rejectDetails=None)
    platform = Platform(
        streams={
            "OpenOrders": [[item([order])], EMPTY_ORDERS],
            "OpenPositions": [EMPTY_POSITIONS],
        }
    )
    platform.rest[("GET", "/frontoffice/api/v3/accounts")] = json_response(
        [account_record(ACCOUNT), account_record("Desk 2 (migrated)")]
    )
    platform.rest[("DELETE", "/frontoffice/api/v3/orders/")] = json_response({"order": cancelled})
    await platform.start()
    try:
        async with FrontOfficeClient(platform.url, token=TOKEN, account_id=ACCOUNT) as client:
            try:
                result = await client.flatten(accounts="all")
            except FrontOfficeError as error:
                cancels = [r for r in platform.requests if r[0] == "DELETE"]
                raise AssertionError(
                    f"flatten raised {error!r}; cancels sent to the good account: {cancels}"
                ) from None
    finally:
        await platform.aclose()
    assert result.accounts[ACCOUNT].verified
    assert not result.verified


def account_record(account_id: str) -> dict[str, Any]:
    return {
        "accountId": account_id,
        "accountName": "Main",
        "accountType": "Hedging",
        "totalBalanceInRAT": "10000",
        "isCopyTradingAccount": False,
    }
