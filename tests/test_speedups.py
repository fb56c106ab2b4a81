"""The `speedups` extra: where orjson is installed it parses REST bodies and hub messages, and
its results are exactly the standard library's (a JSON number with a fraction is an exact
Decimal, never a float) and so are its errors. Both paths are tested whatever is installed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tomllib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.requirements import Requirement
from packaging.version import Version

from frontoffice_async import OrderStatus, ResponseValidationError, _converter
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator

from ._scripted_hub import RS, Conn, ScriptedHubs, item, open_order
from .support import client_for, sample

ROOT = Path(__file__).resolve().parent.parent
HAS_ORJSON = importlib.util.find_spec("orjson") is not None
needs_orjson = pytest.mark.skipif(not HAS_ORJSON, reason="orjson (the speedups extra) is missing")

#: Bytes -> value, and text -> value, as each path parses.
BODY: dict[str, Callable[[bytes], Any]] = {
    "stdlib": _converter._stdlib_json_loads,
    "orjson": _converter._orjson_json_loads,
}
TEXT: dict[str, Callable[[str], Any]] = {
    "stdlib": _converter._stdlib_decode,
    "orjson": _converter._orjson_decode,
}


@pytest.fixture(params=["stdlib", pytest.param("orjson", marks=needs_orjson)])
def json_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The library parses JSON with one path (`stdlib`: as the base install does)."""
    path: str = request.param
    monkeypatch.setattr(_converter, "_json_loads", BODY[path])
    monkeypatch.setattr(_converter, "decode", TEXT[path])
    return path


def tagged(value: Any) -> Any:
    """`value` with every type spelled out, and dict keys in order: `1 == 1.0 == Decimal(1)`
    and `{"a": 1, "b": 2} == {"b": 2, "a": 1}` in Python, but not here. A Decimal by its
    string, which keeps its digits and exponent."""
    if isinstance(value, dict):
        return ("object", [(key, tagged(v)) for key, v in value.items()])
    if isinstance(value, list):
        return ("array", [tagged(v) for v in value])
    if isinstance(value, Decimal):
        return ("Decimal", str(value))
    return (type(value).__name__, value)


def outcome(parse: Callable[[Any], Any], data: Any) -> Any:
    """What `parse(data)` gives: the tagged value, or the error's type and message."""
    try:
        return tagged(parse(data))
    except (ValueError, RecursionError) as exc:
        return ("raises", type(exc).__name__, str(exc))


# --- random JSON documents: both paths agree ------------------------------------------------

_WS = st.sampled_from(["", " ", "\n", "\t", "\r\n  "])
#: Numbers as a server may write them: many digits, fractions, exponents, a minus zero.
_NUMBER = st.from_regex(
    r"-?(0|[1-9][0-9]{0,40})(\.[0-9]{1,40})?([eE][+-]?[0-9]{1,4})?", fullmatch=True
)
#: Any unicode, lone surrogates included, escaped or not.
_STRING = st.builds(lambda s, ascii_: json.dumps(s, ensure_ascii=ascii_), st.text(), st.booleans())
_SCALAR = st.one_of(_NUMBER, _STRING, st.sampled_from(["true", "false", "null"]))


