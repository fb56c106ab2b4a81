"""One simulated position on a CFD or Perpetual market: its fields, checked, and its wire shape.

The amounts the OpenPositions stream shows besides the stored ones (value, margin, profit and
loss) are computed from the lots and prices, so a closed position (0 lots) shows zeros.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Context, Decimal
from typing import Any

import attrs

from frontoffice_async.testing import _fields, _wire

__all__ = ["CLOSED", "OPEN", "POSITION_MARKETS", "SimulatedPosition", "check_position_field"]

#: The status of an open position, as the platform writes it.
OPEN = "Always Open"
#: The status the simulator gives a position it sends once more after closing it (our choice:
#: the platform documents no removal message).
CLOSED = "Closed"
#: Market id prefixes that hold positions, and the `marketType` the stream writes for them.
POSITION_MARKETS = {"cfd": "Cfd", "perp": "Perp"}

# Quantizing a product of two large decimals needs more digits than the default context.
_WIDE = Context(prec=100)
_MONEY = Decimal("0.00000001")
_FRACTION = Decimal("0.000001")

_CHECKS: dict[str, _fields.Check] = {
    **dict.fromkeys(
        ("position_id", "account_id", "market_id", "market_display_name", "side", "status"),
        _fields.text,
    ),
    "leverage": _fields.nullable(_fields.integer),
    **dict.fromkeys(
        ("position_lot_amount", "open_price", "current_market_price", "rate_to_rat"),
        _fields.decimal,
    ),
    **dict.fromkeys(("take_profit", "stop_loss"), _fields.nullable(_fields.decimal)),
    **dict.fromkeys(("created_at", "updated_at"), _fields.moment),
}


def check_position_field(name: str, value: object) -> Any:
    """`value` as field `name` of a `SimulatedPosition` stores it, or TypeError/ValueError."""
    return _CHECKS[name](name, value)


def _on_setattr(instance: object, attribute: attrs.Attribute[Any], value: object) -> Any:
    return check_position_field(attribute.name, value)


@attrs.define(kw_only=True, on_setattr=_on_setattr)
class SimulatedPosition:
    """A position held by the simulator, as the OpenPositions stream shows it.

    Mutable on purpose, like `SimulatedOrder`: a test may set a field directly
    (`position.current_market_price = Decimal("59000")` turns a Buy position's profit into a
    loss for a `NegativePnl` bulk close). The OpenPositions stream is not told of such a
    change: it announces new positions and closes, and shows the change in later
    snapshots and in the next item that holds the position.
    Every field is checked when it is set: str fields take a non-empty str, amounts and
    prices a finite `Decimal` (an `int`, `float` or decimal str is converted), timestamps a
    `datetime` (stored in UTC), `leverage` a positive int or None, `take_profit` and
    `stop_loss` a Decimal or None. Anything else raises TypeError or ValueError naming the
    field, and the field keeps its value.
    """

    position_id: str
    account_id: str
    market_id: str
    market_display_name: str
    #: `Buy` (long) or `Sell` (short).
    side: str
    #: `Always Open`, or `Closed` once closed (the record is kept, with 0 lots).
    status: str = OPEN
    #: The leverage of a CFD position; None on Perpetual markets (the platform sends it for
    #: CFD only).
    leverage: int | None = None
    #: Lots still open; 0 once closed.
    position_lot_amount: Decimal
    open_price: Decimal
    current_market_price: Decimal
    #: The rate from the market's quote asset to the account's currency (RAT).
    rate_to_rat: Decimal = Decimal(1)
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None
    created_at: datetime
    updated_at: datetime

    def __attrs_post_init__(self) -> None:
        # on_setattr does not run in __init__: check (and convert) every field here.
        for name, check in _CHECKS.items():
            object.__setattr__(self, name, check(name, getattr(self, name)))

    @property
    def is_open(self) -> bool:
        """Whether a close request would find it (status `Always Open`)."""
        return self.status == OPEN

    @property
    def unrealized_pnl(self) -> Decimal:
        """Profit (positive) or loss (negative) in RAT if it were closed at the current price."""
        direction = -1 if self.side == "Sell" else 1
        move = self.current_market_price - self.open_price
        return move * self.position_lot_amount * self.rate_to_rat * direction

    def to_wire(self) -> dict[str, Any]:
        """The item shape of the OpenPositions hub stream, key for key as the platform."""
        lots, rate = self.position_lot_amount, self.rate_to_rat
        cost = lots * self.open_price * rate
        pnl = self.unrealized_pnl
        fraction = pnl / cost if cost else Decimal(0)
        prefix = self.market_id.partition(".")[0].lower()
        margin_leverage = self.leverage or _wire.market_leverage(self.market_id)
        return {
            "positionId": self.position_id,
            "marketId": self.market_id,
            "marketType": POSITION_MARKETS.get(prefix, prefix.capitalize()),
            "marketDisplayName": self.market_display_name,
            "marketFullName": _wire.market_full_name(self.market_id),
            "createdAt": _wire.format_timestamp(self.created_at),
            "updatedAt": _wire.format_timestamp(self.updated_at),
            "side": self.side,
            "status": self.status,
            "leverage": self.leverage,
            "positionLotAmount": _wire.format_decimal(lots),
            "positionPriceInRAT": _money(lots * self.current_market_price * rate),
            "rateToRAT": _wire.format_decimal(rate),
            "usedMarginInRAT": _money(cost / margin_leverage),
            "openPrice": _wire.format_decimal(self.open_price),
            "currentMarketPrice": _wire.format_decimal(self.current_market_price),
            # The simulator keeps no day boundary: the day's figures are the total's.
            "unrealizedPnlDayInRAT": _money(pnl),
            "unrealizedPnlDayPercent": _fraction(fraction),
            "unrealizedPnlTotalInRAT": _money(pnl),
            "unrealizedPnlTotalPercent": _fraction(fraction),
            "takeProfit": _trigger(self.take_profit),
            "stopLoss": _trigger(self.stop_loss),
            "positionModifier": None,
        }


def _money(value: Decimal) -> str:
    return _rounded(value, _MONEY)


def _fraction(value: Decimal) -> str:
    return _rounded(value, _FRACTION)


def _rounded(value: Decimal, step: Decimal) -> str:
    # plus() turns a -0 left by rounding into 0; normalize() drops trailing zeros.
    return _wire.format_decimal(_WIDE.plus(value.quantize(step, context=_WIDE)).normalize(_WIDE))


def _trigger(price: Decimal | None) -> dict[str, Any] | None:
    if price is None:
        return None
    return {"price": _wire.format_decimal(price), "isTrailing": False}
