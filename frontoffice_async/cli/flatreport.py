"""How a flatten is shown to a person: what a dry run would do, what a run did, the verdict.

Everything is read from the library's `FlattenResult`, except the stop orders of a dry run:
no endpoint lists stop orders, so a dry run cannot read them and shows the ids it was given.
Every line fits 80 columns: tables through `output`'s renderer, a verdict or an account's error
wrapped between words, a failed id's line clipped (the whole is in `--json`). `flatten` and
`demo` both use it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import output

if TYPE_CHECKING:
    from frontoffice_async import AccountFlatten, BulkCancelResult, FlattenResult

__all__ = [
    "Plan",
    "StopIds",
    "count",
    "is_flat",
    "nothing_line",
    "plan_of",
    "print_dry_run",
    "print_flatten",
    "question",
    "verdict",
]

#: The stop-order ids given, per account (none can be listed: only these are cancelled).
StopIds = Mapping[str, Sequence[str]]


def count(n: int, noun: str) -> str:
    """`1 position`, `3 positions`, `0 positions`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a dry run found to do on one account, or on several summed (`+`)."""

    orders: int = 0
    stops: int = 0
    positions: int = 0
    unreadable: int = 0
    #: Whether positions were read (not `--keep-positions`).
    checked: bool = True
    #: Accounts whose snapshots could not be read (their error stopped them).
    failed: int = 0
    #: The error of the first of them, in a few words.
    error: str = ""

    @classmethod
    def of(cls, account: AccountFlatten, stop_ids: Sequence[str]) -> Plan:
        positions = account.positions
        return cls(
            orders=len(account.orders.remaining),
            stops=len(stop_ids),
            positions=len(positions.remaining) if positions.checked else 0,
            unreadable=len(account.orders.unreadable) + len(positions.unreadable),
            checked=positions.checked,
            failed=int(account.error is not None),
            error="" if account.error is None else output.short_error(account.error),
        )

    def __add__(self, other: Plan) -> Plan:
        return Plan(
            orders=self.orders + other.orders,
            stops=self.stops + other.stops,
            positions=self.positions + other.positions,
            unreadable=self.unreadable + other.unreadable,
            checked=self.checked or other.checked,
            failed=self.failed + other.failed,
            error=self.error or other.error,
        )

    @property
    def empty(self) -> bool:
        """Nothing to cancel or close, nothing unreadable, no error: flat already."""
        return not (self.orders or self.stops or self.positions or self.unreadable or self.failed)

    def words(self) -> str:
        """E.g. `3 open orders, 2 stop orders, 1 position`."""
        parts = [count(self.orders, "open order"), count(self.stops, "stop order")]
        if self.checked:
            parts.append(count(self.positions, "position"))
        if self.unreadable:
            parts.append(f"{self.unreadable} unreadable")
        return ", ".join(parts)


def plan_of(result: FlattenResult, stops: StopIds) -> dict[str, Plan]:
    """Each account's plan, in the order asked."""
    return {a: Plan.of(acc, stops.get(a, ())) for a, acc in result.accounts.items()}


def is_flat(plans: Mapping[str, Plan]) -> bool:
    """Whether no account has anything to do (nor an error)."""
    return all(p.empty for p in plans.values())


def _where(accounts: Sequence[str]) -> str:
    if len(accounts) == 1:
        return f"account {accounts[0]}"
    return f"{len(accounts)} accounts"


def nothing_line(result: FlattenResult, market: str | None, *, dry_run: bool) -> str:
    """One line for a snapshot that shows nothing anywhere, e.g. `nothing to flatten: no open
    order or position on account 685a...`."""
    checked = any(acc.positions.checked for acc in result.accounts.values())
    what = "no open order or position" if checked else "no open order (positions left alone)"
    on = f" (market {market})" if market is not None else ""
    line = f"nothing to flatten: {what}{on} on {_where(list(result.accounts))}"
    return output.printable(("dry run: " if dry_run else "") + line)


def question(plans: Mapping[str, Plan]) -> tuple[list[str], str]:
    """The lines shown before the prompt (one per account) and the question itself."""
    lines = [
        f"  account {a}: " + (f"could not be read: {p.error}" if p.failed else p.words())
        for a, p in plans.items()
    ]
    total = sum(plans.values(), Plan(checked=False))
    cancel = [count(total.orders, "open order")] if total.orders else []
    cancel += [count(total.stops, "stop order")] if total.stops else []
    actions = [f"cancel {' and '.join(cancel)}"] if cancel else []
    actions += [f"close {count(total.positions, 'position')}"] if total.positions else []
    if not actions:  # only unreadable records or errors: the run reads again, acts on it
        actions = ["read again and act on what is open"]
    return lines, f"flatten {_where(list(plans))}: {', '.join(actions)}? [y/N] "


# --- a dry run ----------------------------------------------------------------------------------


def print_dry_run(result: FlattenResult, stops: StopIds, market: str | None) -> None:
    """Per account, once: the orders, stop orders and positions a real run would act on now."""
    plans = plan_of(result, stops)
    if is_flat(plans):
        output.say(nothing_line(result, market, dry_run=True))
        return
    total = sum(plans.values(), Plan(checked=False))
    # Each table's title names its account: one account need not be named here too.
    where = f" on {len(plans)} accounts" if len(plans) > 1 else ""
    on = f" (market {market})" if market is not None else ""
    unread = f"; {count(total.failed, 'account')} could not be read" if total.failed else ""
    output.paragraph(output.printable(f"dry run: {total.words()}{where}{on}{unread}"))
    for account_id, acc in result.accounts.items():
        _print_plan(account_id, acc, plans[account_id], stops.get(account_id, ()))