def _array(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(
        lambda items, ws: "[" + ws + ",".join(ws + x + ws for x in items) + "]",
        st.lists(inner, max_size=6),
        _WS,
    )


def _object(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # Keys may repeat (the last value wins, at the first key's place, in both parsers).
    keys = st.one_of(_STRING, st.sampled_from(['"a"', '"orderId"', '"requestedPrice"']))
    return st.builds(
        lambda members, ws: "{" + ",".join(f"{ws}{k}{ws}:{ws}{v}{ws}" for k, v in members) + "}",
        st.lists(st.tuples(keys, inner), max_size=6),
        _WS,
    )


DOCUMENTS = st.recursive(
    _SCALAR, lambda inner: st.one_of(_array(inner), _object(inner)), max_leaves=40
)
#: Bytes a hostile or broken server may send: anything, and near-JSON.
GARBAGE = st.one_of(
    st.binary(max_size=200),
    st.text('[]{}",:0123456789.eE+- \ntrufalsn\\', max_size=60).map(str.encode),
)


@given(DOCUMENTS)
def test_a_body_parses_to_the_same_value_on_both_paths(document: str) -> None:
    # A lone surrogate makes invalid UTF-8 here: both paths must refuse it alike.
    body = document.encode("utf-8", "surrogatepass")
    assert outcome(BODY["orjson"], body) == outcome(BODY["stdlib"], body)


@given(DOCUMENTS)
def test_a_hub_message_parses_to_the_same_value_on_both_paths(document: str) -> None:
    assert outcome(TEXT["orjson"], document) == outcome(TEXT["stdlib"], document)


@given(GARBAGE)
def test_garbage_gets_the_same_answer_on_both_paths(body: bytes) -> None:
    assert outcome(BODY["orjson"], body) == outcome(BODY["stdlib"], body)


# --- the cases that matter, one by one --------------------------------------------------------

EXACT = {
    "fraction": (
        b'{"leverage": 4450.000000000000000001}',
        {"leverage": "4450.000000000000000001"},
    ),
    "exponent": (b'{"size": 1E+2}', {"size": "1E+2"}),
    "minus_zero": (b'{"size": -0.0}', {"size": "-0.0"}),
    "nested": (b'{"order": {"stop": [0.1, {"price": 1e-7}]}}', None),
}


@needs_orjson
@pytest.mark.parametrize("body", [v[0] for v in EXACT.values()], ids=list(EXACT))
def test_a_json_number_with_a_fraction_is_an_exact_decimal(body: bytes) -> None:
    value = BODY["orjson"](body)
    assert tagged(value) == tagged(BODY["stdlib"](body))
    assert "float" not in repr(tagged(value))


def test_the_decimals_are_exact() -> None:
    for body, expected in EXACT.values():
        if expected is not None:
            for parse in BODY.values():
                assert parse(body) == {k: Decimal(v) for k, v in expected.items()}


@pytest.mark.parametrize(
    "body",
    [
        b"[123456789012345678901234567890, -123456789012345678901234567890]",
        b"[18446744073709551615, -9223372036854775808, -9223372036854775809]",
        b'{"int": -0}',
    ],
    ids=["beyond_64_bits", "at_64_bits", "minus_zero_integer"],
)
def test_integers_stay_exact_integers(body: bytes) -> None:
    expected = json.loads(body)
    for parse in BODY.values():
        assert tagged(parse(body)) == tagged(expected)


REFUSED = {
    "nan": b'{"fillFactor": NaN}',
    "infinity": b'{"fillFactor": -Infinity}',
    "trailing_comma": b"[1,]",
    "bom": b'\xef\xbb\xbf{"a": 1}',
    "invalid_utf8": b'{"a": "SP\xff\xfe ETH"}',
    "lone_surrogate_escape_ok": b'["\\ud800"]',  # valid JSON: both keep the lone surrogate
    "too_deep": b"[" * 100_000,
    "deep_but_closed": b"[" * 2000 + b"]" * 2000,
    "empty": b"",
    "int_of_5000_digits": b"7" * 5000,
}


@pytest.mark.parametrize("body", list(REFUSED.values()), ids=list(REFUSED))
def test_odd_bodies_get_the_standard_librarys_answer_word_for_word(body: bytes) -> None:
    assert outcome(BODY["orjson"], body) == outcome(BODY["stdlib"], body)
    text = body.decode("utf-8", "replace")
    assert outcome(TEXT["orjson"], text) == outcome(TEXT["stdlib"], text)


def test_the_depth_orjson_accepts_but_python_cannot_walk_falls_back() -> None:
    # orjson reads 1,024 levels; below that, the float check may run out of Python stack,
    # and then the standard library answers (a value or RecursionError, as it would alone).
    for depth in (900, 990, 1000, 1024):
        body = b"[" * depth + b"1.5" + b"]" * depth
        assert outcome(BODY["orjson"], body) == outcome(BODY["stdlib"], body), depth


@pytest.mark.usefixtures("json_path")
@pytest.mark.parametrize(
    ("body", "message"),
    [
        (REFUSED["nan"], "the body is not JSON (NaN is not a JSON value)"),
        (REFUSED["too_deep"], "the body is not JSON (maximum recursion depth exceeded"),
        (REFUSED["invalid_utf8"], "'utf-8' codec can't decode byte 0xff"),
        (REFUSED["bom"], "the body is not JSON (Expecting value: line 1 column 1 (char 0))"),
        (b" \r\n", "the body is empty"),
    ],
    ids=["nan", "too_deep", "invalid_utf8", "bom", "whitespace"],
)
def test_a_body_that_is_not_json_is_a_typed_error(body: bytes, message: str) -> None:
    with pytest.raises(ResponseValidationError) as caught:
        _converter.load_body(body, "https://fo.example/x")
    assert message in str(caught.value)


# --- which path runs ---------------------------------------------------------------------------


def test_orjson_parses_where_it_is_installed() -> None:
    assert _converter._SPEEDUPS is HAS_ORJSON
    speedy = (_converter._orjson_decode, _converter._orjson_json_loads)
    plain = (_converter._stdlib_decode, _converter._stdlib_json_loads)
    assert (_converter.decode, _converter._json_loads) == (speedy if HAS_ORJSON else plain)


def test_the_base_install_parses_with_the_standard_library() -> None:
    """With orjson not importable (None in sys.modules blocks the import), the library
    chooses the standard library and still reads decimals exactly."""
    code = (
        "import sys; sys.modules['orjson'] = None\n"
        "from frontoffice_async import _converter as c\n"
        "assert not c._SPEEDUPS and c._json_loads is c._stdlib_json_loads\n"
        "assert c.decode is c._stdlib_decode\n"
        "print(c.load_body(b'{\"a\": 4450.000000000000000001}', 'u'))\n"
    )
    shown = subprocess.run(  # noqa: S603 -- our own interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert shown.stdout == "{'a': Decimal('4450.000000000000000001')}\n"


def test_the_speedups_extra_is_orjson_with_a_floor_that_limits_nesting() -> None:
    """orjson before 3.9.15 did not limit nesting (CVE-2024-27454): a hostile body could
    crash the process instead of being a typed error."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    [requirement] = [Requirement(t) for t in project["optional-dependencies"]["speedups"]]
    [spec] = requirement.specifier
    assert (requirement.name, spec.operator) == ("orjson", ">=")
    assert Version(spec.version) >= Version("3.9.15")


# --- through the client: a REST answer and a hub message, on both paths -------------------------


async def test_a_cancel_answer_with_json_numbers_is_exact(
    json_path: str, sim: FrontOfficeSimulator
) -> None:
    [order_id] = sim.add_orders(1)
    data = json.loads(sample("cancel_order_200.json"))
    data["order"].update(orderId=order_id, status="Cancelled")
    body = json.dumps(data).encode()
    body = body.replace(b'"commission": "0"', b'"commission": 0.000000000000000000001')
    body = body.replace(b'"fillFactor": "0"', b'"fillFactor": 1E-3')
    assert b"0.000000000000000000001" in body and b"1E-3" in body
    answer = Fault.response(200, body, {"Content-Type": "application/json"})
    sim.faults = FaultPlan(scripts={order_id: [answer]})
    async with client_for(sim) as client:
        order = await client.cancel_order(order_id)
    assert order.status is OrderStatus.CANCELLED
    assert str(order.commission) == "1E-21"
    assert str(order.fill_factor) == "0.001"


async def test_hub_messages_keep_their_framing_and_exact_numbers(
    json_path: str, hubs: ScriptedHubs
) -> None:
    first, second = (
        open_order("01K2PF9XS29WN4JZRHMCTTQY01"),
        open_order("01K2PF9XS29WN4JZRHMCTTQY02"),
    )
    frame = item([first]).replace(
        '"requestedAmount": "0.1"', '"requestedAmount": 0.30000000000000001'
    )
    # Two messages in one websocket frame, each ended by the record separator.
    script_ = await hubs.start(Conn(frames=[frame + item([second])]))
    assert frame.count(RS) == 1 and "0.30000000000000001" in frame
    async with client_for(script_.url) as client:
        orders = await client.open_orders(timeout=5)
    assert [o.order_id for o in orders] == [first["orderId"], second["orderId"]]
    assert orders[0].requested_amount == Decimal("0.30000000000000001")
    assert orders[1].requested_amount == Decimal("0.1")
