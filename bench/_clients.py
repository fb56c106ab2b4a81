"""The floor, the library and the other libraries: each sends the same DELETEs at the same
concurrency and parses the JSON (the equal-work peer is in `_peer`).

Each opens its client outside the measured window and yields `run(ids)`, which is timed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Any, Final
from unittest import mock

import aiohttp
import attrs

from frontoffice_async import FrontOfficeClient, _converter

__all__ = [
    "ATTEMPTS",
    "RETRY_STATUSES",
    "Contender",
    "Runner",
    "Target",
    "aiohttp_tenacity",
    "connector",
    "fo_cancel_orders",
    "fo_cancel_orders_stdlib",
    "fo_gather",
    "httpx_client",
    "pool",
    "raw_aiohttp",
    "stdlib_json",
]

#: Cancels some ids; returns how many came back as a parsed cancelled order.
Runner = Callable[[Sequence[str]], Awaitable[int]]

_ORDERS_PATH: Final = "/frontoffice/api/v3/orders/"
# The library's defaults, so every retrying contender is configured alike.
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
ATTEMPTS: Final = 4


@attrs.frozen
class Target:
    """Where the contenders send their requests, and as whom."""

    url: str
    token: str
    account_id: str

    @property
    def orders_prefix(self) -> str:
        return self.url + _ORDERS_PATH

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "accountId": self.account_id}


@attrs.frozen
class Contender:
    """One way of cancelling N orders, and how it is shown in the report."""

    key: str
    label: str
    open: Callable[[Target, int], contextlib.AbstractAsyncContextManager[Runner]]
    #: Sends this share of the round's ids (for a contender too slow for all of them); the
    #: ratios compare CPU per request, so a smaller count is still a fair comparison.
    share: float = 1.0


def _is_cancelled(body: Any) -> bool:
    return bool(body["order"]["status"] == "Cancelled")


async def pool(
    ids: Iterable[str],
    concurrency: int,
    one: Callable[[str], Awaitable[Any]],
    check: Callable[[Any], bool] = _is_cancelled,
) -> int:
    """`concurrency` workers pulling from one iterator: the cheapest fair way to bound work.

    Returns how many answers pass `check` (came back as a cancelled order).
    """
    shared: Iterator[str] = iter(ids)
    done = [0]

    async def worker() -> None:
        for order_id in shared:  # `next` never awaits, so workers cannot take the same id
            if check(await one(order_id)):
                done[0] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done[0]


def connector(concurrency: int) -> aiohttp.TCPConnector:
    # The same pool size the library picks for itself.
    return aiohttp.TCPConnector(limit=max(100, concurrency))


@contextlib.asynccontextmanager
async def raw_aiohttp(target: Target, concurrency: int) -> AsyncIterator[Runner]:
    """The floor: one session, `session.delete`, `json.loads`, no retries or typed records."""
    headers = target.headers
    prefix = target.orders_prefix
    async with aiohttp.ClientSession(connector=connector(concurrency)) as session:

        async def one(order_id: str) -> Any:
            async with session.delete(prefix + order_id, headers=headers) as response:
                response.raise_for_status()
                return json.loads(await response.read())

        yield lambda ids: pool(ids, concurrency, one)


def _client(target: Target, concurrency: int) -> FrontOfficeClient:
    # The library's defaults (retry policy, 10 s per attempt), as a user would start it.
    return FrontOfficeClient(
        target.url, token=target.token, account_id=target.account_id, concurrency=concurrency
    )


@contextlib.asynccontextmanager
async def fo_cancel_orders(target: Target, concurrency: int) -> AsyncIterator[Runner]:
    """`client.cancel_orders(ids)`: retry and auth middlewares on, parsing to `Order`."""
    async with _client(target, concurrency) as client:

        async def run(ids: Sequence[str]) -> int:
            result = await client.cancel_orders(ids, concurrency=concurrency)
            return sum(order.status == "Cancelled" for order in result.cancelled)

        yield run


@contextlib.contextmanager
def stdlib_json() -> Iterator[None]:
    """The library parses JSON with the standard library, as without the `speedups` extra,
    whether orjson is installed or not."""
    with (
        mock.patch.object(_converter, "decode", _converter._stdlib_decode),
        mock.patch.object(_converter, "_json_loads", _converter._stdlib_json_loads),
    ):
        yield


@contextlib.asynccontextmanager
async def fo_cancel_orders_stdlib(target: Target, concurrency: int) -> AsyncIterator[Runner]:
    """`client.cancel_orders(ids)` as the base install runs it: JSON by the standard library.

    The switch is made around each run, not around the open client: with clients kept
    across rounds (`--study`), other contenders run while this one is open.
    """
    async with fo_cancel_orders(target, concurrency) as run:

        async def run_stdlib(ids: Sequence[str]) -> int:
            with stdlib_json():
                return await run(ids)

        yield run_stdlib


@contextlib.asynccontextmanager
async def fo_gather(target: Target, concurrency: int) -> AsyncIterator[Runner]:
    """`asyncio.gather` of `client.cancel_order` calls, bounded by a semaphore."""
    async with _client(target, concurrency) as client:

        async def run(ids: Sequence[str]) -> int:
            gate = asyncio.Semaphore(concurrency)

            async def one(order_id: str) -> bool:
                async with gate:
                    order = await client.cancel_order(order_id)
                return order.status == "Cancelled"

            return sum(await asyncio.gather(*(one(order_id) for order_id in ids)))

        yield run


@contextlib.asynccontextmanager
async def httpx_client(target: Target, concurrency: int) -> AsyncIterator[Runner]:
    """httpx `AsyncClient` with its pool sized to the concurrency."""
    import httpx  # noqa: PLC0415 -- only this contender pays for the import

    headers = target.headers
    prefix = target.orders_prefix
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits) as client:

        async def one(order_id: str) -> Any:
            response = await client.delete(prefix + order_id, headers=headers)
            response.raise_for_status()
            return json.loads(response.content)

        yield lambda ids: pool(ids, concurrency, one)


@contextlib.asynccontextmanager
async def aiohttp_tenacity(target: Target, concurrency: int) -> AsyncIterator[Runner]:
    """aiohttp with a tenacity `AsyncRetrying` loop around each request."""
    import tenacity  # noqa: PLC0415

    headers = target.headers
    prefix = target.orders_prefix
    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(ATTEMPTS),
        wait=tenacity.wait_random_exponential(multiplier=0.1, max=5.0),
        retry=tenacity.retry_if_exception_type((aiohttp.ClientError, OSError)),
        reraise=True,
    )
    async with aiohttp.ClientSession(connector=connector(concurrency)) as session:

        async def one(order_id: str) -> Any:
            # A copy per call, as tenacity's own decorator does: the loop state is per call.
            async for attempt in retrying.copy():
                with attempt:
                    async with session.delete(prefix + order_id, headers=headers) as response:
                        response.raise_for_status()
                        return json.loads(await response.read())
            raise AssertionError("unreachable: reraise=True raises the last error")

        yield lambda ids: pool(ids, concurrency, one)
