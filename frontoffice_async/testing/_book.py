"""The simulator's order book: orders and stop orders of every account, and change events."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs

from frontoffice_async.testing import _wire
from frontoffice_async.testing._order import OrderKind, SimulatedOrder, check_field
from frontoffice_async.testing._placement import Placement
from frontoffice_async.testing._ulid import IdSequence

__all__ = ["OrderBook"]

_COMMISSION_RATE = Decimal("0.001")
# Fields `update_order` never changes, and why.
_FIXED_FIELDS = {
    "order_id": "an order keeps its id",
    "kind": "an order never becomes a stop order, nor the reverse",
    "account_id": (
        "platform orders never move between accounts; add one to the other account with "
        "add_orders(account_id=...)"
    ),
}


def _now() -> datetime:
    return datetime.now(UTC)


OrderListener = Callable[[SimulatedOrder], None]


class OrderBook:
    """All orders of all accounts, with deterministic ids and per-account change listeners.

    Only plain orders are announced to listeners: stop orders are not OpenOrders items.
    """

    def __init__(self, seed: int) -> None:
        self._ids = IdSequence(seed, "order-id")
        self._orders: dict[str, SimulatedOrder] = {}
        self._listeners: dict[str, list[OrderListener]] = {}

    @property
    def orders(self) -> Mapping[str, SimulatedOrder]:
        """Every order, by id, in creation order."""
        return self._orders

    def new_id(self) -> str:
        """A fresh 26-character ULID-like id, the same sequence for the same seed."""
        return self._ids.next(self._orders)

    def create(
        self,
        ids: Iterable[str],
        *,
        kind: OrderKind,
        account_id: str,
        market_id: str,
        side: str | None,
        status: str,
    ) -> list[SimulatedOrder]:
        """Add resting limit orders (or stop orders) with believable prices.

        An id that already exists is a ValueError, and then none is added.
        """
        ids = list(ids)
        taken = [order_id for order_id in ids if order_id in self._orders]
        if taken:
            raise ValueError(f"order id {taken[0]!r} already exists")
        reference = _wire.reference_price(market_id)
        created: list[SimulatedOrder] = []
        for index, order_id in enumerate(ids):
            order_side = side if side is not None else ("Buy", "Sell")[index % 2]
            step = Decimal(index % 5 + 1) / 100
            # Resting orders sit away from the market: bids below, asks above.
            away = (1 - step) if order_side == "Buy" else (1 + step)
            now = _now()
            order = SimulatedOrder(
                order_id=order_id,
                account_id=account_id,
                kind=kind,
                market_id=market_id,
                market_display_name=_wire.market_display_name(market_id),
                side=order_side,
                status=status,
                requested_amount=Decimal("0.05") if kind == "stop" else Decimal("0.1"),
                remaining_amount=Decimal("0.05") if kind == "stop" else Decimal("0.1"),
                requested_price=reference if kind == "stop" else (reference * away).normalize(),
                activation_price=(reference * (2 - away)).normalize() if kind == "stop" else None,
                created_at=now,
                updated_at=now,
            )
            if kind == "order" and status == "Completed":
                _fill(order, order.requested_price or reference)
            self._orders[order_id] = order
            created.append(order)
            self._announce(order)
        return created

    def place(
        self, placement: Placement, *, account_id: str, store: bool = True
    ) -> SimulatedOrder:
        """A new order from the place-order endpoint: Limit rests, Market fills at once.

        With `store=False` the order is built (and its id spent) but not kept or announced:
        an answer that claims what did not happen.
        """
        now = _now()
        order = SimulatedOrder(
            order_id=self.new_id(),
            account_id=account_id,
            market_id=placement.market_id,
            market_display_name=_wire.market_display_name(placement.market_id),
            side=placement.side,
            order_type=placement.order_type,
            time_in_force=placement.time_in_force,
            status="Pending",
            requested_amount=placement.requested_amount,
            remaining_amount=placement.requested_amount,
            requested_price=placement.requested_price,
            created_at=now,
            updated_at=now,
        )
        if placement.order_type == "Market":
            _fill(order, _wire.reference_price(placement.market_id))
        if store:
            self._keep(order)
        return order

    def place_stop(
        self, placement: Placement, *, account_id: str, store: bool = True
    ) -> SimulatedOrder:
        """A new stop order from a place-stop-order endpoint, waiting for its price."""
        assert placement.activation_price is not None  # a stop placement always has one
        now = _now()
        stop = SimulatedOrder(
            order_id=self.new_id(),
            account_id=account_id,
            kind="stop",
            market_id=placement.market_id,
            market_display_name=_wire.market_display_name(placement.market_id),
            side=placement.side,
            order_type=placement.order_type,
            time_in_force=placement.time_in_force,
            status="WaitingForActivation",
            requested_amount=placement.requested_amount,
            remaining_amount=placement.requested_amount,
            requested_price=placement.requested_price,
            activation_price=placement.activation_price,
            created_at=now,
            updated_at=now,
            # A Gtd stop order's expiry: the record's only date field that can hold it.
            cancellation_date=placement.cancellation_date,
        )
        if store:
            self._keep(stop)
        return stop

    def activate(self, stop: SimulatedOrder) -> SimulatedOrder:
        """Trigger a waiting stop order: it becomes Activated and places a new order.

        The new order has its own id and `source="StopOrder"`; a Limit one rests (Pending)
        at the stop order's price, a Market one is executing (Working), so both are active
        and show on OpenOrders until filled or cancelled.
        """
        now = _now()
        stop.status = "Activated"
        stop.updated_at = now
        is_limit = stop.order_type == "Limit"
        order = SimulatedOrder(
            order_id=self.new_id(),
            account_id=stop.account_id,
            market_id=stop.market_id,
            market_display_name=stop.market_display_name,
            side=stop.side,
            order_type=stop.order_type,
            time_in_force=stop.time_in_force,
            status="Pending" if is_limit else "Working",
            requested_amount=stop.requested_amount,
            remaining_amount=stop.requested_amount,
            requested_price=stop.requested_price if is_limit else None,
            created_at=now,
            updated_at=now,
            source="StopOrder",
        )
        self._keep(order)
        return order

    def stop_out(
        self, *, account_id: str, market_id: str, side: str, amount: Decimal, count: int
    ) -> list[SimulatedOrder]:
        """Orders the platform places itself in a stop-out: Market orders still executing
        (Working, so active and cancellable), `source="System"`, `reason="StopOut"`."""
        created = []
        for _ in range(count):
            now = _now()
            order = SimulatedOrder(
                order_id=self.new_id(),
                account_id=account_id,
                market_id=market_id,
                market_display_name=_wire.market_display_name(market_id),
                side=side,
                order_type="Market",
                status="Working",
                requested_amount=amount,
                remaining_amount=amount,
                requested_price=None,
                created_at=now,
                updated_at=now,
                source="System",
                reason="StopOut",
            )
            self._keep(order)
            created.append(order)
        return created

    def find(self, order_id: str, *, account_id: str, kind: OrderKind) -> SimulatedOrder | None:
        """The order a cancel request names, or None where the platform would answer 404."""
        order = self._orders.get(order_id)
        if order is None or order.account_id != account_id or order.kind != kind:
            return None
        return order

    def cancel(self, order: SimulatedOrder) -> None:
        """Mark an active order cancelled now."""
        now = _now()
        order.status = "Cancelled"
        order.updated_at = now
        order.cancellation_date = now
        self._announce(order)

    @staticmethod
    def cancelled_copy(order: SimulatedOrder) -> SimulatedOrder:
        """The order as a cancel would leave it, without changing it (nor telling anyone)."""
        now = _now()
        return attrs.evolve(order, status="Cancelled", updated_at=now, cancellation_date=now)

    def update(self, order_id: str, changes: Mapping[str, Any]) -> SimulatedOrder:
        """Change fields of an order, bump `updated_at` and tell the listeners.

        Every change is checked before any is applied: KeyError for an unknown id, TypeError
        for a field that cannot change, TypeError or ValueError (naming the field) for a bad
        value; then nothing has changed. A new `market_id` brings its display name along
        unless `market_display_name` is given too.
        """
        order = self._orders[order_id]
        fields = attrs.fields_dict(SimulatedOrder)
        checked: dict[str, Any] = {}
        for name, value in changes.items():
            if name in _FIXED_FIELDS:
                raise TypeError(f"update_order() cannot change {name!r}: {_FIXED_FIELDS[name]}")
            if name not in fields:
                raise TypeError(f"update_order() got an unknown field {name!r}")
            checked[name] = check_field(name, value)
        if "market_id" in checked and "market_display_name" not in checked:
            checked["market_display_name"] = _wire.market_display_name(checked["market_id"])
        checked.setdefault("updated_at", _now())
        for name, value in checked.items():
            setattr(order, name, value)  # checked already: cannot fail half-way
        self._announce(order)
        return order

    def open_orders(
        self, account_id: str | None = None, *, kind: OrderKind = "order"
    ) -> list[SimulatedOrder]:
        """Active orders (or waiting stop orders), of one account or of all, in creation
        order."""
        return [
            order
            for order in self._orders.values()
            if order.kind == kind
            and order.is_active
            and (account_id is None or order.account_id == account_id)
        ]

    def subscribe(self, account_id: str, listener: OrderListener) -> Callable[[], None]:
        """Call `listener` on every later change of a plain order of `account_id`.

        Returns the function that unsubscribes it.
        """
        listeners = self._listeners.setdefault(account_id, [])
        listeners.append(listener)

        def unsubscribe() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return unsubscribe

    def _keep(self, order: SimulatedOrder) -> None:
        self._orders[order.order_id] = order
        self._announce(order)

    def _announce(self, order: SimulatedOrder) -> None:
        if order.kind != "order":
            return
        # A copy: a listener may unsubscribe while we iterate.
        for listener in list(self._listeners.get(order.account_id, ())):
            listener(order)


def _fill(order: SimulatedOrder, price: Decimal) -> None:
    order.status = "Completed"
    order.remaining_amount = Decimal(0)
    order.fill_factor = Decimal(1)
    order.execution_price = price
    order.commission = (order.requested_amount * price * _COMMISSION_RATE).normalize()
