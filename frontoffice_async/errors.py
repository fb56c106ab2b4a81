"""The exception tree. Classes only: `_answers` turns responses and transport failures into them.

FrontOfficeError
├── InvalidOrderIdError           an id that can never be an order id (also ValueError)
├── InvalidPositionIdError        an id that can never be a position id (also ValueError)
├── InvalidAccountIdError         an account id that cannot go in a header (also ValueError)
├── ClientClosedError             the client was closed before the request left (also RuntimeError)
├── APIConnectionError            network failure after retries
│   └── APITimeoutError           an attempt, a wait or the whole call ran out of time
├── APIStatusError                any non-2xx answer
│   ├── BadRequestError           400
│   │   └── OrderNotActiveError   400 from a cancel endpoint: the order exists but is final
│   ├── AuthenticationError       401 (after one token refresh)
│   ├── PermissionDeniedError     403
│   ├── OrderNotFoundError        404 on an order endpoint
│   ├── ConflictError             409: busy, try again; the order may still be live
│   ├── RateLimitError            429
│   └── ServerError               5xx
├── ResponseValidationError       2xx whose body is not what the endpoint promises
├── CancelNotConfirmedError       2xx to a cancel, but the order it returned is still active
├── HubError                      the OpenOrders hub refused, failed, or ended before its snapshot
├── TokenProviderError            the caller's token provider raised or returned no usable token
├── OrdersStillOpenError          cancel-all (or flatten) ended with orders still open
├── PositionsStillOpenError       flatten ended with positions still open
├── BulkCancelError               some ids of a bulk cancel failed (also an ExceptionGroup)
└── FlattenError                  flatten left something that may still be open (a group)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Required, TypedDict, Unpack

if TYPE_CHECKING:
    from .models import OpenOrder, OpenPosition, Order, StopOrder

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BulkCancelError",
    "CancelNotConfirmedError",
    "ClientClosedError",
    "ConflictError",
    "FlattenError",
    "FrontOfficeError",
    "GuardError",
    "HubError",
    "InvalidAccountIdError",
    "InvalidOrderIdError",
    "InvalidPositionIdError",
    "OrderNotActiveError",
    "OrderNotFoundError",
    "OrdersStillOpenError",
    "PermissionDeniedError",
    "PositionsStillOpenError",
    "RateLimitError",
    "ResponseValidationError",
    "ServerError",
    "TokenProviderError",
]

_EMPTY: Mapping[str, str] = {}


class StatusFields(TypedDict, total=False):
    """The keywords of `APIStatusError` that its subclasses pass on unchanged."""

    status: Required[int]
    method: Required[str]
    url: Required[str]
    headers: Mapping[str, str]
    body: str
    trace_id: str | None
    attempts: int


class FrontOfficeError(Exception):
    """Base of every error this library raises on purpose."""

    def as_dict(self) -> dict[str, Any]:
        """This error as JSON-ready data, the shape of the CLI's `--json` error document.

        `type` (the class name), `status` (the HTTP status, or None), `message` (one line),
        `trace_id` (the server's correlation id, or None) and `order_id` (the order the call
        named, or None); an error that carries the order the platform returned
        (`OrderNotActiveError` for a fill, `CancelNotConfirmedError`) adds `order`, that
        order's `as_dict()`. Never the token: the text is masked before it is kept.

        Example:
            >>> except FrontOfficeError as exc:
            ...     return JSONResponse({"error": exc.as_dict()}, status_code=502)
        """
        status = getattr(self, "status", None)
        message = getattr(self, "message", None)
        trace_id = getattr(self, "trace_id", None)
        order_id = getattr(self, "order_id", None)
        text = message if isinstance(message, str) and message else str(self)
        data: dict[str, Any] = {
            "type": type(self).__name__,
            "status": status if isinstance(status, int) else None,
            "message": " ".join(text.split()),
            "trace_id": trace_id if isinstance(trace_id, str) else None,
            "order_id": order_id if isinstance(order_id, str) else None,
        }
        order = getattr(self, "order", None)
        if order is not None:
            data["order"] = order.as_dict()
        return data


class InvalidOrderIdError(FrontOfficeError, ValueError):
    """An order id that cannot be valid (empty, blank, `.`, control characters, too long).

    Raised before anything is sent. For an id that is not a `str` at all, the error raised is
    also a `TypeError`.
    """

    def __init__(self, order_id: object, reason: str) -> None:
        self.order_id: object = order_id
        """The refused value, as given."""
        self.reason: str = reason
        """Why it cannot be an order id."""
        shown = repr(order_id)
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        super().__init__(f"invalid order id {shown}: {reason}")


class OrderIdTypeError(InvalidOrderIdError, TypeError):
    """An order id that is not a `str`."""


class InvalidPositionIdError(FrontOfficeError, ValueError):
    """A position id that cannot be valid (not a str, empty, blank, `.`, control characters,
    too long). Raised before anything is sent."""

    def __init__(self, position_id: object, reason: str) -> None:
        self.position_id: object = position_id
        """The refused value, as given."""
        self.reason: str = reason
        """Why it cannot be a position id."""
        shown = repr(position_id)
        shown = shown if len(shown) <= 60 else shown[:59] + "…"
        super().__init__(f"invalid position id {shown}: {reason}")


class InvalidAccountIdError(FrontOfficeError, ValueError):
    """An account id that cannot be sent (empty, too long, spaces, control or non-ASCII
    characters: in a header those would be injection or mojibake). Raised before sending."""


class ClientClosedError(FrontOfficeError, RuntimeError):
    """The client was closed (or its borrowed session was) before this request was sent.

    No request of the call was sent after the close began; `attempts` counts those sent
    before it (0 when none was).
    """

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        self.attempts: int = attempts
        """Requests the call had sent before the client was closed."""
        super().__init__(message)


class APIConnectionError(FrontOfficeError):
    """The request failed on the network (refused, reset, DNS...) after all retries."""

    def __init__(self, message: str, *, method: str, url: str, attempts: int = 1) -> None:
        self.method: str = method
        """HTTP method of the request."""
        self.url: str = url
        """Request URL without its query (which may hold a token)."""
        self.attempts: int = attempts
        """Requests sent for the call (0: none left, e.g. the deadline passed first)."""
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.args[0]} ({self.method} {self.url}, {_attempts_text(self.attempts)})"


class APITimeoutError(APIConnectionError, TimeoutError):
    """An attempt exceeded its timeout, or a wait (rate limiter, token provider, hub) or the
    whole call exceeded the policy's deadline."""


