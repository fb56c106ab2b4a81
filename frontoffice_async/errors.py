"""The exception tree, and the one place that turns error responses into it.

FrontOfficeError
├── InvalidOrderIdError           an id that can never be an order id (also ValueError)
├── InvalidAccountIdError         an account id that cannot go in a header (also ValueError)
├── APIConnectionError            network failure after retries
│   └── APITimeoutError           an attempt or the whole call ran out of time
├── APIStatusError                any non-2xx answer
│   ├── BadRequestError           400
│   ├── AuthenticationError       401 (after one token refresh)
│   ├── PermissionDeniedError     403
│   ├── OrderNotFoundError        404 on an order endpoint
│   ├── ConflictError             409
│   ├── RateLimitError            429
│   └── ServerError               5xx
├── ResponseValidationError       2xx whose body is not what the endpoint promises
└── BulkCancelError               some ids of a bulk cancel failed (also an ExceptionGroup)
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

if TYPE_CHECKING:
    from .bulk import CancelOutcome

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BulkCancelError",
    "ConflictError",
    "FrontOfficeError",
    "InvalidAccountIdError",
    "InvalidOrderIdError",
    "OrderNotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseValidationError",
    "ServerError",
    "make_connection_error",
    "make_status_error",
    "parse_retry_after",
]

_EXCERPT = 200  # characters of a non-JSON body shown in a message
_BODY_KEPT = 4096  # characters of a body kept on an error; a proxy page can be megabytes
_SCAN = 64 * 1024  # characters of a non-JSON body searched for a message


class FrontOfficeError(Exception):
    """Base of every error this library raises on purpose."""


class InvalidOrderIdError(FrontOfficeError, ValueError):
    """An order id that cannot be valid (empty, blank, `.`, control characters, too long).

    Raised before anything is sent. For an id that is not a `str` at all, the error raised is
    also a `TypeError`.
    """

    def __init__(self, order_id: object, reason: str) -> None:
        self.order_id = order_id
        self.reason = reason
        super().__init__(f"invalid order id {_clip(repr(order_id), 60)}: {reason}")


class _OrderIdTypeError(InvalidOrderIdError, TypeError):
    """An order id that is not a `str`."""


class InvalidAccountIdError(FrontOfficeError, ValueError):
    """An account id that cannot be sent (empty, too long, spaces, control or non-ASCII
    characters: in a header those would be injection or mojibake). Raised before sending."""


class APIConnectionError(FrontOfficeError):
    """The request failed on the network (refused, reset, DNS...) after all retries."""

    def __init__(self, message: str, *, method: str, url: str, attempts: int = 1) -> None:
        self.method = method
        self.url = url
        self.attempts = attempts
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.args[0]} ({self.method} {self.url}, {_attempts(self.attempts)})"


class APITimeoutError(APIConnectionError, TimeoutError):
    """An attempt exceeded its timeout, or the call exceeded the policy's deadline."""


class APIStatusError(FrontOfficeError):
    """The server answered with a non-2xx status.

    Attributes hold everything a trader needs to act or report: `status`, `method`, `url`,
    `headers` (response headers), `body` (raw text, clipped), `message` (the best human text
    found in the body), `trace_id` (the server's correlation id, if any) and `attempts`.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: str = "",
        trace_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.message = message
        self.status = status
        self.method = method
        self.url = url
        self.headers: Mapping[str, str] = headers if headers is not None else {}
        self.body = body
        self.trace_id = trace_id
        self.attempts = attempts
        super().__init__(message)

    def __str__(self) -> str:
        trace = f", trace {self.trace_id}" if self.trace_id else ""
        return (
            f"{self.status} {self.message} ({self.method} {self.url}, "
            f"{_attempts(self.attempts)}{trace})"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={self.message!r})"


class BadRequestError(APIStatusError):
    """400: the server refused the request, e.g. the order is no longer active."""


class AuthenticationError(APIStatusError):
    """401: the token was refused, even after one refresh."""


class PermissionDeniedError(APIStatusError):
    """403: the token may not act on this account."""


class OrderNotFoundError(APIStatusError):
    """404 from an order endpoint: no such order on this account.

    `after_retry` is True when an earlier attempt of the same DELETE timed out, lost its
    connection or got a 5xx: that attempt most likely cancelled the order, and this answer
    means "already gone". A 400/409 "not cancellable" after such an attempt is reported the
    same way (`status` keeps the real code). Treat it as cancelled unless you know better
    (it may also have been filled in between).
    """

    def __init__(
        self, message: str, *, order_id: str | None = None, after_retry: bool = False, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.order_id = order_id
        self.after_retry = after_retry


class ConflictError(APIStatusError):
    """409: the order is in a state that conflicts with the request."""


class RateLimitError(APIStatusError):
    """429: too many requests. `retry_after` is the server's wait in seconds, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ServerError(APIStatusError):
    """5xx: the platform or a proxy in front of it failed."""


