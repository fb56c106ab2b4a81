"""Checks of what a test passes to `FrontOfficeSimulator`, with messages naming the argument.

Tokens and account ids must be what the platform issues and a client can send: plain ASCII
without spaces or control characters. The simulator refuses the others at once, rather than
serving values every client refuses (or a command line prints an environment it rejects).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from decimal import Decimal

from frontoffice_async.testing import _fields
from frontoffice_async.testing._position import POSITION_MARKETS
from frontoffice_async.testing.faults import FaultPlan

__all__ = [
    "MAX_ACCOUNT_ID_LENGTH",
    "check_account_id",
    "check_account_ids",
    "check_accounts",
    "check_count",
    "check_host",
    "check_ids",
    "check_lot_amount",
    "check_order_ids",
    "check_plan",
    "check_port",
    "check_position_market",
    "check_seconds",
    "check_seed",
    "check_side",
    "check_token",
]

#: The longest account id a client sends (the client library's limit).
MAX_ACCOUNT_ID_LENGTH = 128


def _is_plain(text: str) -> bool:
    """Printable ASCII without spaces: what fits a header or a query string as it is."""
    return text.isascii() and text.isprintable() and " " not in text


def check_token(name: str, token: object) -> str:
    """`token` if the platform could have issued it; the message never shows the token."""
    if not isinstance(token, str):
        raise TypeError(f"{name} must be a str or None, got {type(token).__name__}")
    if not token:
        raise ValueError(f"{name} must not be empty")
    if not _is_plain(token):
        raise ValueError(
            f"{name} must be plain ASCII without spaces or control characters, "
            "as the platform's tokens are (a client refuses to send anything else)"
        )
    return token


def check_account_id(name: str, account_id: object) -> str:
    """`account_id` if a client can send it in the `accountId` header."""
    if not isinstance(account_id, str):
        raise TypeError(f"{name}: an account id must be a str, got {type(account_id).__name__}")
    if not 1 <= len(account_id) <= MAX_ACCOUNT_ID_LENGTH:
        raise ValueError(
            f"{name}: an account id must be 1 to {MAX_ACCOUNT_ID_LENGTH} characters, "
            f"got {len(account_id)}"
        )
    if not _is_plain(account_id):
        raise ValueError(
            f"{name}: account id {account_id[:40]!r} holds spaces, control or non-ASCII "
            "characters; the platform's are plain ASCII (a client refuses to send these)"
        )
    return account_id


def check_account_ids(name: str, account_ids: object) -> tuple[str, ...]:
    """A collection of account ids as a tuple; a single str is refused, not split."""
    if isinstance(account_ids, str):
        raise TypeError(f"{name} must be a collection of account ids, not one str")
    if not isinstance(account_ids, Iterable):
        raise TypeError(
            f"{name} must be a collection of account ids, got {type(account_ids).__name__}"
        )
    return tuple(check_account_id(name, account_id) for account_id in account_ids)


def check_accounts(accounts: Sequence[str]) -> tuple[str, ...]:
    """The constructor's `accounts`: at least one, no repeats, each a plain account id."""
    account_ids = check_account_ids("accounts", accounts)
    if not account_ids:
        raise ValueError("accounts must name at least one account id")
    if len(set(account_ids)) != len(account_ids):
        raise ValueError("accounts must not repeat an account id")
    return account_ids


def check_seconds(name: str, value: float, *, allow_zero: bool) -> None:
    """A finite, non-negative number of seconds (positive unless `allow_zero`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}")


def check_seed(seed: object) -> int:
    """The seed ids and tokens derive from: an int."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return seed


def check_host(host: object) -> str:
    """The interface to listen on: a non-empty str such as `127.0.0.1` or `::1`."""
    if not isinstance(host, str):
        raise TypeError(f"host must be a str such as '127.0.0.1', got {type(host).__name__}")
    if not host.strip():
        raise ValueError("host must not be empty; '127.0.0.1' listens on loopback only")
    return host


def check_port(port: object) -> int:
    """A TCP port, 0 for a free one."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be 0..65535, got {port!r}")
    return port


def check_count(count: object) -> int:
    """How many orders to add: an int >= 0."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(f"count must be an int >= 0, got {count!r}")
    return count


def check_order_ids(order_ids: object, count: int) -> list[str]:
    """Order ids of the caller's choosing: see `check_ids`."""
    return check_ids("order_ids", order_ids, count)


def check_ids(name: str, ids: object, count: int) -> list[str]:
    """Ids of the caller's choosing: exactly `count` distinct non-empty strs, any text UTF-8
    can carry."""
    what = name.removesuffix("s").replace("_", " ")
    if isinstance(ids, str) or not isinstance(ids, Iterable):
        raise TypeError(f"{name} must be a list of {what}s, got {type(ids).__name__}")
    chosen = list(ids)
    if len(chosen) != count:
        raise ValueError(f"{name} has {len(chosen)} ids but count is {count}")
    if any(not isinstance(i, str) or not i for i in chosen) or len(set(chosen)) != len(chosen):
        raise ValueError(f"{name} must be distinct, non-empty strings")
    for chosen_id in chosen:
        _fields.text(name.removesuffix("s"), chosen_id)  # and text UTF-8 can carry
    return chosen


def check_side(side: object) -> str | None:
    """`Buy`, `Sell`, or None (alternate)."""
    if side not in (None, "Buy", "Sell"):
        raise ValueError(f"side must be 'Buy', 'Sell' or None, got {side!r}")
    return side


def check_position_market(market_id: object) -> str:
    """A market that holds positions: `cfd.<base>_<quote>` or `perp.<base>_<quote>`."""
    market = _fields.text("market_id", market_id)
    if market.partition(".")[0].lower() not in POSITION_MARKETS or "." not in market:
        raise ValueError(
            f"market_id {market!r} holds no positions: positions exist on CFD ('cfd.') and "
            "Perpetual ('perp.') markets, e.g. 'cfd.btc_usd' or 'perp.eth_usdt'"
        )
    return market


def check_lot_amount(lot_amount: object) -> Decimal:
    """A positive number of lots: a Decimal, or an int, float or decimal str converted."""
    lots = _fields.decimal("lot_amount", lot_amount)
    if lots <= 0:
        raise ValueError(f"lot_amount must be positive, got {lot_amount!r}")
    return lots


def check_plan(plan: FaultPlan | None) -> FaultPlan:
    """The fault plan in force: None means none."""
    if plan is None:
        return FaultPlan()
    if not isinstance(plan, FaultPlan):
        raise TypeError(f"faults must be a FaultPlan or None, got {type(plan).__name__}")
    return plan
