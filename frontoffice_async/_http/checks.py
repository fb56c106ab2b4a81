"""Checks of what callers pass, before anything is sent: ids, accounts, sides, headers, URLs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

from yarl import URL

from ..errors import (
    InvalidAccountIdError,
    InvalidOrderIdError,
    InvalidPositionIdError,
    OrderIdTypeError,
)
from ..models import OrderSide

__all__ = [
    "MAX_ID_LENGTH",
    "check_account_id",
    "check_headers",
    "check_market_id",
    "check_rounds",
    "normalise_base_url",
    "order_path_segment",
    "parse_side",
    "position_path_segment",
]

MAX_ID_LENGTH: Final = 128
# Set by the client, the retry middleware or aiohttp; or they change how the request is framed
# or forwarded, so a server or proxy could refuse it with a 400 that says nothing of the order.
_RESERVED_HEADERS: Final = frozenset(
    (
        "authorization",
        "accountid",
        "host",
        "connection",
        "content-length",
        "expect",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)
#: Bytes of extra headers at most: servers refuse requests whose headers exceed 8 KiB.
_MAX_HEADERS_SIZE: Final = 4096


def order_path_segment(order_id: object) -> str:
    """The id, percent-encoded as exactly one path segment, or `InvalidOrderIdError`."""
    if not isinstance(order_id, str):
        raise OrderIdTypeError(order_id, f"expected a str, got {type(order_id).__name__}")
    if order_id.isalnum() and order_id.isascii() and len(order_id) <= MAX_ID_LENGTH:
        return order_id  # the usual ULID: nothing to check or encode
    problem = _id_problem(order_id)
    if problem is not None:
        raise InvalidOrderIdError(order_id, problem)
    return quote(order_id, safe="")


def position_path_segment(position_id: object) -> str:
    """A position id as exactly one path segment, checked like an order id, or
    `InvalidPositionIdError`."""
    if not isinstance(position_id, str):
        kind = type(position_id).__name__
        raise InvalidPositionIdError(position_id, f"expected a str, got {kind}")
    problem = _id_problem(position_id)
    if problem is not None:
        raise InvalidPositionIdError(position_id, problem)
    return quote(position_id, safe="")


def _id_problem(value: str) -> str | None:
    """Why `value` cannot be an id of the platform's, or None."""
    if not value or value.isspace():
        return "empty or blank"
    if value != value.strip():
        return "leading or trailing whitespace"
    if value in {".", ".."}:
        return "a dot segment is not an id"
    if len(value) > MAX_ID_LENGTH:
        return f"longer than {MAX_ID_LENGTH} characters"
    if not value.isprintable():
        return "contains control characters"
    return None


def check_account_id(account_id: object) -> str:
    """`account_id` if it can go in the `accountId` header, else `InvalidAccountIdError`."""
    if not isinstance(account_id, str):
        raise TypeError(f"account_id must be a str, got {type(account_id).__name__}")
    if not account_id or len(account_id) > MAX_ID_LENGTH:
        raise InvalidAccountIdError("account_id must be 1 to 128 characters")
    if not (account_id.isascii() and account_id.isprintable()) or " " in account_id:
        # Goes into a header: CR/LF or non-ASCII would be header injection or mojibake.
        raise InvalidAccountIdError(
            f"account_id {account_id[:40]!r} holds spaces, control or non-ASCII chars"
        )
    return account_id


def check_market_id(market_id: object) -> str | None:
    """A market filter: None (every market) or a non-empty str such as `spot.eth_usdt`."""
    if market_id is None:
        return None
    if not isinstance(market_id, str):
        raise TypeError(f"market_id must be a str or None, got {type(market_id).__name__}")
    if not market_id.strip():
        # "" matches no order: a cancel-all would verify an empty selection and succeed.
        raise ValueError("market_id must be a non-empty str or None (None: every market)")
    return market_id


