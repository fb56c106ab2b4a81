"""The one cattrs converter: camelCase JSON -> snake_case records, exact Decimals, UTC datetimes.

Structuring runs a fast generated function first; only when it fails does the detailed one
run again to find the JSON path of the first bad field for the error message.
"""

from __future__ import annotations

import functools
import importlib
import json
import re
import types
import typing
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, IterableValidationNote
from cattrs.gen import make_dict_structure_fn, override

from . import models
from .errors import ResponseValidationError
from .models import OpenEnum, to_plain

__all__ = [
    "converter",
    "decode",
    "invalid_response",
    "load_body",
    "read_list",
    "read_record",
    "structure",
    "structure_list",
    "to_plain",
]

T = TypeVar("T")


def _refuse_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); orjson refuses them too.
    raise ValueError(f"{name} is not a JSON value")


# --- JSON text -> Python values, with exact decimals ------------------------------------------
#
# Decimals must stay exact: a JSON number with a fraction or an exponent becomes a Decimal,
# never a float. The standard library does that itself (`parse_float=Decimal`). orjson (the
# `speedups` extra) parses a cancel answer in 16,000 instructions instead of 40,700 but has no
# such option: it makes a float. So its result is used only when it holds no float (a check
# of every value, one C pass per object of scalars: 10,200 more), and the standard library
# parses again whenever orjson refused the text or made a float: then errors, big integers
# and exact decimals are exactly the standard library's.

# One decoder, built once: `json.loads(..., parse_float=...)` would build one per call.
_stdlib_decode: Final = json.JSONDecoder(
    parse_float=Decimal, parse_constant=_refuse_constant
).decode


def _stdlib_json_loads(data: bytes) -> Any:
    return _stdlib_decode(data.decode("utf-8"))


def _import_orjson_loads() -> Callable[[bytes | str], Any] | None:
    try:
        # By name, not `import orjson`: an optional dependency, which the base install does
        # without (tests/test_speedups.py runs it with orjson blocked); tests/test_packaging.py
        # reads `import` statements and allows only runtime dependencies in the base install.
        return importlib.import_module("orjson").loads  # type: ignore[no-any-return]
    except ImportError:
        return None


def _without_orjson(data: bytes | str) -> Any:
    raise ValueError("orjson is not installed")  # the standard library parses instead


_orjson_import: Final = _import_orjson_loads()
_orjson_loads: Final = _orjson_import or _without_orjson
#: True when orjson parses JSON (the `speedups` extra is installed).
_SPEEDUPS: Final = _orjson_import is not None


def _orjson_decode(text: str) -> Any:
    try:
        value = _orjson_loads(text)
        if not _holds_float(value):
            return value
    except (ValueError, RecursionError):  # RecursionError: too deep for `_holds_float`
        pass  # refused, or a float: the standard library decides, in its own words
    return _stdlib_decode(text)


def _orjson_json_loads(data: bytes) -> Any:
    try:
        value = _orjson_loads(data)
        if not _holds_float(value):
            return value
    except (ValueError, RecursionError):
        pass
    return _stdlib_json_loads(data)


_ALL_SCALARS: Final = frozenset({str, int, bool, type(None)}).issuperset


def _holds_float(value: Any) -> bool:
    """True when parsed JSON (dicts, lists, scalars) has a float anywhere in it."""
    kind = type(value)
    if kind is dict:
        members = value.values()
    elif kind is list:
        members = value
    else:
        return kind is float
    if _ALL_SCALARS(map(type, members)):  # the usual record: one pass in C, and done
        return False
    for member in members:
        kind = type(member)
        if kind is float or ((kind is dict or kind is list) and _holds_float(member)):
            return True
    return False


#: Parse JSON text with exact decimals (REST bodies and hub messages alike).
decode: Final = _orjson_decode if _SPEEDUPS else _stdlib_decode
#: Parse a UTF-8 body with exact decimals.
_json_loads: Final = _orjson_json_loads if _SPEEDUPS else _stdlib_json_loads


#: Wire keys that are not the plain camelCase of the field name.
_RENAMES: Final[dict[str, str]] = {
    "total_balance_in_rat": "totalBalanceInRAT",
    "used_margin_in_rat": "usedMarginInRAT",
    "unrealized_pnl_total_in_rat": "unrealizedPnlTotalInRAT",
}

_MODELS: Final = (
    models.Order,
    models.StopOrder,
    models.OpenOrder,
    models.PriceTrigger,
    models.Account,
    models.OpenPosition,
    models.PositionsCloseAck,
)

#: The longest value an error message quotes.
_QUOTED: Final = 64

_FRACTION = re.compile(r"(\.\d{6})\d+")


def _camel(name: str) -> str:
    if name in _RENAMES:
        return _RENAMES[name]
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


