"""Mapping HTTP answers to the error tree through the client (aioresponses: no middleware runs
here; the simulator for what a 400 or a 2xx means to a bulk call), the tree itself and its
JSON shape; the pure reading of bodies and headers is in http/test_answers.py."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from http import HTTPStatus

import pytest
from aioresponses import aioresponses

from frontoffice_async import (
    APIConnectionError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    BulkCancelError,
    CancelNotConfirmedError,
    ConflictError,
    FrontOfficeClient,
    FrontOfficeError,
    InvalidOrderIdError,
    OrderNotActiveError,
    OrderNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
)
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator

from .support import client_for, sample

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
    400: OrderNotActiveError,  # from a cancel endpoint: the request was well formed
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
    expected_class = CLASSES[status]
    if status in (400, 404) and shape in ("html", "invalid_json"):
        # A page, not the API's own JSON answer: it says nothing of the order.
        expected_class = BadRequestError if status == 400 else APIStatusError
    if status == 400 and shape == "empty":
        expected_class = BadRequestError  # no body: nothing said about the order
    assert type(error) is expected_class
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
    if isinstance(error, OrderNotFoundError | OrderNotActiveError):
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


def test_the_tree() -> None:
    assert issubclass(OrderNotActiveError, BadRequestError)
    assert issubclass(ConflictError, APIStatusError)
    assert not issubclass(ConflictError, BadRequestError)
    error = OrderNotActiveError(
        "final", order_id="X", after_retry=True, status=400, method="DELETE", url="u", attempts=2
    )
    assert (error.order_id, error.after_retry, error.attempts) == ("X", True, 2)
    assert str(error) == "400 final (DELETE u, 2 attempts)"
    assert repr(error) == "OrderNotActiveError(status=400, message='final')"
    with pytest.raises(TypeError):
        OrderNotFoundError("x", status=404, method="GET", url="u", surprise=1)  # type: ignore[call-arg]


# --- 400s that say nothing about the order are failures, in bulk too --------------------------

VALIDATION_400 = (
    b'{"title": "One or more validation errors occurred.", "status": 400,'
    b' "errors": {"accountId": ["The accountId header is required."]}}'
)
VERSION_400 = b'{"error": {"code": "UnsupportedApiVersion", "message": "Unsupported API version"}}'


@pytest.mark.parametrize(
    ("body", "category"),
    [
        pytest.param(b"", "failed", id="empty"),
        pytest.param(VALIDATION_400, "failed", id="validation"),
        pytest.param(VERSION_400, "failed", id="api-version"),
        pytest.param(PROBLEM, "not_active", id="platform-not-active"),
        pytest.param(LEGACY, "not_active", id="legacy"),
    ],
)
async def test_a_400_counts_as_not_active_only_when_it_speaks_about_the_order(
    sim: FrontOfficeSimulator, body: bytes, category: str
) -> None:
    [order_id] = sim.add_orders(1)
    [stop_id] = sim.add_stop_orders(1)
    answer = Fault.response(400, body, {"Content-Type": "application/json"})
    sim.faults = FaultPlan(scripts={order_id: [answer], stop_id: [answer]})
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        result = await client.cancel_orders([order_id])
        stops = await client.cancel_stop_orders([stop_id])
    assert [result[0].category, stops[0].category] == [category, category]
    if category == "failed":
        assert type(result[0].error) is BadRequestError
        with pytest.raises(BulkCancelError):
            result.raise_for_failures()


# --- a 2xx is checked: the status and the id of the order it returns --------------------------


def answer(
    order_id: str, status: str, *, stop: bool = False, other_id: str | None = None
) -> Fault:
    data = json.loads(sample("cancel_stop_order_200.json" if stop else "cancel_order_200.json"))
    data["order"].update(orderId=other_id or order_id, status=status)
    return Fault.response(200, json.dumps(data).encode(), {"Content-Type": "application/json"})


@pytest.mark.parametrize(
    ("status", "stop", "category", "error_type"),
    [
        pytest.param("Cancelled", False, "cancelled", None, id="cancelled"),
        pytest.param("Expired", False, "cancelled", None, id="expired"),
        pytest.param("Rejected", False, "cancelled", None, id="rejected"),
        pytest.param("Completed", False, "not_active", OrderNotActiveError, id="filled"),
        pytest.param("Working", False, "failed", CancelNotConfirmedError, id="working"),
        pytest.param("Pending", False, "failed", CancelNotConfirmedError, id="pending"),
        pytest.param("Started", False, "failed", CancelNotConfirmedError, id="started"),
        pytest.param("PendingCancel", False, "failed", CancelNotConfirmedError, id="unknown"),
        pytest.param("Cancelled", True, "cancelled", None, id="stop-cancelled"),
        pytest.param("Rejected", True, "cancelled", None, id="stop-rejected"),
        pytest.param("Activated", True, "not_active", OrderNotActiveError, id="stop-activated"),
        pytest.param(
            "WaitingForActivation", True, "failed", CancelNotConfirmedError, id="stop-waiting"
        ),
        pytest.param("Triggered", True, "failed", CancelNotConfirmedError, id="stop-unknown"),
    ],
)
async def test_a_2xx_counts_as_cancelled_only_when_the_order_is(
    sim: FrontOfficeSimulator,
    status: str,
    stop: bool,
    category: str,
    error_type: type[FrontOfficeError] | None,
) -> None:
    ids = (sim.add_stop_orders if stop else sim.add_orders)(2)
    sim.faults = FaultPlan(scripts={i: [answer(i, status, stop=stop)] * 2 for i in ids})
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        bulk = client.cancel_stop_orders if stop else client.cancel_orders
        single = client.cancel_stop_order if stop else client.cancel_order
        [outcome] = await bulk([ids[0]])
        if error_type is None:
            record = await single(ids[1])
            assert record.status == status and outcome.order is not None
        else:
            with pytest.raises(error_type) as caught:
                await single(ids[1])
            assert caught.value.order.status == status  # type: ignore[attr-defined]
            assert caught.value.as_dict()["order"]["status"] == status
    assert outcome.category == category
    if error_type is not None:
        # An outcome has an order or an error, never both: the returned order is on the error.
        assert outcome.order is None
        assert type(outcome.error) is error_type
        assert outcome.error.order.status == status  # type: ignore[attr-defined]
        assert outcome.error.order_id == ids[0]  # type: ignore[attr-defined]
        assert outcome.as_dict()["error"]["order"]["order_id"] == ids[0]


async def test_a_2xx_about_another_order_is_a_failure(sim: FrontOfficeSimulator) -> None:
    ids = sim.add_orders(2)
    other = "01K2PF9XS29WN4JZRHMCTTQYJB"
    sim.faults = FaultPlan(scripts={i: [answer(i, "Cancelled", other_id=other)] for i in ids})
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        [outcome] = await client.cancel_orders([ids[0]])
        with pytest.raises(ResponseValidationError) as caught:
            await client.cancel_order(ids[1])
    assert outcome.category == "failed"
    assert isinstance(outcome.error, ResponseValidationError)
    assert caught.value.path == "order.orderId"
    assert other in caught.value.message


# --- as_dict(): one JSON shape for every error -------------------------------------------------


def test_every_error_has_the_same_json_shape() -> None:
    status = OrderNotFoundError(
        "gone", order_id="X", status=404, method="DELETE", url="u", trace_id="t-1"
    )
    assert status.as_dict() == {
        "type": "OrderNotFoundError",
        "status": 404,
        "message": "gone",
        "trace_id": "t-1",
        "order_id": "X",
    }
    network = APIConnectionError("reset\nby peer", method="GET", url="u")
    assert network.as_dict() == {
        "type": "APIConnectionError",
        "status": None,
        "message": "reset by peer (GET u, 1 attempt)",
        "trace_id": None,
        "order_id": None,
    }
    odd = InvalidOrderIdError(5, "not a str")
    assert odd.as_dict()["order_id"] is None  # only a str id is an order id
    assert json.loads(json.dumps(odd.as_dict())) == odd.as_dict()


async def test_the_cli_and_bulk_error_documents_agree(sim: FrontOfficeSimulator) -> None:
    [order_id] = sim.add_orders(1)
    sim.faults = FaultPlan(scripts={order_id: [Fault.response(409, b'{"detail": "busy"}')]})
    async with client_for(sim, retry=RetryPolicy.none()) as client:
        result = await client.cancel_orders([order_id])
    error = result[0].error
    assert error is not None
    assert result.as_dict()["outcomes"][0]["error"] == error.as_dict()
    assert error.as_dict()["order_id"] is None  # a 409 names no order of its own
    assert set(error.as_dict()) == {"type", "status", "message", "trace_id", "order_id"}