def check_rounds(rounds: object) -> int:
    """`rounds` if it is a positive int, else ValueError."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int, got {rounds!r}")
    return rounds


def parse_side(side: object) -> OrderSide:
    """`OrderSide.BUY`, "Buy", "buy" or "BUY" -> `OrderSide.BUY`; anything else ValueError."""
    if isinstance(side, str):
        for member in OrderSide:
            if side.strip().casefold() == member.value.casefold():
                return member
    raise ValueError(f"side must be one of {[m.value for m in OrderSide]}, got {side!r}")


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Extra request headers as a plain dict; ValueError/TypeError for what cannot be sent."""
    if headers is None:
        return {}
    checked: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("default_headers must map str names to str values")
        if (
            not name
            or not name.isascii()
            or not name.isprintable()
            or any(c in name for c in ' :()<>@,;"/[]?={}\\')
        ):
            raise ValueError(f"default_headers: {name[:40]!r} is not a header name")
        if not value.isascii() or not value.isprintable():
            # Never echo the value: it may be a secret.
            raise ValueError(f"default_headers[{name!r}] holds control or non-ASCII characters")
        if name.casefold() in _RESERVED_HEADERS:
            raise ValueError(f"default_headers cannot set {name}: the client or aiohttp sets it")
        checked[name] = value
    if sum(len(n) + len(v) + 4 for n, v in checked.items()) > _MAX_HEADERS_SIZE:
        raise ValueError(f"default_headers: more than {_MAX_HEADERS_SIZE} bytes in all")
    return checked


def normalise_base_url(base_url: object) -> str:
    """The base URL without a trailing slash; ValueError for anything but http(s)://host.

    No message shows the value, nor any part of it: a base URL may carry credentials, and a
    refused one is often a token pasted in its place (two environment variables swapped).
    """
    if not isinstance(base_url, str):
        raise TypeError(f"base_url must be a str, got {type(base_url).__name__}")
    hidden = "(the value is not shown: it may hold a secret)"
    if re.search(r"eyJ[\w-]{4,}\.[\w-]{4,}\.", base_url, re.ASCII):
        # A JWT (its header, `{"...`, is "eyJ..." in base64). No URL holds one, and parsed as
        # a host or a path prefix it would be printed in the URL of every error.
        raise ValueError(f"base_url looks like a token (a JWT), not a URL {hidden}")
    try:
        url = URL(base_url.strip())
    except ValueError as exc:
        # yarl's reason ("Invalid IPv6 URL"), unless it quotes the value: some do (the netloc).
        reason = str(exc).casefold()
        value = base_url.strip().casefold()
        size = min(8, len(value))
        quoted = any(value[i : i + size] in reason for i in range(len(value) - size + 1))
        raise ValueError(
            f"base_url is not a valid URL {hidden}"
            if quoted
            else f"base_url is not a valid URL: {exc}"
        ) from None
    if url.scheme not in {"http", "https"} or not url.raw_host:
        raise ValueError(f"base_url must be an http(s) URL with a host {hidden}")
    if url.user or url.password or url.query_string or url.fragment:
        raise ValueError("base_url must not carry credentials, a query or a fragment")
    # yarl takes spaces or `%` in a host, which would fail only later, in an error showing it.
    if not _is_host_name(url.raw_host):
        raise ValueError(f"base_url has no valid host name {hidden}")
    return str(url).rstrip("/")


def _is_host_name(host: str) -> bool:
    """An IP address, or DNS labels of 1 to 63 letters, digits, `-` or `_` (as yarl gives a
    host: IDNA-encoded, IPv6 without its brackets, whose content yarl has checked)."""
    if ":" in host:
        return True
    labels = host.removesuffix(".").split(".")
    return (
        host.isascii()
        and len(host) <= 253
        and all(0 < len(a) <= 63 and a.replace("-", "").replace("_", "").isalnum() for a in labels)
    )
