"""Checks of the values a simulated record stores, each raising TypeError/ValueError naming it.

Orders and positions check every field when it is set, so a bad value raises where a test
wrote it instead of breaking every later hub connection that would have to send it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["Check", "decimal", "integer", "is_text", "moment", "nullable", "text"]

#: A field check: `check(name, value)` returns the value to store or raises naming `name`.
Check = Callable[[str, object], Any]

# The largest value of .NET's decimal, which the platform's amounts and prices are; it also
# holds at most 28 decimal places. Nothing beyond can come from the platform, and a value
# such as 1E+999999999 would take gigabytes to write out.
_DOTNET_DECIMAL_MAX = Decimal("79228162514264337593543950335")
_DOTNET_DECIMAL_PLACES = 28
# .NET's int, which the platform's leverage is.
_INT32_MAX = 2**31 - 1


def text(name: str, value: object) -> str:
    """A non-empty str UTF-8 can carry (any other text is allowed on purpose)."""
    if type(value) is str and value and value.isascii():  # the usual case, first
        return value
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if not is_text(value):
        raise ValueError(f"{name} {value!r} holds a lone surrogate, which UTF-8 cannot carry")
    return value


def is_text(value: str) -> bool:
    """Whether UTF-8 can carry `value`: not if it holds a lone surrogate (`"\\ud800"`)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def decimal(name: str, value: object) -> Decimal:
    """A finite Decimal that fits .NET's decimal; an int, float or decimal str is converted."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float | str):
        raise TypeError(
            f"{name} must be a Decimal (an int, float or decimal str is converted), "
            f"got {type(value).__name__}"
        )
    try:
        # str() of a float is its shortest form: 0.1 becomes Decimal("0.1"), not 0.1000...055.
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name}: {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)  # finite numbers have an int exponent
    # copy_abs(), not abs(): abs() rounds to the context and overflows on 1E+999999999.
    if number.copy_abs() > _DOTNET_DECIMAL_MAX or -exponent > _DOTNET_DECIMAL_PLACES:
        raise ValueError(
            f"{name} {value!r} does not fit the platform's decimal "
            f"(|x| <= {_DOTNET_DECIMAL_MAX}, at most {_DOTNET_DECIMAL_PLACES} decimal places)"
        )
    return number


def integer(name: str, value: object) -> int:
    """A positive int that fits .NET's int (a leverage)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 1 <= value <= _INT32_MAX:
        raise ValueError(f"{name} must be 1..{_INT32_MAX}, got {value!r}")
    return value


def moment(name: str, value: object) -> datetime:
    """A datetime, stored in UTC; a naive one is taken as UTC."""
    if type(value) is datetime and value.tzinfo is UTC:  # the usual case, first
        return value
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        return value.replace(tzinfo=UTC)  # naive: taken as UTC, as everywhere in the simulator
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{name} {value!r} is out of range in UTC") from None


def nullable(check: Check) -> Check:
    """`check`, which also lets None through."""

    def nullable_check(name: str, value: object) -> Any:
        return None if value is None else check(name, value)

    return nullable_check
