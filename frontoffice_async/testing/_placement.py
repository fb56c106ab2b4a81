"""Reading a place-order or place-stop-order body: the fields, or the 400's `errors`.

Pure functions, as ASP.NET Core's model validation: every bad field is named at once, keyed
by its JSON path (`order.requestedAmount`). Decimals come as strings or numbers (the
platform's own examples send numbers where its field lists say strings).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import attrs

from frontoffice_async.testing import _fields

__all__ = ["SIDES", "Placement", "parse_order", "parse_stop_order", "positive_decimal"]

SIDES = ("Buy", "Sell")
_ORDER_TYPES = ("Market", "Limit")
_TIMES_IN_FORCE = ("Gtc", "Ioc", "Fok", "Gtd", "Day")

#: The validation errors of a 400, by JSON path.
Errors = dict[str, list[str]]


@attrs.frozen(kw_only=True)
class Placement:
    """What a valid place body asks for."""

    market_id: str
    side: str
    order_type: str
    time_in_force: str
    #: Base amount (SPOT) or lots (Perpetual).
    requested_amount: Decimal
    #: None for a Market order.
    requested_price: Decimal | None
    #: Stop orders only: the price that triggers them.
    activation_price: Decimal | None = None
    #: Gtd stop orders only: when they expire.
    cancellation_date: datetime | None = None


def parse_order(body: object) -> Placement | Errors:
    """`POST /v3/orders`: `{"order": {marketId, side, orderType, timeInForce,
    requestedAmount, requestedPrice}}`."""
    fields, errors = _order_fields(body)
    if fields is None:
        return errors
    return _common(fields, errors, amount_key="requestedAmount")


def parse_stop_order(body: object, *, perpetual: bool) -> Placement | Errors:
    """A stop order: SPOT (`/v3/stop-orders`) or Perpetual (`/perpetual/v4/stop-orders`).

    Both carry `activationPrice` and, for Gtd, `cancellationDate`; Perpetual has
    `requestedLotAmount` instead of `requestedAmount`, and optional `leverage` (an int),
    `stopLoss` and `takeProfit` (null or a positive decimal), which are checked, not kept.
    """
    fields, errors = _order_fields(body)
    if fields is None:
        return errors
    activation = positive_decimal(fields.get("activationPrice"))
    if activation is None:
        errors["order.activationPrice"] = ["The activationPrice must be a positive decimal."]
    expiry = _timestamp(fields.get("cancellationDate"))
    if fields.get("timeInForce") == "Gtd" and expiry is None:
        errors["order.cancellationDate"] = ["A Gtd order needs a cancellationDate timestamp."]
    elif fields.get("cancellationDate") is not None and expiry is None:
        errors["order.cancellationDate"] = ["The cancellationDate must be a timestamp."]
    if perpetual:
        leverage = fields.get("leverage")
        if leverage is not None:
            try:
                _fields.integer("leverage", leverage)
            except (TypeError, ValueError):
                errors["order.leverage"] = ["The leverage must be a positive integer."]
        for key in ("stopLoss", "takeProfit"):
            if fields.get(key) is not None and positive_decimal(fields[key]) is None:
                errors[f"order.{key}"] = [f"The {key} must be null or a positive decimal."]
    placement = _common(
        fields, errors, amount_key="requestedLotAmount" if perpetual else "requestedAmount"
    )
    if isinstance(placement, dict):
        return placement
    return attrs.evolve(
        placement,
        activation_price=activation,
        cancellation_date=expiry if fields.get("timeInForce") == "Gtd" else None,
    )


def _order_fields(body: object) -> tuple[dict[str, object] | None, Errors]:
    fields = body.get("order") if isinstance(body, dict) else None
    if not isinstance(fields, dict):
        return None, {"order": ["The order field is required."]}
    return fields, {}


def _common(fields: dict[str, object], errors: Errors, *, amount_key: str) -> Placement | Errors:
    market_id = fields.get("marketId")
    if not isinstance(market_id, str) or not market_id.strip() or not _fields.is_text(market_id):
        errors["order.marketId"] = ["The marketId field is required."]
    for key, allowed in (
        ("side", SIDES),
        ("orderType", _ORDER_TYPES),
        ("timeInForce", _TIMES_IN_FORCE),
    ):
        if fields.get(key) not in allowed:
            errors[f"order.{key}"] = [f"The {key} field must be one of {', '.join(allowed)}."]
    amount = positive_decimal(fields.get(amount_key))
    if amount is None:
        errors[f"order.{amount_key}"] = [f"The {amount_key} must be a positive decimal."]
    price = positive_decimal(fields.get("requestedPrice"))
    is_limit = fields.get("orderType") == "Limit"
    if is_limit and price is None:
        errors["order.requestedPrice"] = ["A Limit order needs a positive requestedPrice."]
    if errors:
        return errors
    assert isinstance(market_id, str)
    assert amount is not None
    return Placement(
        market_id=market_id,
        side=str(fields["side"]),
        order_type=str(fields["orderType"]),
        time_in_force=str(fields["timeInForce"]),
        requested_amount=amount,
        requested_price=price if is_limit else None,
    )


def positive_decimal(value: object) -> Decimal | None:
    """A positive amount or price that fits the platform's decimal, else None (a 400)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = _fields.decimal("amount", value)
    except ValueError:  # not a number, not finite, or beyond .NET's decimal
        return None
    return number if number > 0 else None


def _timestamp(value: object) -> datetime | None:
    """An ISO-8601 timestamp (a naive one is UTC), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
        if moment.utcoffset() is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a timestamp, or out of range in UTC
        return None