class TokenProviderTimeoutError(APITimeoutError):
    """The token provider was still running at the call's deadline (a bulk call stops)."""


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
        headers: Mapping[str, str] = _EMPTY,
        body: str = "",
        trace_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.message: str = message
        """The best human-readable text found in the body (one line, clipped)."""
        self.status: int = status
        """The HTTP status code."""
        self.method: str = method
        """HTTP method of the request."""
        self.url: str = url
        """Request URL without its query."""
        self.headers: Mapping[str, str] = headers
        """Response headers."""
        self.body: str = body
        """The raw response body as text, clipped to a few KiB."""
        self.trace_id: str | None = trace_id
        """The server's correlation id (ProblemDetails `traceId`), if it sent one."""
        self.attempts: int = attempts
        """Requests sent for the call, this answer's included."""
        super().__init__(message)

    def __str__(self) -> str:
        trace = f", trace {self.trace_id}" if self.trace_id else ""
        return (
            f"{self.status} {self.message} ({self.method} {self.url}, "
            f"{_attempts_text(self.attempts)}{trace})"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, message={self.message!r})"


class BadRequestError(APIStatusError):
    """400: the server refused the request as invalid."""


class OrderNotActiveError(BadRequestError):
    """The order exists but can no longer be cancelled: it is final.

    Raised for a 400 from a cancel endpoint that speaks about the order (the client checks ids
    and the account before sending; a 400 about the request itself, such as a validation
    problem naming other fields or an unsupported API version, is a plain `BadRequestError`).
    Also raised for a 2xx whose order came back filled (`Completed`), or a stop order that came
    back `Activated` (it became a live order): then `order` holds that record, so the fill can
    be seen, and `status` is the 2xx. `after_retry` is True when an earlier attempt of the same
    call may have reached the server (it timed out, lost its connection or got a 5xx): that
    attempt most likely cancelled the order.
    """

    def __init__(
        self,
        message: str,
        *,
        order_id: str,
        after_retry: bool = False,
        order: Order | StopOrder | None = None,
        **fields: Unpack[StatusFields],
    ) -> None:
        super().__init__(message, **fields)
        self.order_id: str = order_id
        """The order the cancel named."""
        self.after_retry: bool = after_retry
        """True when an earlier attempt of this call may already have cancelled the order."""
        self.order: Order | StopOrder | None = order
        """The order the platform returned instead of cancelling it (filled, or a stop order
        that activated), or None for a 400."""


