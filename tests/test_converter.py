"""The converter: every sample field by field, timestamps, nulls, unknown enums, bad values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from frontoffice_async import (
    Account,
    AccountType,
    OpenOrder,
    Order,
    OrderSide,
    OrderSource,
    OrderStatus,
    OrderType,
    PositionsCloseAck,
    PriceTrigger,
    ResponseValidationError,
    StopOrder,
    StopOrderStatus,
    TimeInForce,
)
from frontoffice_async._converter import decode, structure, structure_list, to_plain

from .support import sample


def loads(body: bytes) -> Any:
    """A body parsed the way the client parses it: exact decimals."""
    return decode(body.decode())


def order_json(name: str = "cancel_order_200.json") -> dict[str, Any]:
    data = loads(sample(name))
    assert isinstance(data, dict)
    order = data["order"]
    assert isinstance(order, dict)
    return order


def stream_items() -> list[Any]:
    """The `item` of each stream-item message in the recorded hub session."""
    text = sample("open_orders_stream.txt").decode()
    records = [
        r for line in text.splitlines() if not line.startswith("#") for r in line.split("\x1e")
    ]
    messages = [json.loads(r) for r in records if r.strip()]
    return [m["item"] for m in messages if m.get("type") == 2]


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def test_documented_cancel_example_field_by_field() -> None:
    order = structure(order_json(), Order)
    assert order == Order(
        market_id="spot.eth_usdt",
        market_display_name="SPOT ETH/USDT",
        order_id="01K2PF9XS29WN4JZRHMCTTQYJB",
        order_type=OrderType.LIMIT,
        side=OrderSide.BUY,
        status=OrderStatus.CANCELLED,
        source=OrderSource.MANUAL,
        time_in_force=TimeInForce.GTC,
        commission=Decimal("0"),
        requested_amount=Decimal("0.1"),
        remaining_amount=Decimal("0.1"),
        requested_price=Decimal("4450"),
        execution_price=Decimal("0"),
        created_at=utc(2025, 8, 15, 8, 59, 51, 970000),
        updated_at=utc(2025, 8, 15, 9, 0, 6, 279104),
        reject_details="",
        cancellation_date=None,
        fill_factor=Decimal("0"),
    )
    assert not order.is_active
    assert order.created_at.tzinfo is UTC


def test_partial_fill_sample_nulls_and_extra_keys() -> None:
    order = structure(order_json("cancel_order_partial_fill_200.json"), Order)
    assert order.order_id == "01K3ZQ7M4T8B2W6XNAE1R5CDFH"
    assert order.order_type is OrderType.MARKET
    assert order.side is OrderSide.SELL
    assert order.source is OrderSource.FIX_API
    assert order.time_in_force is TimeInForce.IOC
    assert order.commission == Decimal("1.2375")
    assert order.requested_amount == Decimal("2.5")
    assert order.remaining_amount == Decimal("0.75")
    assert order.requested_price is None
    assert order.execution_price == Decimal("64210.55")
    assert order.created_at == utc(2025, 9, 2, 14, 3, 11, 899000)
    assert order.updated_at == utc(2025, 9, 2, 14, 3, 12, 0)
    assert order.cancellation_date == utc(2025, 9, 2, 14, 3, 12)
    assert order.reject_details is None
    assert order.fill_factor == Decimal("0.7")


def test_unknown_enum_values_become_stable_pseudo_members() -> None:
    order = structure(order_json("cancel_order_unknown_enums_200.json"), Order)
    assert order.status == "PendingCancel"
    assert order.status.is_unknown
    assert isinstance(order.status, OrderStatus)
    assert OrderStatus("PendingCancel") is order.status
    assert order.source == "Api" and order.source.is_unknown
    assert order.order_type == "StopLimit" and order.order_type.is_unknown
    assert not OrderStatus.CANCELLED.is_unknown
    assert "unknown" in repr(order.status)
    assert order.reject_details is None  # absent key
    assert order.cancellation_date == utc(2025, 10, 31, 23, 59, 59, 999999)
    assert not order.is_active


def test_stop_order_sample() -> None:
    order = structure(order_json("cancel_stop_order_200.json"), StopOrder)
    assert order == StopOrder(
        market_id="perp.btc_usdt",
        market_display_name="PERP BTC/USDT",
        order_id="01K2Q0B7JW5V9P3E8TZMX4RGKA",
        order_type=OrderType.LIMIT,
        side=OrderSide.SELL,
        requested_price=Decimal("61000"),
        activation_price=Decimal("61500"),
        requested_amount=Decimal("0.05"),
        time_in_force=TimeInForce.GTC,
        status=StopOrderStatus.CANCELLED,
        created_at=utc(2025, 8, 20, 10, 15, 0, 500000),
        updated_at=utc(2025, 8, 20, 11, 2, 41, 331200),
        cancellation_date=utc(2025, 8, 20, 11, 2, 41, 331200),
    )


def test_accounts_sample() -> None:
    accounts = structure_list(loads(sample("accounts_200.json")), Account)
    assert accounts == [
        Account(
            account_id="685a7eaa360f9e7416221a61",
            account_name="Main",
            account_type=AccountType.HEDGING,
            total_balance_in_rat=Decimal("25013.57"),
            is_copy_trading_account=False,
        ),
        Account(
            account_id="685a7eaa360f9e7416221a62",
            account_name="Scalping",
            account_type=AccountType.NETTING,
            total_balance_in_rat=Decimal("0"),
            is_copy_trading_account=True,
            public_account_id=100234,
        ),
    ]


def test_open_orders_stream_items() -> None:
    snapshot, update = stream_items()
    orders = structure_list(snapshot, OpenOrder)
    assert [o.order_id for o in orders] == ["01K2PF9XS29WN4JZRHMCTTQYJB"]
    first = orders[0]
    assert first.market_type == "Spot"
    assert first.market_full_name == "Ethereum / Tether"
    assert first.status is OrderStatus.PENDING and first.is_active
    assert first.commission_asset_id == "usdt"
    assert first.commission_amount == Decimal("0")
    assert first.leverage == Decimal("1")
    assert first.take_profit is None and first.stop_loss is None
    cfd = structure(update, OpenOrder)
    assert cfd.take_profit == PriceTrigger(price=Decimal("60000"), is_trailing=False)
    assert cfd.leverage == Decimal("10")
    assert cfd.fill_factor == Decimal("0.7")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-08-15T08:59:51.970Z", utc(2025, 8, 15, 8, 59, 51, 970000)),  # 3 digits
        ("2025-08-15T09:00:06.2791048Z", utc(2025, 8, 15, 9, 0, 6, 279104)),  # 7 digits
        ("2025-08-15T09:00:06.279104899Z", utc(2025, 8, 15, 9, 0, 6, 279104)),  # 9 digits
        ("2025-08-15T09:00:06Z", utc(2025, 8, 15, 9, 0, 6)),
        ("2025-08-15T11:00:06+02:00", utc(2025, 8, 15, 9, 0, 6)),  # normalised to UTC
        ("2025-08-15T09:00:06", utc(2025, 8, 15, 9, 0, 6)),  # naive: the API speaks UTC
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    data = order_json() | {"updatedAt": text}
    updated = structure(data, Order).updated_at
    assert updated == expected
    assert updated.utcoffset() == timedelta(0)


def test_absent_and_null_optionals_are_none() -> None:
    data = order_json()
    data["requestedPrice"] = None
    del data["rejectDetails"]
    del data["cancellationDate"]
    order = structure(data, Order)
    assert order.requested_price is None
    assert order.reject_details is None
    assert order.cancellation_date is None


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("requestedAmount", "abc", "not a decimal: 'abc'"),
        ("requestedAmount", True, "expected a decimal string, got bool"),
        ("requestedAmount", {"v": 1}, "expected a decimal string, got dict"),
        ("requestedAmount", "NaN", "not a finite decimal"),
        ("createdAt", "yesterday", "not an ISO-8601 timestamp"),
        ("createdAt", 1723712391, "expected an ISO-8601 timestamp, got int"),
        ("status", 3, "expected a string, got int"),
        ("marketId", None, "expected a string, got NoneType"),
        ("orderId", ["x"], "expected a string, got list"),
    ],
)
def test_bad_values_name_the_wire_key(key: str, value: object, message: str) -> None:
    data = order_json() | {key: value}
    with pytest.raises(ResponseValidationError) as caught:
        structure(data, Order, path="order", url="http://h/x", body=b"{...}")
    error = caught.value
    assert error.path == f"order.{key}"
    assert message in error.message
    assert f"order.{key}" in str(error)
    assert error.url == "http://h/x"
    assert error.body == "{...}"


@pytest.mark.parametrize("key", ["requestedAmount", "createdAt"])
def test_a_bad_value_is_quoted_whole_or_not_at_all_and_no_cattrs_tree_hangs_on(key: str) -> None:
    # A value cut short could end in part of a token: no later masking could recognise it.
    secret = "s3cr3t-" + "x" * 80
    with pytest.raises(ResponseValidationError) as caught:
        structure(order_json() | {key: "bad " + secret}, Order, path="order")
    error = caught.value
    assert "a string of 91 characters" in error.message
    assert "s3cr3t" not in error.message
    # cattrs' tree quotes raw values: it is neither the cause nor the context.
    assert error.__cause__ is None
    assert error.__context__ is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ABC", "expected an array of strings, got a string"),
        ({"P1": 1}, "expected an array of strings, got an object"),
        (["P1", 2], "expected a string, got int"),
    ],
)
def test_position_ids_must_be_an_array_of_strings(value: object, message: str) -> None:
    # cattrs iterates any iterable: "ABC" would be three positions the platform never named.
    with pytest.raises(ResponseValidationError, match=message):
        structure({"status": "accepted", "positionIds": value}, PositionsCloseAck)
    ack = structure({"status": "accepted", "positionIds": ["P1"]}, PositionsCloseAck)
    assert ack.position_ids == ("P1",)


def test_missing_required_field() -> None:
    data = order_json()
    del data["side"]
    with pytest.raises(ResponseValidationError, match="required field is missing") as caught:
        structure(data, Order, path="order")
    assert caught.value.path == "order.side"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (b"0.1", "0.1"),
        (b"12", "12"),
        (b"1e-8", "1E-8"),
        (b"64210.55", "64210.55"),
        (b"0.12345678901234567890123", "0.12345678901234567890123"),  # beyond a float
    ],
)
def test_json_numbers_become_exact_decimals(number: bytes, expected: str) -> None:
    body = sample("cancel_order_200.json").replace(b'"0.1"', number, 1)
    order = structure(loads(body)["order"], Order)
    assert order.requested_amount == Decimal(expected)
    assert str(order.requested_amount) == expected


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_non_json_constants_are_refused(literal: bytes) -> None:
    with pytest.raises(ValueError, match="is not a JSON value"):
        loads(b'{"v": ' + literal + b"}")


def test_not_an_object() -> None:
    with pytest.raises(ResponseValidationError, match="expected an object, got null") as caught:
        structure(None, Order, path="order")
    assert caught.value.path == "order"
    with pytest.raises(ResponseValidationError, match="expected an array") as caught_list:
        structure_list({"a": 1}, Account)
    assert caught_list.value.path == ""
    with pytest.raises(ResponseValidationError) as caught_item:
        structure_list([loads(sample("accounts_200.json"))[0], 5], Account)
    assert caught_item.value.path == "[1]"


def test_nested_path_in_open_order() -> None:
    bad = {"price": "x"}
    item = stream_items()[1] | {"takeProfit": bad}
    with pytest.raises(ResponseValidationError) as caught:
        structure(item, OpenOrder, path="item")
    assert caught.value.path == "item.takeProfit.price"


def test_as_dict_of_a_record_is_snake_case_and_exact() -> None:
    plain = to_plain(structure(order_json(), Order))
    assert plain["order_id"] == "01K2PF9XS29WN4JZRHMCTTQYJB"
    assert plain["requested_amount"] == "0.1"
    assert plain["status"] == "Cancelled"
    assert plain["updated_at"] == "2025-08-15T09:00:06.279104Z"
    assert plain["requested_price"] == "4450"
    account = structure_list(loads(sample("accounts_200.json")), Account)[0]
    assert to_plain(account)["total_balance_in_rat"] == "25013.57"


decimals = st.decimals(allow_nan=False, allow_infinity=False, places=8)
datetimes = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(amount=decimals, when=datetimes)
def test_decimals_and_timestamps_read_exactly(amount: Decimal, when: datetime) -> None:
    wire = order_json() | {
        "requestedAmount": format(amount, "f"),
        "createdAt": when.isoformat().replace("+00:00", "Z"),
    }
    order = structure(json.loads(json.dumps(wire)), Order)
    assert order.requested_amount == amount
    assert order.requested_amount.as_tuple() == Decimal(format(amount, "f")).as_tuple()
    assert order.created_at == when
    assert order == attrs.evolve(
        structure(order_json(), Order), requested_amount=amount, created_at=when
    )


@given(offset_minutes=st.integers(min_value=-14 * 60, max_value=14 * 60), when=datetimes)
def test_any_offset_becomes_utc(offset_minutes: int, when: datetime) -> None:
    local = when.astimezone(timezone(timedelta(minutes=offset_minutes)))
    parsed = structure(order_json() | {"createdAt": local.isoformat()}, Order).created_at
    assert parsed == when
    assert parsed.tzinfo is UTC


def test_every_record_has_as_dict() -> None:
    order = structure(order_json(), Order)
    assert order.as_dict() == to_plain(order)
    assert order.as_dict()["created_at"].endswith("Z")
    account = structure_list(loads(sample("accounts_200.json")), Account)[0]
    assert account.as_dict()["total_balance_in_rat"] == "25013.57"
    item = stream_items()[1] | {"takeProfit": {"price": "5000.5", "isTrailing": True}}
    open_order = structure(item, OpenOrder)
    assert open_order.as_dict()["take_profit"] == {"price": "5000.5", "is_trailing": True}
    assert open_order.take_profit is not None
    assert open_order.take_profit.as_dict() == {"price": "5000.5", "is_trailing": True}
    stop = structure(loads(sample("cancel_stop_order_200.json"))["order"], StopOrder)
    assert stop.as_dict()["activation_price"] == "61500"
    assert json.loads(json.dumps(open_order.as_dict())) == open_order.as_dict()


def _asdict_by_attrs(record: Any) -> Any:
    """What `to_plain` must equal: attrs' own `asdict` with the same value rules."""

    def plain(_: object, __: object, value: Any) -> Any:
        if isinstance(value, Decimal | OrderStatus | StopOrderStatus | AccountType):
            return str(value)
        if isinstance(value, OrderSide | OrderType | TimeInForce | OrderSource):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat().replace("+00:00", "Z")
        return value

    return attrs.asdict(record, value_serializer=plain)


def test_to_plain_is_attrs_asdict_without_its_cost() -> None:
    records: list[Any] = [
        structure(order_json(name), Order)
        for name in (
            "cancel_order_200.json",
            "cancel_order_partial_fill_200.json",
            "cancel_order_unknown_enums_200.json",
        )
    ]
    records.append(structure(loads(sample("cancel_stop_order_200.json"))["order"], StopOrder))
    records += structure_list(loads(sample("accounts_200.json")), Account)
    item = stream_items()[1] | {"takeProfit": {"price": "5000.5", "isTrailing": True}}
    records.append(structure(item, OpenOrder))
    records.append(
        structure({"status": "accepted", "positionIds": ["P1", "P2"]}, PositionsCloseAck)
    )
    for record in records:
        assert to_plain(record) == _asdict_by_attrs(record), type(record).__name__
        assert list(to_plain(record)) == [f.name for f in attrs.fields(type(record))]
