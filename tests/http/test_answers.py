"""Reading what a server said, defensively: Retry-After, error bodies, transport failures."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import aiohttp
import pytest

from frontoffice_async import APIConnectionError, APITimeoutError, BadRequestError, ServerError
from frontoffice_async._http.answers import (
    connection_error,
    describe_body,
    mask,
    one_line,
    retry_after_seconds,
    status_error,
)

NOW = 1_750_000_000.0


def http_date(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("007", 7.0),
        ("9" * 400, float("inf")),  # valid, and far too long: never "retry now"
        # RFC 9110 allows only ASCII digits or an HTTP-date; everything else is ignored.
        ("0.25", None),
        ("1_0", None),
        ("+3", None),
        ("-0", None),
        ("-1", None),
        ("\u0663", None),  # ARABIC-INDIC DIGIT THREE: isdigit(), but not ASCII
        ("\uff13", None),  # FULLWIDTH DIGIT THREE
        ("nan", None),
        ("inf", None),
        ("1e3", None),
        ("soon", None),
        ("", None),
        (http_date(NOW + 5), 5.0),
        (http_date(NOW - 5), 0.0),  # already past: no wait
    ],
)
def test_retry_after(value: str, expected: float | None) -> None:
    assert retry_after_seconds({"Retry-After": value}, now=NOW) == expected


def test_retry_after_absent() -> None:
    assert retry_after_seconds({}) is None


@pytest.mark.parametrize(
    ("body", "message", "trace"),
    [
        (
            b'{"title": "Bad", "detail": "Order X is final", "traceId": "t-1"}',
            "Order X is final",
            "t-1",
        ),
        (b'{"errors": [{"message": "Incorrect parameters"}]}', "Incorrect parameters", None),
        (
            b'{"title": "Invalid", "errors": {"orderId": ["bad id"]}}',
            "Invalid (orderId: bad id)",
            None,
        ),
        (b'{"message": "Order is locked"}', "Order is locked", None),
        (b"<html><title> 502 Bad\nGateway </title></html>", "502 Bad Gateway", None),
        (b"", "", None),
        (b'{"detail": "line one\\r\\nInjected: line"}', "line one Injected: line", None),
        (b'{"traceId": "a\\nb", "detail": "x"}', "x", "a b"),
        (b"[" * 100_000 + b"]" * 100_000, "[" * 199 + "\u2026", None),  # nested: no crash
    ],
)
def test_describe_body(body: bytes, message: str, trace: str | None) -> None:
    assert describe_body(body.decode()) == (message, trace)


def test_html_scan_is_linear_on_hostile_markup() -> None:
    text = "<" * 2_000_000
    message, _ = describe_body(text)
    assert len(message) <= 200


def test_one_line_folds_every_kind_of_line_break() -> None:
    assert one_line("a\r\nb\x0bc\x0cd\u2028e\tf") == "a b c d e f"
    assert len(one_line("x" * 10_000)) == 200


def test_status_error_classes_depend_on_the_endpoint() -> None:
    def kind(status: int, order_id: str | None = None) -> str:
        error = status_error(
            status=status,
            method="DELETE",
            url="u",
            headers={},
            body=b"",
            attempts=1,
            order_id=order_id,
        )
        return type(error).__name__

    assert kind(400, order_id="X") == "OrderNotActiveError"
    assert kind(404, order_id="X") == "OrderNotFoundError"
    assert kind(400) == BadRequestError.__name__
    assert kind(404) == "APIStatusError"  # not an order endpoint
    assert kind(599) == ServerError.__name__
    assert kind(700) == "APIStatusError"


def test_transport_failures_are_translated() -> None:
    timeout = connection_error(TimeoutError(), method="GET", url="u", attempts=2)
    assert isinstance(timeout, APITimeoutError) and timeout.attempts == 2
    reset = connection_error(aiohttp.ServerDisconnectedError(), method="GET", url="u", attempts=1)
    assert type(reset) is APIConnectionError
    assert "closed the connection" in str(reset)


def test_mask_hides_a_token_of_any_length() -> None:
    # A short test token is the client's own secret too: it is masked, not judged too short.
    assert mask("token 'k3y9' is invalid", ["k3y9"]) == "token '[hidden]' is invalid"
    assert mask("access_token=k3%79", ["k3y9"]) == "access_token=k3%79"  # not k3y9
    assert mask("access_token=k3%799", ["k3y9"]) == "access_token=[hidden]"