class ResponseValidationError(FrontOfficeError):
    """A 2xx answer whose body is not what the endpoint promises.

    `path` is the JSON path of the first bad field (e.g. `order.requestedAmount`), `body` the
    raw text (clipped), `url` the request URL, `attempts` the requests sent for the call. The
    server did answer 2xx: for a cancel, the order is most likely cancelled.
    """

    def __init__(
        self, message: str, *, url: str = "", body: str = "", path: str = "", attempts: int = 1
    ) -> None:
        self.message = message
        self.url = url
        self.body = _clip(body, _BODY_KEPT)
        self.path = path
        self.attempts = attempts
        super().__init__(message)

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        url = f" ({self.url})" if self.url else ""
        return f"invalid response{where}: {self.message}{url}"


class BulkCancelError(FrontOfficeError, ExceptionGroup[FrontOfficeError]):
    """Some ids of a bulk cancel failed; the group holds their errors.

    `outcomes` lists the failed `CancelOutcome`s, so each error can be traced to its id.
    """

    outcomes: Sequence[CancelOutcome]

    def __new__(
        cls, message: str, errors: Sequence[FrontOfficeError], outcomes: Sequence[CancelOutcome]
    ) -> BulkCancelError:
        self = super().__new__(cls, message, errors)
        self.outcomes = outcomes
        return self

    def __init__(
        self, message: str, errors: Sequence[FrontOfficeError], outcomes: Sequence[CancelOutcome]
    ) -> None:
        super().__init__(message, errors)

    def derive(self, excs: Sequence[FrontOfficeError]) -> BulkCancelError:  # type: ignore[override]
        """Keep the type when `except*` splits the group."""
        kept = [o for o in self.outcomes if o.error in excs]
        return BulkCancelError(self.message, excs, kept)


# --- mapping responses to errors -------------------------------------------------------------

_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: OrderNotFoundError,
    409: ConflictError,
    429: RateLimitError,
}
_TAG = re.compile(r"<[^<>]*>")  # [^<>]: linear even on unclosed "<<<<"
_SPACE = re.compile(r"\s+")


def make_status_error(
    *,
    status: int,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    attempts: int = 1,
    order_id: str | None = None,
    after_retry: bool = False,
) -> APIStatusError:
    """Build the right `APIStatusError` subclass from a non-2xx response.

    `order_id` is set for order endpoints; without it a 404 is a plain `APIStatusError`.
    `after_retry` says an earlier attempt of this DELETE may have reached the server: then a
    404, and a 400/409 "not cancellable", mean the order is most likely already cancelled,
    and both become `OrderNotFoundError(after_retry=True)`, keeping the real status.
    """
    text = body.decode("utf-8", "replace")
    message, trace_id = _describe_body(text)
    if not message:
        message = _reason(status)
    kw: dict[str, Any] = {
        "status": status,
        "method": method,
        "url": url,
        "headers": headers,
        "body": _clip(text, _BODY_KEPT),
        "trace_id": trace_id,
        "attempts": attempts,
    }
    if status == 404 or (after_retry and order_id is not None and status in (400, 409)):
        if order_id is None:
            return APIStatusError(message, **kw)
        return OrderNotFoundError(message, order_id=order_id, after_retry=after_retry, **kw)
    if status == 429:
        return RateLimitError(message, retry_after=parse_retry_after(headers), **kw)
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = ServerError if 500 <= status < 600 else APIStatusError
    return cls(message, **kw)


