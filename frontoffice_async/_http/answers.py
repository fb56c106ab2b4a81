"""What the server said, read defensively: error bodies, `Retry-After`, transport failures.

The one place that turns a non-2xx answer or an aiohttp/OS failure into the error tree.
Everything that comes from the peer ends up here on one line, masked and then clipped (in that
order: a secret cut in two by the clip would show its head), because it ends up in logs, where a
newline would let a server forge log lines.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Final

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FrontOfficeError,
    OrderNotActiveError,
    OrderNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TokenProviderError,
)

__all__ = [
    "BODY_KEPT",
    "HIDDEN",
    "clip",
    "connection_error",
    "deadline_error",
    "describe_body",
    "final_connection_error",
    "keep",
    "lighten",
    "mask",
    "one_line",
    "retry_after_seconds",
    "safe_url",
    "scrub",
    "status_error",
]

#: What a secret found in a peer's text is replaced with (no angle brackets: an HTML
#: excerpt would strip them).
HIDDEN: Final = "[hidden]"

EXCERPT = 200  # characters of a peer's text shown in a message
#: Characters of a peer's body kept on an error: a proxy page can be megabytes.
BODY_KEPT: Final = 4096
_SCAN = 64 * 1024  # characters of a non-JSON body searched for a message
_TAG = re.compile(r"<[^<>]*>")  # [^<>]: linear even on unclosed "<<<<"
_SPACE = re.compile(r"\s+")

_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    409: ConflictError,
}


def status_error(
    *,
    status: int,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    attempts: int,
    order_id: str | None = None,
    after_retry: bool = False,
    secrets: Collection[str] = (),
) -> APIStatusError:
    """The `APIStatusError` subclass for a non-2xx answer.

    `order_id` marks a cancel endpoint: there a 404 is `OrderNotFoundError` and a 400 that
    speaks about the order is `OrderNotActiveError` (see `_about_the_order`); elsewhere they
    are a plain `APIStatusError`/`BadRequestError`. `after_retry` says an earlier attempt of
    the call may have reached the server. `secrets` are masked in everything taken from the
    answer before it is clipped, and in the headers kept.
    """
    text = body.decode("utf-8", "replace")
    data, message, trace_id = _describe(text, secrets)
    if not message:
        message = _reason(status)
    kept = keep(text, BODY_KEPT, secrets)
    if secrets:
        headers = _masked_headers(headers, secrets)
    # Only the API's own answer (JSON, or no body) says something about the order; an HTML or
    # text page comes from a proxy, a WAF or an HTTP parser, and the order may still be live.
    if order_id is not None and (
        (status == 404 and data is not _NOT_JSON)
        or (status == 400 and _about_the_order(data, message))
    ):
        cls = OrderNotActiveError if status == 400 else OrderNotFoundError
        return cls(
            message,
            order_id=order_id,
            after_retry=after_retry,
            status=status,
            method=method,
            url=url,
            headers=headers,
            body=kept,
            trace_id=trace_id,
            attempts=attempts,
        )
    if status == 429:
        return RateLimitError(
            message,
            retry_after=retry_after_seconds(headers),
            status=status,
            method=method,
            url=url,
            headers=headers,
            body=kept,
            trace_id=trace_id,
            attempts=attempts,
        )
    kind = _STATUS_CLASSES.get(status)
    if kind is None:
        kind = ServerError if 500 <= status < 600 else APIStatusError
    return kind(
        message,
        status=status,
        method=method,
        url=url,
        headers=headers,
        body=kept,
        trace_id=trace_id,
        attempts=attempts,
    )


#: What `_describe` returns as the data of a body that is not a JSON object.
_NOT_JSON: Final[dict[str, object]] = {}
#: The title ASP.NET Core gives a model-validation problem.
_VALIDATION_TITLE: Final = "one or more validation errors occurred."
#: ASP.NET API Versioning's error: its code, and its title or message in words.
_API_VERSION = re.compile(r"unsupported[\s_-]*api[\s_-]*version", re.IGNORECASE)
#: Keys of a validation problem's `errors` that name the order itself (lowercase, no `$.`).
_ORDER_FIELDS: Final = frozenset({"orderid", "order_id", "order.orderid"})


def _about_the_order(data: dict[str, object] | None, message: str) -> bool:
    """Whether the API's 400 to a cancel speaks about the order (it is final) rather than
    about the request: an empty body, an API-version error, or a validation problem that
    names only other request fields says nothing about the order, which may still be live.

    `data` is the JSON object of the body (None: no body; `_NOT_JSON`: not a JSON object).
    """
    if data is None or data is _NOT_JSON:
        return False
    if any(_API_VERSION.search(text) for text in _texts(data)):
        return False
    errors = data.get("errors")
    if isinstance(errors, dict):
        # ASP.NET Core's model validation: keyed by the request fields it refused. The
        # platform's own "not active" answer has this shape too, keyed by `orderId`.
        return any(
            isinstance(key, str) and key.lower().removeprefix("$.") in _ORDER_FIELDS
            for key in errors
        )
    title = data.get("title")
    if isinstance(title, str) and title.strip().lower() == _VALIDATION_TITLE:
        detail = data.get("detail")
        return isinstance(detail, str) and bool(detail.strip())
    # ProblemDetails or the legacy shape with a message of its own (not an excerpt of `{}`).
    return bool(message) and (
        any(isinstance(data.get(key), str) for key in ("detail", "title", "message"))
        or bool(_field_errors(errors, ()))
    )


def _texts(data: dict[str, object]) -> Iterator[str]:
    """The words of a body that can say "unsupported API version": its code, type, title,
    detail and message, at the top and in a nested `error` object (API Versioning's own)."""
    for where in (data, data.get("error")):
        if isinstance(where, dict):
            for key in ("code", "type", "title", "detail", "message"):
                value = where.get(key)
                if isinstance(value, str):
                    yield value[:_SCAN]


def _masked_headers(headers: Mapping[str, str], secrets: Collection[str]) -> Mapping[str, str]:
    """`headers`, or a copy with each value that holds a secret masked."""
    if not any(mask(v, secrets) != v for v in headers.values() if isinstance(v, str)):
        return headers
    return CIMultiDict(
        (k, mask(v, secrets) if isinstance(v, str) else v) for k, v in headers.items()
    )


def connection_error(
    exc: BaseException,
    *,
    method: str,
    url: str,
    attempts: int,
    secrets: Collection[str] = (),
) -> APIConnectionError:
    """Translate a transport failure (aiohttp, OS or a timeout); the caller chains it.

    Credentials the aiohttp error kept (the request's `Authorization` header) are masked
    first, because the caller keeps it as the `__cause__` of ours; `secrets` are masked in the
    text taken from it before that text is clipped.
    """
    forget_credentials(exc)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError("timed out", method=method, url=url, attempts=attempts)
    what = _transport_failure(exc, secrets)
    return APIConnectionError(what, method=method, url=url, attempts=attempts)


#: What a connection or TLS failure says, most specific first (subclasses before their base).
_CONNECT_FAILURES: Final[tuple[tuple[type[BaseException], str], ...]] = tuple(
    (kind, text)
    for kind, text in (
        (aiohttp.ClientConnectorCertificateError, "TLS: the server's certificate is not trusted"),
        (aiohttp.ClientSSLError, "TLS handshake failed"),
        (aiohttp.ClientConnectorDNSError, "cannot resolve the host"),
        (aiohttp.ClientProxyConnectionError, "cannot connect to the proxy"),
        (aiohttp.ServerFingerprintMismatch, "TLS: the server's certificate fingerprint differs"),
        (aiohttp.ServerDisconnectedError, "server closed the connection without answering"),
        # Absent from aiohttp 3.14.0, the declared floor: skipped where it is missing.
        (getattr(aiohttp, "UploadAbortedError", None), "the request body could not be sent"),
        (aiohttp.InvalidURL, "the request URL is not valid"),
        (aiohttp.NonHttpUrlClientError, "the request URL is not an HTTP URL"),
        (aiohttp.RedirectClientError, "a redirect that cannot be followed"),
        (aiohttp.WSMessageTypeError, "the websocket sent a message of an unexpected type"),
    )
    if kind is not None
)


def _transport_failure(exc: BaseException, secrets: Collection[str]) -> str:
    """What a transport failure (not a timeout) says, in one line, with `secrets` masked."""
    for kind, text in _CONNECT_FAILURES:
        if isinstance(exc, kind):
            if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
                exc, aiohttp.ClientConnectorCertificateError
            ):
                reason = exc.os_error.strerror or type(exc.os_error).__name__
                return f"{text}: {one_line(str(reason), EXCERPT, secrets)}"
            return text
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"
    if isinstance(exc, aiohttp.ClientPayloadError):
        cause = str(exc).lower()
        if "encoding" in cause or "decompress" in cause:
            return f"cannot decode the response body: {one_line(str(exc), EXCERPT, secrets)}"
        return "response body was cut off"
    if isinstance(exc, aiohttp.ClientHttpProxyError):
        reason = one_line(exc.message, EXCERPT, secrets)
        return f"the proxy refused the connection: {exc.status} {reason}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"malformed HTTP response: {one_line(str(exc.message), EXCERPT, secrets)}"
    if isinstance(exc, OSError):
        return f"network error: {exc.strerror or type(exc).__name__}"
    if isinstance(exc, aiohttp.ServerConnectionError):
        return f"the connection to the server failed ({type(exc).__name__})"
    if isinstance(exc, aiohttp.ClientError):
        return f"the connection failed ({type(exc).__name__})"
    return f"{type(exc).__name__}: {one_line(str(exc), EXCERPT, secrets)}"


