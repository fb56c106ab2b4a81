"""The simulated state a test sets up, and the checks of what it passes.

`FrontOfficeSimulator`'s scene-setting methods (add orders and positions, activate a stop
order, arm a stop-out, forbid an account, issue tokens) check their arguments and act here;
the simulator keeps the server and the documentation.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from frontoffice_async.testing import _arguments as args
from frontoffice_async.testing._book import OrderBook
from frontoffice_async.testing._order import OrderKind, check_field
from frontoffice_async.testing._position_book import PositionBook
from frontoffice_async.testing._tokens import TokenRegistry

__all__ = ["Scene"]


class Scene:
    """Accounts, orders, positions, tokens, forbidden accounts and armed stop-outs."""

    def __init__(self, account_ids: tuple[str, ...], seed: int) -> None:
        self.account_ids = account_ids
        self.tokens = TokenRegistry(seed)
        self.book = OrderBook(seed)
        self.positions = PositionBook(seed)
        #: Accounts that answer 403 (`forbid_account`); endpoints read it live.
        self.forbidden: set[str] = set()
        #: Account id -> orders the next accepted position close there places itself.
        self.stop_outs: dict[str, int] = {}
        #: Set when the simulator starts closing: nothing may change any more.
        self.closed = False

    def check_open(self, what: str) -> None:
        """Raise RuntimeError once the simulator is closed."""
        if self.closed:
            raise RuntimeError(
                f"this FrontOfficeSimulator is closed: {what} would change a simulator that "
                "serves no one; its orders, positions, requests and stats can still be read"
            )

    def account(self, account_id: object, *, name: str = "account_id") -> str:
        """A known account id; None means the default (first) account."""
        if account_id is None:
            return self.account_ids[0]
        checked = args.check_account_id(name, account_id)
        if checked not in self.account_ids:
            raise ValueError(f"unknown account id {checked!r}; known: {self.account_ids}")
        return checked

    def add_orders(
        self,
        kind: OrderKind,
        count: int,
        account_id: str | None,
        market_id: str,
        side: str | None,
        status: str,
        order_ids: Sequence[str] | None,
    ) -> list[str]:
        """Check the arguments of `add_orders`/`add_stop_orders`, then add."""
        self.check_open(f"add_{'stop_' if kind == 'stop' else ''}orders()")
        args.check_count(count)
        account = self.account(account_id)
        args.check_side(side)
        check_field("market_id", market_id)
        check_field("status", status)
        if order_ids is None:
            ids = [self.book.new_id() for _ in range(count)]
        else:
            ids = args.check_order_ids(order_ids, count)
        orders = self.book.create(
            ids, kind=kind, account_id=account, market_id=market_id, side=side, status=status
        )
        return [order.order_id for order in orders]

    def add_positions(
        self,
        count: int,
        account_id: str | None,
        market_id: str,
        side: str | None,
        lot_amount: object,
        position_ids: Sequence[str] | None,
    ) -> list[str]:
        """Check the arguments of `add_positions`, then open them."""
        self.check_open("add_positions()")
        args.check_count(count)
        account = self.account(account_id)
        market = args.check_position_market(market_id)
        chosen_side = args.check_side(side)
        lots = args.check_lot_amount(lot_amount)
        if position_ids is None:
            ids = [self.positions.new_id() for _ in range(count)]
        else:
            ids = args.check_ids("position_ids", position_ids, count)
        created = self.positions.create(
            ids, account_id=account, market_id=market, side=chosen_side, lot_amount=lots
        )
        return [position.position_id for position in created]

    def activate_stop_order(self, order_id: object) -> str:
        """Check, then trigger a waiting stop order; the id of the order it places."""
        self.check_open("activate_stop_order()")
        if not isinstance(order_id, str):
            raise TypeError(f"order_id must be a str, got {type(order_id).__name__}")
        stop = self.book.orders.get(order_id)
        if stop is None or stop.kind != "stop":
            raise KeyError(order_id)
        if not stop.is_active:
            raise ValueError(
                f"stop order {order_id!r} is {stop.status}: only a WaitingForActivation one "
                "can be activated"
            )
        return self.book.activate(stop).order_id

    def stop_out_on_close(self, account_id: str | None, count: int) -> None:
        """Arm (or with `count=0` disarm) a stop-out on an account."""
        self.check_open("stop_out_on_close()")
        account = self.account(account_id)
        self.stop_outs[account] = args.check_count(count)

    def forbid(self, account_id: str, *, forbidden: bool) -> None:
        """Add the account to the forbidden ones, or take it out."""
        self.check_open("forbid_account()" if forbidden else "allow_account()")
        if account_id is None:  # the default account is no default here
            raise TypeError("account_id: an account id must be a str, got NoneType")
        account = self.account(account_id)
        if forbidden:
            self.forbidden.add(account)
        else:
            self.forbidden.discard(account)

    def issue_token(self, account_ids: Iterable[str] | None) -> str:
        """Check, then issue a token owning `account_ids` (None: every account)."""
        self.check_open("issue_token()")
        if account_ids is None:
            accounts = self.account_ids
        else:
            accounts = args.check_account_ids("account_ids", account_ids)
        for account_id in accounts:
            self.account(account_id, name="account_ids")
        return self.tokens.issue(accounts)

    def revoke_token(self, token: object) -> None:
        """Check, then revoke `token`."""
        self.check_open("revoke_token()")
        if not isinstance(token, str):
            raise TypeError(f"token must be a str, got {type(token).__name__}")
        self.tokens.revoke(token)
