"""What `simulate` and `demo` put on the simulator: orders, positions and stop orders, spread
evenly over its accounts (and markets, and sides), a chunk at a time.

Made a chunk at a time, letting the loop run in between: Ctrl-C must not wait for a big
`--orders` to be set up.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from frontoffice_async.testing import FrontOfficeSimulator

__all__ = ["spread_orders", "spread_positions", "spread_stop_orders"]

ORDER_MARKETS = ("spot.eth_usdt", "spot.btc_usdt")
#: Positions exist on CFD and Perpetual markets only.
POSITION_MARKETS = ("cfd.btc_usd", "perp.eth_usdt")
STOP_ORDER_MARKETS = ("perp.btc_usdt",)
_CHUNK = 2000  # records added between two turns of the event loop


async def spread_orders(sim: FrontOfficeSimulator, total: int) -> list[str]:
    """`total` open orders over the accounts, two SPOT markets and both sides."""
    made = await _spread(sim, total, ORDER_MARKETS, "orders")
    return [i for ids in made.values() for i in ids]


async def spread_positions(sim: FrontOfficeSimulator, total: int) -> dict[str, list[str]]:
    """`total` open positions over the accounts, a CFD and a Perpetual market and both
    sides; their ids per account."""
    return await _spread(sim, total, POSITION_MARKETS, "positions")


async def spread_stop_orders(sim: FrontOfficeSimulator, total: int) -> dict[str, list[str]]:
    """`total` stop orders waiting for their price, over the accounts and both sides; their
    ids per account (no endpoint lists them: this is how a user learns them)."""
    return await _spread(sim, total, STOP_ORDER_MARKETS, "stop orders")


async def _spread(
    sim: FrontOfficeSimulator, total: int, markets: tuple[str, ...], kind: str
) -> dict[str, list[str]]:
    accounts = list(sim.account_ids)
    # Accounts vary fastest: a few records still reach every account.
    slots = [(a, m, s) for m in markets for s in ("Buy", "Sell") for a in accounts]
    made: dict[str, list[str]] = {a: [] for a in accounts}
    for index, (account, market, side) in enumerate(slots):
        n = total // len(slots) + (index < total % len(slots))
        while n > 0:
            chunk = min(n, _CHUNK)
            if kind == "orders":
                ids = sim.add_orders(chunk, account_id=account, market_id=market, side=side)
            elif kind == "positions":
                ids = sim.add_positions(chunk, account_id=account, market_id=market, side=side)
            else:
                ids = sim.add_stop_orders(chunk, account_id=account, market_id=market, side=side)
            made[account] += ids
            n -= chunk
            await asyncio.sleep(0)
    return made