def _describe_body(text: str) -> tuple[str, str | None]:
    """The best human message and trace id found in an error body of any known shape.

    Both come back as one clipped line: they end up in logs, where a newline would let a
    server forge log lines.
    """
    stripped = text.strip()
    if not stripped:
        return "", None
    try:
        data = json.loads(stripped)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return _excerpt(stripped), None
    if not isinstance(data, dict):
        return _excerpt(stripped), None
    trace = data.get("traceId")
    trace_id = _one_line(trace, 100) if isinstance(trace, str) and trace.strip() else None
    for key in ("detail", "title", "message"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            message = _with_field_errors(_one_line(value, _EXCERPT), data.get("errors"))
            return _clip(message, 2 * _EXCERPT), trace_id
    field_errors = _field_errors(data.get("errors"))
    if field_errors:
        return field_errors, trace_id
    return _excerpt(stripped), trace_id


def _with_field_errors(message: str, errors: object) -> str:
    details = _field_errors(errors)
    return f"{message} ({details})" if details and details not in message else message


def _field_errors(errors: object) -> str:
    """ProblemDetails `errors: {field: [msg]}` or legacy `errors: [{message}]`, as one line."""
    parts: list[str] = []
    if isinstance(errors, dict):
        for field, messages in errors.items():
            if isinstance(messages, list):
                text = "; ".join(str(m) for m in messages)
            else:
                text = str(messages)
            parts.append(f"{field}: {_one_line(text, _EXCERPT)}")
    elif isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict) and isinstance(item.get("message"), str):
                parts.append(_one_line(item["message"], _EXCERPT))
            elif isinstance(item, str):
                parts.append(_one_line(item, _EXCERPT))
    return _clip("; ".join(parts), _EXCERPT)


def _excerpt(text: str) -> str:
    """A short, single-line excerpt of a non-JSON body (HTML tags dropped)."""
    # Bound the work first: the regexes below are not linear on hostile, unclosed markup.
    text = text[:_SCAN]
    if "<" in text:
        lowered = text.lower()
        start = lowered.find("<title")
        if start >= 0:
            opened = lowered.find(">", start)
            closed = lowered.find("</title>", opened)
            if opened >= 0 and closed >= 0 and text[opened + 1 : closed].strip():
                return _one_line(text[opened + 1 : closed], _EXCERPT)
        text = _TAG.sub(" ", text)
    return _one_line(text, _EXCERPT)


def _one_line(text: str, limit: int) -> str:
    return _clip(_SPACE.sub(" ", text[: limit * 4]).strip(), limit)


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds or HTTP-date), else None.

    Negative, non-finite and unparseable values give None.
    """
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
        return max(seconds, 0.0)
    if not 0 <= seconds < float("inf"):  # also rejects NaN
        return None
    return seconds


def make_connection_error(
    exc: BaseException, *, method: str, url: str, attempts: int
) -> APIConnectionError:
    """Translate a transport failure (aiohttp or asyncio) into our tree; the caller chains it."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError("timed out", method=method, url=url, attempts=attempts)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        what = "server closed the connection without answering"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        what = f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        cause = str(exc).lower()
        if "encoding" in cause or "decompress" in cause:
            what = f"cannot decode the response body: {_one_line(str(exc), _EXCERPT)}"
        else:
            what = "response body was cut off"
    elif isinstance(exc, aiohttp.ClientResponseError):
        what = f"malformed HTTP response: {_one_line(str(exc.message), _EXCERPT)}"
    elif isinstance(exc, OSError):
        what = f"network error: {exc.strerror or type(exc).__name__}"
    else:
        what = f"{type(exc).__name__}: {_one_line(str(exc), _EXCERPT)}"
    _forget_credentials(exc)
    return APIConnectionError(what, method=method, url=url, attempts=attempts)


def _forget_credentials(exc: BaseException) -> None:
    """Mask `Authorization` in an aiohttp error we chain as a cause: it keeps the request's
    headers, and a cause is printed in tracebacks and reachable from our error."""
    info = getattr(exc, "request_info", None)
    if not isinstance(info, aiohttp.RequestInfo) or "Authorization" not in info.headers:
        return
    headers = CIMultiDict(info.headers)
    headers["Authorization"] = "<hidden>"
    exc.request_info = aiohttp.RequestInfo(  # type: ignore[attr-defined]
        info.url, info.method, CIMultiDictProxy(headers), info.real_url
    )


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def _attempts(n: int) -> str:
    return "1 attempt" if n == 1 else f"{n} attempts"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