def _print_plan(account_id: str, acc: AccountFlatten, plan: Plan, stop_ids: Sequence[str]) -> None:
    name = output.printable(f"account {account_id}")
    if acc.error is not None:  # its snapshots could not be read: said once, here
        output.say(f"{name}: could not be read")
        output.paragraph(f"error: {output.short_error(acc.error)}", indent=2)
    elif plan.empty:
        output.say(f"{name}: nothing to cancel or close")
        return
    if plan.orders:
        title = f"{name}: would cancel {count(plan.orders, 'open order')}"
        output.print_orders(acc.orders.remaining, title=title)
    output.print_problems(acc.orders, remaining=False)  # listed above: only the unreadable
    if stop_ids:
        title = f"{name}: would cancel {count(len(stop_ids), 'stop order')} (the ids given)"
        output.print_table(title, ["stop order id"], [(i,) for i in stop_ids])
    if plan.positions:
        title = f"{name}: would close {count(plan.positions, 'position')}"
        output.print_positions(acc.positions.remaining, title=title)
    _print_unreadable_positions(acc)


def _print_unreadable_positions(acc: AccountFlatten) -> None:
    unreadable = acc.positions.unreadable if acc.positions.checked else []
    if unreadable:
        lines = [f"unreadable position records in the last snapshot ({len(unreadable)}):"]
        lines += [output.fitted(f"  {raw}") for raw in unreadable]
        output.say("\n".join(lines))


# --- a run --------------------------------------------------------------------------------------


def print_flatten(result: FlattenResult, market: str | None) -> None:
    """Per account its counts and what is left, then one verdict line."""
    for account_id, acc in result.accounts.items():
        _print_account(account_id, acc)
    output.paragraph(verdict(result, market))


def verdict(result: FlattenResult, market: str | None) -> str:
    """One line: were all the accounts seen flat by fresh snapshots?"""
    accounts = list(result.accounts)
    took = f"{result.elapsed:.1f} s"
    on = f" on market {market}" if market is not None else ""
    if result.verified:
        checked = any(acc.positions.checked for acc in result.accounts.values())
        alone = "" if checked else ", positions left alone"
        return output.printable(
            f"verified: fresh snapshots show {_where(accounts)} flat{on} ({took}{alone})"
        )
    left = [a for a, acc in result.accounts.items() if not acc.verified]
    if len(accounts) == 1:
        return output.printable(f"NOT verified: account {accounts[0]} may not be flat{on}")
    shown = ", ".join(left[:5]) + (", ..." if len(left) > 5 else "")
    return output.printable(
        f"NOT verified: {len(left)} of {len(accounts)} accounts may not be flat{on}: {shown}"
    )


def _print_account(account_id: str, acc: AccountFlatten) -> None:
    name = output.printable(f"account {account_id}")
    if acc.verified:
        title = f"{name}: verified"
    else:
        left = _left(acc)
        title = f"{name}: NOT verified" + (f": {', '.join(left)}" if left else "")
    rows = [_cancels("orders", acc.orders), _cancels("stop orders", acc.stop_orders)]
    positions = acc.positions
    if positions.checked:
        # An account stopped by an error may never have read its positions: not "0 open".
        unknown = acc.error is not None and not positions.verified and not positions.remaining
        still = "? still open" if unknown else f"{len(positions.remaining)} still open"
        rows.append(("positions", f"{len(positions.accepted)} accepted", still, "", ""))
    else:
        rows.append(("positions", "left alone", "", "", ""))
    output.print_table(title, None, rows, key_column=True)
    if acc.error is not None:  # said once, here: what stopped this account
        output.paragraph(f"error: {output.short_error(acc.error)}", indent=2)
    output.print_problems(acc.orders)
    output.print_problems(acc.stop_orders, remaining=False, kind="stop orders")
    if positions.checked and positions.remaining:
        title = f"positions still open ({len(positions.remaining)})"
        output.print_positions(positions.remaining, title=title)
        for error in positions.errors[:3]:  # why, most likely: closes that failed
            output.say(output.fitted(f"  close failed: {output.short_error(error)}"))
    _print_unreadable_positions(acc)


def _cancels(name: str, result: BulkCancelResult[Any]) -> tuple[str, ...]:
    if name == "stop orders" and not len(result):
        return (name, "none given", "", "", "")
    return (
        name,
        f"{len(result.cancelled)} cancelled",
        f"{len(result.not_found)} not found",
        f"{len(result.not_active)} not active",
        f"{len(result.failed)} failed",
    )


def _left(acc: AccountFlatten) -> list[str]:
    """What may still be open on an account that is not verified, in a few words."""
    orders, positions = acc.orders, acc.positions
    left = []
    if orders.remaining:
        left.append(f"{count(len(orders.remaining), 'order')} still open")
    if orders.failed:
        left.append(f"{count(len(orders.failed), 'cancel')} failed")
    if acc.stop_orders.failed:
        left.append(f"{count(len(acc.stop_orders.failed), 'stop order')} failed")
    if positions.checked and positions.remaining:
        left.append(f"{count(len(positions.remaining), 'position')} still open")
    unreadable = len(orders.unreadable) + (len(positions.unreadable) if positions.checked else 0)
    if unreadable:
        left.append(f"{unreadable} unreadable")
    if acc.error is not None and not left:
        left.append("stopped by an error")
    return left
