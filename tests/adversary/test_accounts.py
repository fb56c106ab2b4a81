"""Adversary: what `accounts="all"` does with a hostile account listing.

Promises (flatten.md): "verified" means nothing is open on the accounts flattened (the
`accounts=[]` case is refused: "accounts is empty: nothing to flatten"); a close is a POST,
never sent twice unless it surely did not reach the platform (or a 429).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from frontoffice_async import FrontOfficeClient, ResponseValidationError
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator


def account(account_id: str) -> dict[str, Any]:
    return {
        "accountId": account_id,
        "accountName": "Main",
        "accountType": "Hedging",
        "totalBalanceInRAT": "1",
        "isCopyTradingAccount": False,
    }


def listing(sim: FrontOfficeSimulator, accounts: list[dict[str, Any]]) -> None:
    body = json.dumps(accounts).encode()
    sim.faults = FaultPlan(sequence=[Fault.response(200, body)], endpoints={"accounts"})


async def test_an_empty_account_listing_is_not_a_verified_flatten(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """The platform lists no account (a glitch, a token scoped wrongly): flatten("all") checks
    nothing and reports `verified=True`; raise_for_failures() is silent. The client's own
    account still has 5 open orders and 3 open positions."""
    sim = frontoffice_simulator
    sim.add_orders(5)
    sim.add_positions(3)
    listing(sim, [])
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=sim.account_ids[0]) as c:
        with pytest.raises(ResponseValidationError, match="lists no account"):
            await c.flatten(accounts="all")  # never "verified" over nothing
    assert sim.open_order_ids() and sim.open_position_ids()


async def test_an_account_listed_twice_is_flattened_once(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """`list_accounts()` shows the same account twice: `_accounts_for("all")` does not
    de-duplicate (ids given by the caller are), so two runs flatten the same account at once:
    two bulk-close POSTs in the same round (a non-idempotent close sent twice) and every
    cancel sent twice; the result keeps only one of the runs."""
    sim = frontoffice_simulator
    main = sim.account_ids[0]
    sim.add_orders(5)
    sim.add_positions(3)
    listing(sim, [account(main), account(main)])
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=main) as c:
        result = await c.flatten(accounts="all")
    assert list(result.accounts) == [main]
    closes = [r for r in sim.requests if r.endpoint == "close_all_positions"]
    cancels = [r for r in sim.requests if r.endpoint == "cancel_order"]
    assert len(closes) == 1, f"{len(closes)} bulk-close POSTs for one account in one round"
    assert len(cancels) == 5, f"{len(cancels)} cancels for 5 orders"