# --- scalar hooks: strict about types, tolerant about formats ---------------------------------


# Decimal strings seen lately, parsed once: an order has six amounts, and "0" and the account's
# usual sizes and prices repeat across thousands of cancels. Decimals are immutable, so sharing
# one is safe; the cache is emptied when full rather than kept exactly recent.
_DECIMALS: dict[str, Decimal] = {}
_DECIMALS_MAX = 1024


def _structure_decimal(value: Any, _: type) -> Decimal:
    if type(value) is str:
        known = _DECIMALS.get(value)
        if known is not None:
            return known
        result = _parse_decimal(value)
        if len(value) <= 64:  # an amount, not a hostile megabyte of digits
            if len(_DECIMALS) >= _DECIMALS_MAX:
                _DECIMALS.clear()
            _DECIMALS[value] = result
        return result
    if isinstance(value, str):
        result = _parse_decimal(value)
    elif isinstance(value, int | Decimal) and not isinstance(value, bool):
        result = Decimal(value)
    elif isinstance(value, float):  # our decoder never makes one; a caller's own JSON may
        result = Decimal(repr(value))
    else:
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return result


def _parse_decimal(text: str) -> Decimal:
    try:
        result = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not a decimal: {_shown(text)}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite decimal: {_shown(text)}")
    return result


def _shown(text: str) -> str:
    # Quoted whole or not at all: a value cut short could end in part of a token, which no
    # masking downstream could recognise.
    return repr(text) if len(text) <= _QUOTED else f"a string of {len(text)} characters"


def _structure_datetime(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 timestamp, got {type(value).__name__}")
    try:
        result = datetime.fromisoformat(value)
    except ValueError:
        # More than 6 fractional digits: keep microseconds, drop the rest.
        try:
            result = datetime.fromisoformat(_FRACTION.sub(r"\1", value))
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {_shown(value)}") from None
    if result.tzinfo is None:
        return result.replace(tzinfo=UTC)
    if result.tzinfo is not UTC:
        return result.astimezone(UTC)
    return result


def _structure_str(value: Any, _: type) -> str:
    if isinstance(value, str):
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_strings(value: Any, _: type) -> tuple[str, ...]:
    # cattrs would iterate any iterable: a string "ABC" would become ("A", "B", "C").
    if not isinstance(value, list):
        raise TypeError(f"expected an array of strings, got {_json_type(value)}")
    return tuple([_structure_str(item, str) for item in value])


def _structure_bool(value: Any, _: type) -> bool:
    if isinstance(value, bool):
        return value
    raise TypeError(f"expected true or false, got {type(value).__name__}")


def _structure_int(value: Any, _: type) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TypeError(f"expected an integer, got {type(value).__name__}")


def _structure_open_enum(value: Any, cls: type[OpenEnum]) -> OpenEnum:
    if isinstance(value, str):
        # A dict lookup for known values; `cls(value)` is ten times slower.
        member = cls._value2member_map_.get(value)
        return member if member is not None else cls(value)  # type: ignore[return-value]
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=False)
    conv.register_structure_hook(Decimal, _structure_decimal)
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_structure_hook(str, _structure_str)
    conv.register_structure_hook(bool, _structure_bool)
    conv.register_structure_hook_func(lambda tp: tp == tuple[str, ...], _structure_strings)
    conv.register_structure_hook(int, _structure_int)
    # Dispatch on the class (not a predicate): the open enums are str subclasses, and the
    # most specific class must win over the strict `str` hook.
    conv.register_structure_hook(OpenEnum, _structure_open_enum)
    conv.register_structure_hook_factory(_is_optional, functools.partial(_optional_hook, conv))
    # Generated on first use of each model, not at import: `import` stays cheap.
    conv.register_structure_hook_factory(
        lambda cls: cls in _MODELS,
        lambda cls: make_dict_structure_fn(cls, conv, **_renames(cls)),
    )
    return conv


def _is_optional(tp: Any) -> bool:
    args = typing.get_args(tp)
    return isinstance(tp, types.UnionType) and len(args) == 2 and type(None) in args


def _optional_hook(conv: cattrs.Converter, tp: Any) -> Callable[[Any, Any], Any]:
    """`X | None`: None, or the hook of X, found once (cattrs' own looks X up per value)."""
    inner_type = next(arg for arg in typing.get_args(tp) if arg is not type(None))
    inner = conv.get_structure_hook(inner_type)

    def structure_optional(value: Any, _: Any) -> Any:
        return None if value is None else inner(value, inner_type)

    return structure_optional


def _renames(cls: type) -> dict[str, Any]:
    return {a.name: override(rename=_camel(a.name)) for a in attrs.fields(cls)}


