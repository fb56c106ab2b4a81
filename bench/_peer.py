"""The equal-work peer: what a careful user writes instead of using the library.

Same DELETEs, retries on the library's statuses with full-jitter backoff, a per-attempt
timeout, and the same typed `Order` (exact Decimals, aware UTC datetimes, open enums).
Two variants: aiohttp-retry's `RetryClient`, and a hand-written retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import aiohttp
import attrs

from frontoffice_async import Order, OrderSide, OrderSource, OrderStatus, OrderType, TimeInForce

from ._clients import ATTEMPTS, RETRY_STATUSES, Runner, Target, connector, pool

__all__ = [
    "PER_ATTEMPT_TIMEOUT",
    "CancelFailed",
    "loads_order",
    "parse_order",
    "peer_aiohttp_retry",
    "peer_hand",
]

#: The library's default per-attempt limit and whole-call deadline, in seconds.
PER_ATTEMPT_TIMEOUT: Final = 10.0
_DEADLINE: Final = 30.0
_BASE_DELAY, _MAX_DELAY = 0.1, 5.0
# `comment` is a newer field; pass it only to an `Order` that has it.
_HAS_COMMENT: Final = "comment" in attrs.fields_dict(Order)


def _when(text: str) -> datetime:
    # Python 3.11+ reads "Z" and 7 fractional digits (keeping microseconds) by itself.
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_order(d: dict[str, Any]) -> Order:
    """`{"marketId": ...}` (the value of the `order` key) -> `Order`, field by field."""
    price, cancelled = d.get("requestedPrice"), d.get("cancellationDate")
    extra = {"comment": d.get("comment")} if _HAS_COMMENT else {}
    return Order(
        market_id=d["marketId"],
        market_display_name=d["marketDisplayName"],
        order_id=d["orderId"],
        order_type=OrderType(d["orderType"]),
        side=OrderSide(d["side"]),
        status=OrderStatus(d["status"]),
        source=OrderSource(d["source"]),
        time_in_force=TimeInForce(d["timeInForce"]),
        commission=Decimal(d["commission"]),
        requested_amount=Decimal(d["requestedAmount"]),
        remaining_amount=Decimal(d["remainingAmount"]),
        requested_price=None if price is None else Decimal(price),
        execution_price=Decimal(d["executionPrice"]),
        created_at=_when(d["createdAt"]),
        updated_at=_when(d["updatedAt"]),
        reject_details=d.get("rejectDetails"),
        cancellation_date=None if cancelled is None else _when(cancelled),
        fill_factor=Decimal(d["fillFactor"]),
        **extra,
    )


def loads_order(body: bytes) -> Order:
    """A cancel response body -> `Order`; JSON numbers are read as exact Decimals too."""
    return parse_order(json.loads(body, parse_float=Decimal)["order"])


def _session(concurrency: int) -> aiohttp.ClientSession:
    # aiohttp's `total` is per request, i.e. per attempt, and covers reading the body.
    timeout = aiohttp.ClientTimeout(total=PER_ATTEMPT_TIMEOUT)
    return aiohttp.ClientSession(connector=connector(concurrency), timeout=timeout)


@contextlib.asynccontextmanager
async def peer_aiohttp_retry(target: Target, concurrency: int) -> AsyncIterator[Runner]:
    """aiohttp-retry's `RetryClient` (4 attempts, exponential backoff) + `loads_order`."""
    from aiohttp_retry import ExponentialRetry, RetryClient  # noqa: PLC0415

    headers, prefix = target.headers, target.orders_prefix
    options = ExponentialRetry(
        attempts=ATTEMPTS,
        start_timeout=_BASE_DELAY,
        max_timeout=_MAX_DELAY,
        statuses=set(RETRY_STATUSES),
        exceptions={aiohttp.ClientError, asyncio.TimeoutError},
    )
    async with RetryClient(client_session=_session(concurrency), retry_options=options) as client:

        async def one(order_id: str) -> Order:
            async with client.delete(prefix + order_id, headers=headers) as response:
                response.raise_for_status()
                return loads_order(await response.read())

        yield lambda ids: _count(ids, concurrency, one)


@contextlib.asynccontextmanager
async def peer_hand(target: Target, concurrency: int) -> AsyncIterator[Runner]:
    """A hand-written retry loop: full-jitter backoff, a deadline, `loads_order`."""
    headers, prefix = target.headers, target.orders_prefix
    async with _session(concurrency) as session:
        loop = asyncio.get_running_loop()

        async def one(order_id: str) -> Order:
            url = prefix + order_id
            started = loop.time()
            for attempt in range(1, ATTEMPTS + 1):
                last = attempt == ATTEMPTS
                try:
                    async with session.delete(url, headers=headers) as response:
                        status, body = response.status, await response.read()
                except (aiohttp.ClientError, TimeoutError):
                    if last:
                        raise
                else:
                    if status < 300:
                        return loads_order(body)
                    if status not in RETRY_STATUSES or last:
                        raise CancelFailed(status, body)
                delay = random.random() * min(_MAX_DELAY, _BASE_DELAY * 2 ** (attempt - 1))
                if loop.time() - started + delay >= _DEADLINE:
                    raise TimeoutError(f"deadline of {_DEADLINE:g}s exceeded")
                await asyncio.sleep(delay)
            raise AssertionError("unreachable: the last attempt returns or raises")

        yield lambda ids: _count(ids, concurrency, one)


class CancelFailed(Exception):
    """A non-2xx answer the peer does not retry (or the last retry's answer)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status


async def _count(ids: Sequence[str], concurrency: int, one: Any) -> int:
    return await pool(ids, concurrency, one, lambda order: order.status == "Cancelled")