def deadline_error(
    deadline: float | None,
    what: str | None,
    *,
    method: str,
    url: str,
    attempts: int,
    kind: type[APITimeoutError] = APITimeoutError,
) -> APITimeoutError:
    """The error of a call whose deadline passed (`what`: what it was still waiting for)."""
    waiting = "" if what is None else f" waiting for {what}"
    return kind(
        f"deadline of {deadline or 0:g}s exceeded{waiting}",
        method=method,
        url=url,
        attempts=attempts,
    )


def final_connection_error(
    exc: BaseException,
    *,
    method: str,
    url: str,
    attempts: int,
    deadline: float | None,
    secrets: Collection[str] = (),
) -> APIConnectionError:
    """The error of a call whose last attempt failed on the network (`deadline`: the call's,
    when it has passed: a timeout then says so)."""
    error = connection_error(exc, method=method, url=url, attempts=attempts, secrets=secrets)
    if isinstance(error, APITimeoutError) and deadline is not None:
        return deadline_error(deadline, None, method=method, url=url, attempts=attempts)
    return error


def safe_url(url: URL) -> str:
    """`url` as it may appear in errors and logs: query strings can carry tokens (the
    websocket hub's does); paths and hosts cannot."""
    return str(url.with_query(None).with_fragment(None))