class AuthenticationError(APIStatusError):
    """401: the token was refused, even after one refresh."""


class PermissionDeniedError(APIStatusError):
    """403: the token may not act on this account."""


class OrderNotFoundError(APIStatusError):
    """404 from an order endpoint: no such order on this account.

    `after_retry` is True when an earlier attempt of the same DELETE timed out, lost its
    connection or got a 5xx: that attempt most likely cancelled the order, and this answer
    means "already gone". Treat it as cancelled unless you know better.
    """

    def __init__(
        self,
        message: str,
        *,
        order_id: str,
        after_retry: bool = False,
        **fields: Unpack[StatusFields],
    ) -> None:
        super().__init__(message, **fields)
        self.order_id: str = order_id
        """The order the request named."""
        self.after_retry: bool = after_retry
        """True when an earlier attempt of this call may already have cancelled the order."""


class ConflictError(APIStatusError):
    """409: the platform is busy with the order; it may still be live. Try again later."""


class RateLimitError(APIStatusError):
    """429: too many requests. `retry_after` is the server's wait in seconds, if it gave one."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        **fields: Unpack[StatusFields],
    ) -> None:
        super().__init__(message, **fields)
        self.retry_after: float | None = retry_after
        """Seconds the server asked to wait (`Retry-After`), or None."""


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
        self.message: str = message
        """What is wrong, in one line."""
        self.url: str = url
        """Request URL without its query."""
        # Not clipped here: the library masks the token in it first, then clips it (a token
        # cut in two by a clip would not be found by the masking).
        self.body: str = body
        """The raw body as text, clipped (to 4096 characters, or less in a bulk result)."""
        self.path: str = path
        """JSON path of the first bad field, e.g. `order.status`."""
        self.attempts: int = attempts
        """Requests sent for the call."""
        super().__init__(message)

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        url = f" ({self.url})" if self.url else ""
        return f"invalid response{where}: {self.message}{url}"


class CancelNotConfirmedError(FrontOfficeError):
    """A cancel was answered 2xx, but the order it returned is not cancelled: its status is
    still active (`Started`, `Pending`, `Working`; a stop order `WaitingForActivation`) or one
    this version does not know.

    The order may still be live: this is a failure. Cancel it again (a later round of
    `cancel_all_orders` re-checks it). `order` is the record the platform returned.
    """

    def __init__(
        self,
        message: str,
        *,
        order_id: str,
        order: Order | StopOrder,
        url: str = "",
        attempts: int = 1,
    ) -> None:
        self.message: str = message
        """What the answer said instead of "cancelled", in one line."""
        self.order_id: str = order_id
        """The order the cancel named."""
        self.order: Order | StopOrder = order
        """The order as the platform returned it, with the status it still has."""
        self.url: str = url
        """Request URL without its query."""
        self.attempts: int = attempts
        """Requests sent for the call."""
        super().__init__(message)

    def __str__(self) -> str:
        url = f" (DELETE {self.url}, {_attempts_text(self.attempts)})" if self.url else ""
        return f"cancel not confirmed: {self.message}{url}"


class GuardError(FrontOfficeError):
    """The guard could not be started or did not become ready: nothing guards the account.

    When the platform refused the guard's start check, the error raised is the platform's
    own instead (`AuthenticationError` for a wrong token, `PermissionDeniedError`, ...).
    """


class HubError(FrontOfficeError):
    """The OpenOrders hub refused the stream, failed it, or ended before its snapshot.

    The message is the hub's own text, on one line and clipped.
    """


class TokenProviderError(FrontOfficeError):
    """The token provider (`token=` callable) raised, or returned no usable token.

    Its exception, if any, is the `__cause__`. `attempts` counts the requests the call had
    sent before (usually 0): a provider failure is never reported as a network failure.
    """

    def __init__(self, message: str, *, attempts: int = 0) -> None:
        self.attempts: int = attempts
        """Requests the call had sent before the provider failed."""
        super().__init__(message)


class OrdersStillOpenError(FrontOfficeError):
    """Cancel-all (or flatten) ended with matching orders still open (or records it could not
    read).

    `orders` are the `OpenOrder`s the last snapshot still showed; `unreadable` the raw
    records (clipped text) of that snapshot whose order id could not be read; `account_id` the
    account, when flatten says it.
    """

    def __init__(
        self,
        orders: Sequence[OpenOrder],
        *,
        unreadable: Sequence[str] = (),
        account_id: str | None = None,
    ) -> None:
        self.orders: tuple[OpenOrder, ...] = tuple(orders)
        """The orders still open after the last round."""
        self.unreadable: tuple[str, ...] = tuple(unreadable)
        """Raw records of the last snapshot without a readable order id."""
        self.account_id: str | None = account_id
        """The account they belong to (flatten), or None."""
        parts = [f"{len(self.orders)} orders still open"]
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable records")
        where = f" on {account_id}" if account_id else ""
        super().__init__(" and ".join(parts) + f"{where} after cancel-all")


class PositionsStillOpenError(FrontOfficeError):
    """Flatten ended with positions still open on an account (or records it could not read).

    `positions` are the `OpenPosition`s the last OpenPositions snapshot still showed;
    `unreadable` the raw records (clipped text) without a readable position id.
    """

    def __init__(
        self,
        positions: Sequence[OpenPosition],
        *,
        unreadable: Sequence[str] = (),
        account_id: str | None = None,
    ) -> None:
        self.positions: tuple[OpenPosition, ...] = tuple(positions)
        """The positions still open after the last round."""
        self.unreadable: tuple[str, ...] = tuple(unreadable)
        """Raw records of the last snapshot without a readable position id."""
        self.account_id: str | None = account_id
        """The account they belong to."""
        parts = [f"{len(self.positions)} positions still open"]
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable records")
        where = f" on {account_id}" if account_id else ""
        super().__init__(" and ".join(parts) + f"{where} after flatten")


class _Outcome(Protocol):
    """What `BulkCancelError` needs of a failed outcome (see `CancelOutcome`)."""

    @property
    def order_id(self) -> str: ...
    @property
    def error(self) -> FrontOfficeError | None: ...


class BulkCancelError(FrontOfficeError, ExceptionGroup[FrontOfficeError]):
    """Some ids of a bulk cancel failed (or cancel-all left orders open); the group holds
    their errors.

    `outcomes` lists the failed `CancelOutcome`s, so each error can be traced to its id; an
    `OrdersStillOpenError` in the group has no outcome.
    """

    outcomes: Sequence[Any]

    def __new__(
        cls, message: str, errors: Sequence[FrontOfficeError], outcomes: Sequence[_Outcome]
    ) -> BulkCancelError:
        self = super().__new__(cls, message, errors)
        self.outcomes = outcomes
        return self

    def __init__(
        self, message: str, errors: Sequence[FrontOfficeError], outcomes: Sequence[_Outcome]
    ) -> None:
        super().__init__(message, errors)

    def derive(self, excs: Sequence[FrontOfficeError]) -> BulkCancelError:  # type: ignore[override]
        """Keep the type when `except*` splits the group."""
        kept = [o for o in self.outcomes if o.error in excs]
        return BulkCancelError(self.message, excs, kept)


class FlattenError(FrontOfficeError, ExceptionGroup[FrontOfficeError]):
    """Flatten ended with something that may still be open; the group holds what, account by
    account: the error that stopped an account (a 403, a 401...), a `BulkCancelError` for its
    order or stop-order cancels that failed, an `OrdersStillOpenError` and a
    `PositionsStillOpenError` for what its last snapshots still showed.

    `accounts` maps each account id with a failure to its errors, in the order asked.
    """

    accounts: Mapping[str, Sequence[FrontOfficeError]]

    def __new__(
        cls, message: str, accounts: Mapping[str, Sequence[FrontOfficeError]]
    ) -> FlattenError:
        errors = [error for errors in accounts.values() for error in errors]
        self = super().__new__(cls, message, errors)
        self.accounts = dict(accounts)
        return self

    def __init__(self, message: str, accounts: Mapping[str, Sequence[FrontOfficeError]]) -> None:
        errors = [error for errors in accounts.values() for error in errors]
        super().__init__(message, errors)

    def derive(self, excs: Sequence[FrontOfficeError]) -> FlattenError:  # type: ignore[override]
        """Keep the type when `except*` splits the group."""
        kept = {a: [e for e in errs if e in excs] for a, errs in self.accounts.items()}
        return FlattenError(self.message, {a: errs for a, errs in kept.items() if errs})


def _attempts_text(n: int) -> str:
    if n == 0:
        return "nothing sent"
    return "1 attempt" if n == 1 else f"{n} attempts"
