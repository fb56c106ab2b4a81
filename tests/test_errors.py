"""Mapping non-2xx responses to the error tree (aioresponses: no middleware runs here)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus

import pytest
from aioresponses import aioresponses

from frontoffice_async import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FrontOfficeClient,
    FrontOfficeError,
    OrderNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
)
from frontoffice_async.errors import parse_retry_after

from .conftest import sample

BASE = "http://broker.test"
ORDER_URL = re.compile(r"^http://broker\.test/frontoffice/api/v3/orders/.*$")
TOKEN = "tok-SENTINEL-3f9a"
ACCOUNT = "685a7eaa360f9e7416221a61"

PROBLEM = sample("error_problem_details_400.json")
LEGACY = sample("error_legacy_400.json")
HTML = sample("error_gateway_502.html")
PROBLEM_MESSAGE = (
    "Order 01K2PF9XS29WN4JZRHMCTTQYJB cannot be cancelled in status Completed. "
    "(orderId: The order is not active.)"
)
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"

# shape -> (body, content type, expected message or None for the HTTP reason, trace id)
SHAPES: dict[str, tuple[bytes, str, str | None, str | None]] = {
    "problem": (PROBLEM, "application/problem+json", PROBLEM_MESSAGE, TRACE),
    "legacy": (LEGACY, "application/json", "Incorrect parameters", None),
    "plain": (b'{"message": "Order is locked"}', "application/json", "Order is locked", None),
    "html": (HTML, "text/html", "502 Bad Gateway", None),
    "empty": (b"", "text/plain", None, None),
    "invalid_json": (b'{"detail": "cut', "application/json", '{"detail": "cut', None),
}
CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: OrderNotFoundError,
    409: ConflictError,
    422: APIStatusError,
    429: RateLimitError,
    500: ServerError,
    502: ServerError,
    503: ServerError,
}
REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    422: HTTPStatus(422).phrase,  # "Entity" before Python 3.13, "Content" after
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@pytest.fixture
async def client() -> AsyncIterator[FrontOfficeClient]:
    async with FrontOfficeClient(
        BASE, token=TOKEN, account_id=ACCOUNT, retry=RetryPolicy.none()
    ) as client:
        yield client


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("status", sorted(CLASSES))
async def test_status_and_body_shape(
    client: FrontOfficeClient, mock_http: aioresponses, status: int, shape: str
) -> None:
    body, content_type, message, trace_id = SHAPES[shape]
    mock_http.delete(
        ORDER_URL, status=status, body=body, content_type=content_type, headers={"X-Req": "1"}
    )
    with pytest.raises(APIStatusError) as caught:
        await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJB")
    error = caught.value
    assert type(error) is CLASSES[status]
    assert error.status == status
    assert error.method == "DELETE"
    assert error.url == f"{BASE}/frontoffice/api/v3/orders/01K2PF9XS29WN4JZRHMCTTQYJB"
    assert error.body == body.decode()
    assert error.headers["X-Req"] == "1"
    assert error.trace_id == trace_id
    assert error.attempts == 1
    expected = message if message is not None else REASONS[status]
    if shape == "problem" and status != 400:
        expected = PROBLEM_MESSAGE  # the body wins over the status line
    assert error.message == expected
    assert str(error).startswith(f"{status} {expected} (DELETE {error.url}, 1 attempt")
    assert TOKEN not in str(error) and TOKEN not in repr(error)
    if isinstance(error, OrderNotFoundError):
        assert error.order_id == "01K2PF9XS29WN4JZRHMCTTQYJB"
        assert error.after_retry is False


async def test_rate_limit_error_carries_retry_after(
    client: FrontOfficeClient, mock_http: aioresponses
) -> None:
    mock_http.delete(ORDER_URL, status=429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimitError) as caught:
        await client.cancel_order("X")
    assert caught.value.retry_after == 7.0


async def test_404_from_accounts_is_not_order_not_found(
    client: FrontOfficeClient, mock_http: aioresponses
) -> None:
    mock_http.get(f"{BASE}/frontoffice/api/v3/accounts", status=404, body=b"")
    with pytest.raises(APIStatusError) as caught:
        await client.list_accounts()
    assert type(caught.value) is APIStatusError
    assert caught.value.message == "Not Found"


async def test_html_body_is_clipped_to_a_readable_message(
    client: FrontOfficeClient, mock_http: aioresponses
) -> None:
    page = b"<html><body><p>" + b"oops " * 5000 + b"</p></body></html>"
    mock_http.delete(ORDER_URL, status=500, body=page, content_type="text/html")
    with pytest.raises(ServerError) as caught:
        await client.cancel_order("X")
    assert len(caught.value.message) <= 200
    assert caught.value.message.startswith("oops oops")
    assert "<" not in caught.value.message
    assert len(caught.value.body) <= 4096


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [
        (b"", "", "the body is empty"),
        (b"<html>oops</html>", "", "not JSON"),
        (b"[]", "order", "expected an object with an `order` key"),
        (b'{"order": null}', "order", "expected an object, got null"),
        (b'{"order": {"orderId": "x"}}', "order.marketId", "required field is missing"),
        (b"\xff\xfe{}", "", "not JSON"),
    ],
)
async def test_2xx_with_a_bad_body(
    client: FrontOfficeClient, mock_http: aioresponses, body: bytes, path: str, fragment: str
) -> None:
    mock_http.delete(ORDER_URL, status=200, body=body, content_type="application/json")
    with pytest.raises(ResponseValidationError) as caught:
        await client.cancel_order("X")
    assert caught.value.path == path
    assert fragment in str(caught.value)
    assert caught.value.url.endswith("/orders/X")


async def test_success_maps_to_order(client: FrontOfficeClient, mock_http: aioresponses) -> None:
    mock_http.delete(ORDER_URL, status=200, body=sample("cancel_order_200.json"))
    order = await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJB")
    assert order.order_id == "01K2PF9XS29WN4JZRHMCTTQYJB"
    mock_http.delete(
        re.compile(r".*/v3/stop-orders/.*"), status=200, body=sample("cancel_stop_order_200.json")
    )
    stop = await client.cancel_stop_order("01K2Q0B7JW5V9P3E8TZMX4RGKA")
    assert stop.activation_price == 61500


def test_every_error_is_a_front_office_error() -> None:
    for cls in CLASSES.values():
        assert issubclass(cls, FrontOfficeError)


NOW = 1_750_000_000.0


def http_date(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0.25", 0.25),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("-1", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (http_date(NOW + 5), 5.0),
        (http_date(NOW - 5), 0.0),  # already past: no wait
    ],
)
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after({"Retry-After": value}, now=NOW) == expected


def test_parse_retry_after_absent() -> None:
    assert parse_retry_after({}) is None