#: The library's converter. Never `cattrs.global_converter`: users may have their own hooks.
converter: Final = _make_converter()

# Fast twins of the detailed hooks, for the hot path; each generated on first use.
_fast: dict[type, Callable[[Any, type], Any]] = {}


def _fast_hook(cls: type) -> Callable[[Any, type], Any]:
    hook = _fast[cls] = make_dict_structure_fn(
        cls, converter, _cattrs_detailed_validation=False, **_renames(cls)
    )
    return hook


def read_record(body: bytes, cls: type[T], *, url: object, attempts: int) -> T:
    """The `{"order": {...}}` answer of a cancel endpoint as a `cls` record."""
    try:
        data = load_body(body, url)
        if not isinstance(data, dict) or "order" not in data:
            raise invalid_response("expected an object with an `order` key", "order", url, body)
        return structure(data["order"], cls, path="order", url=url, body=body)
    except ResponseValidationError as exc:
        exc.attempts = attempts
        raise


def read_list(body: bytes, cls: type[T], *, url: object, attempts: int) -> list[T]:
    """A JSON array answer (e.g. accounts) as a list of `cls` records."""
    try:
        return structure_list(load_body(body, url), cls, url=url, body=body)
    except ResponseValidationError as exc:
        exc.attempts = attempts
        raise


def load_body(body: bytes, url: object) -> Any:
    """Parse a 2xx body, or raise `ResponseValidationError` saying why it is not JSON."""
    try:
        return _json_loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        if not body.strip():
            raise invalid_response("the body is empty", "", url, body) from None
        raise invalid_response(f"the body is not JSON ({exc})", "", url, body) from exc


def structure(
    data: Any, cls: type[T], *, path: str = "", url: object = "", body: bytes = b""
) -> T:
    """Build a `cls` record from parsed JSON, or raise `ResponseValidationError`.

    `path` is where `data` sits in the response (e.g. `order`), used in the error message.
    """
    if not isinstance(data, dict):
        raise invalid_response(f"expected an object, got {_json_type(data)}", path, url, body)
    try:
        return (_fast.get(cls) or _fast_hook(cls))(data, cls)  # type: ignore[no-any-return]
    except Exception:  # noqa: S110 -- any failure is re-run below for a precise report
        pass
    try:
        return converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        where, message = _first_problem(exc, cls)
    # Raised out here, without cattrs' error as its cause or context: that tree quotes the
    # record's values, which the caller masks in our error only (a server may echo a token).
    raise invalid_response(message, _join(path, where), url, body)


def structure_list(
    data: Any, cls: type[T], *, path: str = "", url: object = "", body: bytes = b""
) -> list[T]:
    """Build a list of `cls` records from a JSON array."""
    if not isinstance(data, list):
        raise invalid_response(f"expected an array, got {_json_type(data)}", path, url, body)
    return [
        structure(item, cls, path=f"{path}[{i}]", url=url, body=body)
        for i, item in enumerate(data)
    ]


def _first_problem(exc: BaseException, cls: type) -> tuple[str, str]:
    """The wire path and a readable message of the first leaf error in a cattrs error tree."""
    for parts, leaf in _leaves(exc, cls):
        if isinstance(leaf, KeyError):
            return ".".join(parts), "required field is missing"
        return ".".join(parts), f"{leaf}"
    return "", str(exc)


def _leaves(exc: BaseException, cls: type | None) -> Iterator[tuple[list[str], BaseException]]:
    if isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            part, sub_cls = _note_part(sub, cls)
            for parts, leaf in _leaves(sub, sub_cls):
                yield ([part, *parts] if part else parts), leaf
    else:
        yield [], exc


def _note_part(exc: BaseException, cls: type | None) -> tuple[str, type | None]:
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, AttributeValidationNote):
            inner = note.type if isinstance(note.type, type) else None
            field_type = _field_type(cls, note.name)
            return _camel(note.name), field_type or inner
        if isinstance(note, IterableValidationNote):
            return f"[{note.index}]", None
    return "", cls


def _field_type(cls: type | None, name: str) -> type | None:
    if cls is None or not attrs.has(cls):
        return None
    field = attrs.fields_dict(cls).get(name)
    return field.type if field is not None and isinstance(field.type, type) else None


def _join(prefix: str, where: str) -> str:
    if not prefix:
        return where
    if not where:
        return prefix
    return f"{prefix}{where}" if where.startswith("[") else f"{prefix}.{where}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        Decimal: "a number",
        float: "a number",
    }.get(type(value), type(value).__name__)


def invalid_response(message: str, path: str, url: object, body: bytes) -> ResponseValidationError:
    """A `ResponseValidationError` for the body of a response to `url`."""
    return ResponseValidationError(
        message, url=str(url), body=body.decode("utf-8", "replace"), path=path
    )
