"""How the simulator writes the platform's JSON: timestamps, decimals, markets, error bodies."""

from __future__ import annotations

import hashlib
import http
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

__all__ = [
    "BAD_GATEWAY_HTML",
    "TraceIds",
    "dumps",
    "format_decimal",
    "format_retry_after",
    "format_timestamp",
    "json_response",
    "market_display_name",
    "market_full_name",
    "market_leverage",
    "market_quote_asset",
    "market_type",
    "problem_response",
    "reference_price",
]

#: What an nginx in front of the platform answers when the backend is down.
BAD_GATEWAY_HTML = (
    b"<html>\n<head><title>502 Bad Gateway</title></head>\n<body>\n"
    b"<center><h1>502 Bad Gateway</h1></center>\n<hr><center>nginx</center>\n"
    b"</body>\n</html>\n"
)

_MARKET_TYPES = {"spot": "Spot", "cfd": "Cfd", "perp": "Perpetual"}
_ASSET_NAMES = {
    "btc": "Bitcoin",
    "eth": "Ethereum",
    "sol": "Solana",
    "xrp": "XRP",
    "ltc": "Litecoin",
    "usdt": "Tether",
    "usdc": "USD Coin",
    "usd": "US Dollar",
    "eur": "Euro",
}
_REFERENCE_PRICES = {
    "btc": Decimal("61000"),
    "eth": Decimal("4450"),
    "sol": Decimal("141.2"),
    "ltc": Decimal("84.5"),
    "xrp": Decimal("0.5"),
}
_DEFAULT_PRICE = Decimal("100")

# RFC links ASP.NET Core puts in ProblemDetails.type, by status.
_PROBLEM_TYPES = {
    400: "https://tools.ietf.org/html/rfc9110#section-15.5.1",
    401: "https://tools.ietf.org/html/rfc9110#section-15.5.2",
    403: "https://tools.ietf.org/html/rfc9110#section-15.5.4",
    404: "https://tools.ietf.org/html/rfc9110#section-15.5.5",
    429: "https://tools.ietf.org/html/rfc6585#section-4",
    500: "https://tools.ietf.org/html/rfc9110#section-15.6.1",
    502: "https://tools.ietf.org/html/rfc9110#section-15.6.3",
    503: "https://tools.ietf.org/html/rfc9110#section-15.6.4",
    504: "https://tools.ietf.org/html/rfc9110#section-15.6.5",
}
_VALIDATION_TITLE = "One or more validation errors occurred."


def format_timestamp(moment: datetime) -> str:
    """UTC ISO-8601 with 7 fractional digits and `Z`, as .NET writes it.

    Naive datetimes are taken as UTC.
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # datetime stops at microseconds; .NET ticks add a seventh digit. isoformat pads the
    # year to four digits where strftime's %Y may not (year 1 as "1").
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "0Z"


def format_decimal(value: Decimal) -> str:
    """A decimal as the platform writes it: a plain string, never an exponent."""
    return format(value, "f")


def format_retry_after(value: float | str) -> str:
    """A `Retry-After` value: str verbatim, whole seconds without `.0`, else as given."""
    if isinstance(value, str):
        return value
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def _market_parts(market_id: str) -> tuple[str, str, str]:
    prefix, _, pair = market_id.partition(".")
    if not pair:
        prefix, pair = "spot", market_id
    base, _, quote = pair.partition("_")
    return prefix.lower(), base.lower(), (quote or "usd").lower()


def market_type(market_id: str) -> str:
    """`spot.eth_usdt` -> `Spot`; unknown prefixes are capitalised."""
    prefix = _market_parts(market_id)[0]
    return _MARKET_TYPES.get(prefix, prefix.capitalize())


def market_display_name(market_id: str) -> str:
    """`spot.eth_usdt` -> `SPOT ETH/USDT`."""
    prefix, base, quote = _market_parts(market_id)
    return f"{prefix.upper()} {base.upper()}/{quote.upper()}"


def market_full_name(market_id: str) -> str:
    """`spot.eth_usdt` -> `Ethereum / Tether`."""
    _, base, quote = _market_parts(market_id)
    return f"{_ASSET_NAMES.get(base, base.upper())} / {_ASSET_NAMES.get(quote, quote.upper())}"


def market_quote_asset(market_id: str) -> str:
    """The asset commissions are paid in: `spot.eth_usdt` -> `usdt`."""
    return _market_parts(market_id)[2]


def market_leverage(market_id: str) -> int:
    """1 on SPOT markets, 10 on derivatives."""
    return 1 if _market_parts(market_id)[0] == "spot" else 10


def reference_price(market_id: str) -> Decimal:
    """A plausible price of the market's base asset, to build believable orders."""
    return _REFERENCE_PRICES.get(_market_parts(market_id)[1], _DEFAULT_PRICE)


def dumps(data: Any) -> str:
    """Compact JSON, as the platform sends it, non-ASCII characters as they are.

    Text UTF-8 cannot carry (lone surrogates, from a client's `"\\ud800"` or a header's
    undecodable bytes, echoed in an error) is written as `\\u` escapes instead, so that
    sending the answer cannot fail.
    """
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():  # O(1) in CPython: the usual, all-ASCII answer costs nothing more
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return json.dumps(data, separators=(",", ":"))
    return text


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON answer with `application/json; charset=utf-8`."""
    return web.json_response(data, status=status, dumps=dumps)


def problem_response(
    status: int,
    *,
    trace_id: str,
    detail: str | None = None,
    title: str | None = None,
    errors: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An RFC 9457 ProblemDetails answer shaped like ASP.NET Core's."""
    if title is None:
        title = _VALIDATION_TITLE if errors else http.HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": _PROBLEM_TYPES.get(status, "about:blank"),
        "title": title,
        "status": status,
    }
    if detail is not None:
        body["detail"] = detail
    body["traceId"] = trace_id
    if errors is not None:
        body["errors"] = errors
    return web.Response(
        status=status,
        text=dumps(body),
        content_type="application/problem+json",
        charset="utf-8",
        headers=headers,
    )


class TraceIds:
    """W3C-style trace ids (`00-<32 hex>-<16 hex>-00`), reproducible for a seed."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        self._count = 0

    def next(self) -> str:
        """The next trace id."""
        self._count += 1
        digest = hashlib.sha256(f"trace:{self._seed}:{self._count}".encode()).hexdigest()
        return f"00-{digest[:32]}-{digest[32:48]}-00"