def forget_credentials(exc: BaseException) -> None:
    """Mask `Authorization` in an aiohttp error's `request_info` (it keeps the headers)."""
    info = getattr(exc, "request_info", None)
    if not isinstance(info, aiohttp.RequestInfo) or "Authorization" not in info.headers:
        return
    headers = CIMultiDict(info.headers)
    headers["Authorization"] = HIDDEN
    masked = aiohttp.RequestInfo(info.url, info.method, CIMultiDictProxy(headers), info.real_url)
    exc.request_info = masked  # type: ignore[attr-defined]
    # ClientResponseError keeps the same RequestInfo as its first argument, too.
    exc.args = tuple(masked if arg is info else arg for arg in exc.args)


#: A secret shorter than this is masked only where it stands alone (see `mask`).
SHORT_SECRET: Final = 16
#: Where a short secret stands alone: no token character (RFC 6750's b64token) touches it, so
#: it is not part of a longer word (an id, a host). `=` may come before it (a query's or a
#: header's value) and a percent-encoded character on either side.
_ALONE_BEFORE: Final = r"(?:(?<=%[0-9A-Fa-f]{2})|(?<![A-Za-z0-9._~+/-]))"
_ALONE_AFTER: Final = r"(?=%[0-9A-Fa-f]{2}|(?![A-Za-z0-9._~+/=-]))"


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret replaced by `[hidden]`.

    A secret of `SHORT_SECRET` characters or more is hidden wherever it appears, raw or
    percent-encoded (wholly or in part, hex digits in either case, as `quote`, `quote_plus`
    and yarl write it). A shorter one (a test token, a common word) only where it stands alone,
    not inside a longer run of token characters, so that ids and hosts stay readable
    (`127.0.0.1` with a token "0"); after `=` it counts as alone (`access_token=...`).
    """
    for secret in secrets:
        if not secret:
            continue
        if len(secret) >= SHORT_SECRET and "%" not in text and " " not in secret:
            text = text.replace(secret, HIDDEN)  # nothing encoded: the fast, usual case
        elif "%" in text or secret in text:
            text = _pattern(secret, len(secret) < SHORT_SECRET).sub(HIDDEN, text)
    return text


@functools.lru_cache(maxsize=64)
def _pattern(secret: str, alone: bool) -> re.Pattern[str]:
    """Matches `secret` with any of its characters percent-encoded (cached: a client has a
    handful of live tokens, and masking runs only on the way to an error); with `alone`, only
    where no token character touches it (`=` may come before: a query's or header's value)."""
    parts = []
    for char in secret:
        encoded = "".join(f"%{byte:02X}" for byte in char.encode())
        plus = "|\\+" if char == " " else ""  # quote_plus writes a space as "+"
        parts.append(f"(?:{re.escape(char)}|(?i:{re.escape(encoded)}){plus})")
    body = "".join(parts)
    return re.compile(f"{_ALONE_BEFORE}{body}{_ALONE_AFTER}" if alone else body)


def keep(text: str, limit: int, secrets: Collection[str] = ()) -> str:
    """`text` masked, then clipped to `limit` characters: a secret that the clip would cut in
    two is hidden whole, never shown in part. Only the head of a huge text is scanned."""
    head, cut = _masked_head(text, limit, secrets)
    if cut and len(head) < limit:
        return head + "…"
    return clip(head, limit)


def _masked_head(text: str, size: int, secrets: Collection[str]) -> tuple[str, bool]:
    """At least the first `size` characters' worth of `text`, masked, and whether the rest was
    cut off. A secret cut by the end of the scanned head is dropped with its surroundings."""
    if not secrets:
        return (text, False) if len(text) <= size else (text[:size], True)
    if len(text) <= size:
        return mask(text, secrets), False
    # The longest form a secret can take: every UTF-8 byte percent-encoded.
    margin = max(len(secret.encode()) * 3 for secret in secrets) + 1
    window = size + margin
    while window < len(text):
        # A secret cut by the end of the window is unmatched and sits in its last `margin`
        # characters, which nothing after it can move: they are dropped. Masking shrinks the
        # text, so the window grows until what is left covers `size`.
        head = mask(text[:window], secrets)
        if len(head) - margin >= size:
            return head[: len(head) - margin], True
        window *= 2
    return mask(text, secrets), False


def scrub(error: FrontOfficeError, secrets: Collection[str]) -> FrontOfficeError:
    """Mask `secrets` in everything an error of ours shows (a server may echo a token back),
    and clip the body it keeps; text built with the secrets at hand is masked already."""
    body = getattr(error, "body", None)
    if isinstance(body, str) and len(body) > BODY_KEPT:
        # A `ResponseValidationError` keeps the whole body until here: masked, then clipped.
        error.body = keep(body, BODY_KEPT, secrets)  # type: ignore[attr-defined]
    if not secrets:
        return error
    for name in ("message", "body", "trace_id", "url"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, mask(value, secrets))
    headers = getattr(error, "headers", None)
    if isinstance(headers, Mapping):
        error.headers = _masked_headers(headers, secrets)  # type: ignore[attr-defined]
    error.args = tuple(mask(a, secrets) if isinstance(a, str) else a for a in error.args)
    return error


#: Bytes of text a field of a lightened error keeps at most (see `lighten`).
_LIGHT_BODY: Final = 256
_LIGHT_TEXT: Final = 256
#: The response headers a lightened error keeps: the wait, and the server's correlation ids.
_LIGHT_HEADERS: Final = (
    "Retry-After",
    "X-Trace-Id",
    "X-Request-Id",
    "Request-Id",
    "X-Correlation-Id",
    "traceparent",
)


def lighten(error: FrontOfficeError) -> FrontOfficeError:
    """`error` made light enough to keep by the thousand in a bulk result (under 2 KiB each,
    whatever the answer was): its body clipped, its message and trace id short, only the
    `Retry-After` and trace-id headers, no traceback frames, and no cause chain (aiohttp's
    errors hold the request, the connection key and more) except a token provider's exception,
    which `TokenProviderError` points at. Changes `error` in place and returns it.

    Text is clipped after masking, as everywhere: a lightened error shows less, never more.
    """
    error.__traceback__ = None
    if not isinstance(error, TokenProviderError):
        error.__cause__ = None
        error.__context__ = None
        error.__suppress_context__ = True
    else:
        _drop_frames(error.__cause__ or error.__context__)
    if getattr(error, "body", None):
        error.body = _clip_bytes(error.body, _LIGHT_BODY)  # type: ignore[attr-defined]
    for name in ("message", "trace_id"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, _clip_bytes(value, _LIGHT_TEXT))
    if error.args and isinstance(error.args[0], str):
        message = getattr(error, "message", None)
        first = message if isinstance(message, str) else _clip_bytes(error.args[0], _LIGHT_TEXT)
        error.args = (first, *error.args[1:])
    headers = getattr(error, "headers", None)
    if isinstance(headers, Mapping) and headers:
        error.headers = {  # type: ignore[attr-defined]
            name: _clip_bytes(headers[name], _LIGHT_TEXT)
            for name in _LIGHT_HEADERS
            if isinstance(headers.get(name), str)
        }
    return error


def _drop_frames(error: BaseException | None) -> None:
    """Drop the traceback frames of `error` and of its causes (a loop of causes is cut)."""
    for _ in range(16):
        if error is None:
            return
        error.__traceback__ = None
        error = error.__cause__ or error.__context__


def _clip_bytes(text: str, size: int) -> str:
    """`text` clipped so that it takes about `size` bytes in memory whatever its characters
    (a str of emoji takes 4 bytes a character, of ASCII 1)."""
    if len(text) <= size // 4:
        return text
    width = 1 if text.isascii() else 4 if max(text) > "\uffff" else 2
    return clip(text, max(size // width, 1))


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header, or None when absent or invalid.

    Only the two forms RFC 9110 allows count: ASCII digits (delta-seconds; a number too large
    for a float is `inf`, so it is "too long", never "now") or an HTTP-date (a date in the
    past is 0). Signs, underscores, decimals, non-ASCII digits and anything else are ignored.
    """
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    if raw.isascii() and raw.isdigit():
        if len(raw) > 300:  # float(int) overflows past ~1e308; it is far too long anyway
            return math.inf
        return float(int(raw))
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def describe_body(text: str, secrets: Collection[str] = ()) -> tuple[str, str | None]:
    """The best human message and trace id found in an error body of any known shape.

    ProblemDetails `detail`/`title` (+ `errors`), the legacy `errors[].message`, a plain
    `message`, or an excerpt of a non-JSON (HTML) body; `secrets` masked before clipping.
    """
    _, message, trace_id = _describe(text, secrets)
    return message, trace_id


