"""What the server said, read defensively: error bodies, `Retry-After`, transport failures.

The one place that turns a non-2xx answer or an aiohttp/OS failure into the error tree.
Everything that comes from the peer ends up here on one line and clipped, because it ends up
in logs, where a newline would let a server forge log lines.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Collection, Iterable, Mapping
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
)

__all__ = [
    "BODY_KEPT",
    "HIDDEN",
    "clip",
    "connection_error",
    "deadline_error",
    "describe_body",
    "final_connection_error",
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
) -> APIStatusError:
    """The `APIStatusError` subclass for a non-2xx answer.

    `order_id` marks a cancel endpoint: there a 404 is `OrderNotFoundError` and a 400 is
    `OrderNotActiveError`; elsewhere they are a plain `APIStatusError`/`BadRequestError`.
    `after_retry` says an earlier attempt of the call may have reached the server.
    """
    text = body.decode("utf-8", "replace")
    message, trace_id, from_the_api = _describe(text)
    if not message:
        message = _reason(status)
    kept = clip(text, BODY_KEPT)
    # Only the API's own answer (JSON, or no body) says something about the order; an HTML or
    # text page comes from a proxy, a WAF or an HTTP parser, and the order may still be live.
    if order_id is not None and status in (400, 404) and from_the_api:
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


def connection_error(
    exc: BaseException, *, method: str, url: str, attempts: int
) -> APIConnectionError:
    """Translate a transport failure (aiohttp, OS or a timeout); the caller chains it.

    Credentials the aiohttp error kept (the request's `Authorization` header) are masked
    first, because the caller keeps it as the `__cause__` of ours.
    """
    forget_credentials(exc)
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError("timed out", method=method, url=url, attempts=attempts)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        what = "server closed the connection without answering"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        what = f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        cause = str(exc).lower()
        if "encoding" in cause or "decompress" in cause:
            what = f"cannot decode the response body: {one_line(str(exc), EXCERPT)}"
        else:
            what = "response body was cut off"
    elif isinstance(exc, aiohttp.ClientResponseError):
        what = f"malformed HTTP response: {one_line(str(exc.message), EXCERPT)}"
    elif isinstance(exc, OSError):
        what = f"network error: {exc.strerror or type(exc).__name__}"
    else:
        what = f"{type(exc).__name__}: {one_line(str(exc), EXCERPT)}"
    return APIConnectionError(what, method=method, url=url, attempts=attempts)


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
    exc: BaseException, *, method: str, url: str, attempts: int, deadline: float | None
) -> APIConnectionError:
    """The error of a call whose last attempt failed on the network (`deadline`: the call's,
    when it has passed: a timeout then says so)."""
    error = connection_error(exc, method=method, url=url, attempts=attempts)
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


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret replaced by `[hidden]`, also where it is percent-encoded, wholly
    or in part, with hex digits in either case (as `quote`, `quote_plus` and yarl write it)."""
    for secret in secrets:
        if not secret:
            continue
        if "%" not in text and " " not in secret:
            text = text.replace(secret, HIDDEN)  # nothing encoded: the fast, usual case
        else:
            text = _pattern(secret).sub(HIDDEN, text)
    return text


@functools.lru_cache(maxsize=16)
def _pattern(secret: str) -> re.Pattern[str]:
    """Matches `secret` with any of its characters percent-encoded (cached: a client has a
    handful of live tokens, and masking runs only on the way to an error)."""
    parts = []
    for char in secret:
        encoded = "".join(f"%{byte:02X}" for byte in char.encode())
        plus = "|\\+" if char == " " else ""  # quote_plus writes a space as "+"
        parts.append(f"(?:{re.escape(char)}|(?i:{re.escape(encoded)}){plus})")
    return re.compile("".join(parts))


def scrub(error: FrontOfficeError, secrets: Collection[str]) -> FrontOfficeError:
    """Mask `secrets` in everything an error of ours shows: a server may echo a token back."""
    if not secrets:
        return error
    for name in ("message", "body", "trace_id", "url"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            setattr(error, name, mask(value, secrets))
    headers = getattr(error, "headers", None)
    if isinstance(headers, Mapping) and any(
        mask(v, secrets) != v for v in headers.values() if isinstance(v, str)
    ):
        error.headers = {  # type: ignore[attr-defined]
            k: mask(v, secrets) if isinstance(v, str) else v for k, v in headers.items()
        }
    error.args = tuple(mask(a, secrets) if isinstance(a, str) else a for a in error.args)
    return error


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


def describe_body(text: str) -> tuple[str, str | None]:
    """The best human message and trace id found in an error body of any known shape.

    ProblemDetails `detail`/`title` (+ `errors`), the legacy `errors[].message`, a plain
    `message`, or an excerpt of a non-JSON (HTML) body.
    """
    message, trace_id, _ = _describe(text)
    return message, trace_id


def _describe(text: str) -> tuple[str, str | None, bool]:
    """`describe_body`, and whether the body is the API's own (a JSON object, or empty)."""
    stripped = text.strip()
    if not stripped:
        return "", None, True
    try:
        data = json.loads(stripped)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return _excerpt(stripped), None, False
    if not isinstance(data, dict):
        return _excerpt(stripped), None, False
    trace = data.get("traceId")
    trace_id = one_line(trace, 100) if isinstance(trace, str) and trace.strip() else None
    for key in ("detail", "title", "message"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            message = _with_field_errors(one_line(value, EXCERPT), data.get("errors"))
            return clip(message, 2 * EXCERPT), trace_id, True
    field_errors = _field_errors(data.get("errors"))
    if field_errors:
        return field_errors, trace_id, True
    return _excerpt(stripped), trace_id, True


def one_line(text: str, limit: int = EXCERPT) -> str:
    """`text` with every run of whitespace (newlines included) made one space, other
    non-printable characters (ESC, bidi overrides) escaped, and clipped."""
    text = _SPACE.sub(" ", text[: limit * 4]).strip()
    if not text.isprintable():
        text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)
    return clip(text, limit)


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
            parts.append(f"{field}: {one_line(text, EXCERPT)}")
    elif isinstance(errors, list):
        for item in errors:
            if isinstance(item, dict) and isinstance(item.get("message"), str):
                parts.append(one_line(item["message"], EXCERPT))
            elif isinstance(item, str):
                parts.append(one_line(item, EXCERPT))
    return clip("; ".join(parts), EXCERPT)


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
                return one_line(text[opened + 1 : closed], EXCERPT)
        text = _TAG.sub(" ", text)
    return one_line(text, EXCERPT)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