def _describe(
    text: str, secrets: Collection[str] = ()
) -> tuple[dict[str, object] | None, str, str | None]:
    """The body's JSON object (None for no body, `_NOT_JSON` for anything but a JSON object),
    its message and its trace id, each masked then clipped."""
    stripped = text.strip()
    if not stripped:
        return None, "", None
    try:
        data = json.loads(stripped)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return _NOT_JSON, _excerpt(stripped, secrets), None
    if not isinstance(data, dict):
        return _NOT_JSON, _excerpt(stripped, secrets), None
    trace = data.get("traceId")
    trace_id = one_line(trace, 100, secrets) if isinstance(trace, str) and trace.strip() else None
    for key in ("detail", "title", "message"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            message = _with_field_errors(
                one_line(value, EXCERPT, secrets), data.get("errors"), secrets
            )
            return data, clip(message, 2 * EXCERPT), trace_id
    field_errors = _field_errors(data.get("errors"), secrets)
    if field_errors:
        return data, field_errors, trace_id
    return data, _excerpt(stripped, secrets), trace_id


def one_line(text: str, limit: int = EXCERPT, secrets: Collection[str] = ()) -> str:
    """`text` with `secrets` masked, every run of whitespace (newlines included) made one
    space, other non-printable characters (ESC, bidi overrides) escaped, and then clipped."""
    head, cut = _masked_head(text, limit * 4, secrets)
    text = _SPACE.sub(" ", head).strip()
    if not text.isprintable():
        text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
    if cut and len(text) < limit:
        return text + "…"
    return clip(text, limit)


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _with_field_errors(message: str, errors: object, secrets: Collection[str]) -> str:
    details = _field_errors(errors, secrets)
    return f"{message} ({details})" if details and details not in message else message


def _field_errors(errors: object, secrets: Collection[str]) -> str:
    """ProblemDetails `errors: {field: [msg]}` or legacy `errors: [{message}]`, as one line."""
    parts: list[str] = []
    if isinstance(errors, dict):
        for field, messages in errors.items():
            if isinstance(messages, list):
                text = "; ".join(str(m) for m in messages)
            else:
                text = str(messages)
            parts.append(
                f"{one_line(str(field), EXCERPT, secrets)}: {one_line(text, EXCERPT, secrets)}"
            )
    elif isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict) and isinstance(item.get("message"), str):
                parts.append(one_line(item["message"], EXCERPT, secrets))
            elif isinstance(item, str):
                parts.append(one_line(item, EXCERPT, secrets))
    return clip("; ".join(parts), EXCERPT)


def _excerpt(text: str, secrets: Collection[str] = ()) -> str:
    """A short, single-line excerpt of a non-JSON body (HTML tags dropped), masked first."""
    # Bound the work first: the regexes below are not linear on hostile, unclosed markup.
    text, _ = _masked_head(text, _SCAN, secrets)
    if "<" in text:
        lowered = text.lower()
        start = lowered.find("<title")
        if start >= 0:
            opened = lowered.find(">", start)
            closed = lowered.find("</title>", opened)
            if opened >= 0 and closed >= 0 and text[opened + 1 : closed].strip():
                return one_line(text[opened + 1 : closed], EXCERPT)
        text = _TAG.sub(" ", text)
    return one_line(text, EXCERPT)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
