"""Cancel-all wall time: the library against raw aiohttp doing the same job by hand.

The raw contender takes the OpenOrders snapshot over the SignalR hub, sends the DELETEs with
the same concurrency from its first item on while the snapshot's settle window runs, then
takes a second snapshot (with its window) to check that nothing is left: the work the
library's verified cancel-all does when every cancel succeeds. Each run gets a fresh
simulator process with the same open orders and the same REST latency.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any, Final

import aiohttp

from frontoffice_async import FrontOfficeClient
from frontoffice_async._hub.snapshot import DEFAULT_SETTLE

from . import _server
from ._clients import Target, connector, pool
from ._stats import Spread

__all__ = ["measure_cancel_all", "raw_snapshot"]

_RS: Final = "\x1e"
_HUB_PATH: Final = "/frontoffice/ws/v4/account"
_HANDSHAKE: Final = '{"protocol":"json","version":1}' + _RS
_STREAM_ITEM, _COMPLETION, _CLOSE = 2, 3, 7
#: The library's default settle window, which a raw snapshot waits too (see `raw_snapshot`).
SETTLE: Final = DEFAULT_SETTLE
_FINAL: Final = frozenset({"Cancelled", "Closed", "Filled", "Rejected", "Expired"})


async def raw_snapshot(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    account_id: str,
    target: str = "OpenOrders",
    on_first: Callable[[list[dict[str, Any]]], object] | None = None,
) -> list[dict[str, Any]]:
    """A snapshot by hand, as the library must read one: the first item (handed to
    `on_first`, so that work starts on it), then the items of the settle window, merged by id.
    The window is the library's own default: a raw client that trusted the first item alone
    would be faster and wrong (nothing promises that a snapshot is one item)."""
    invocation = {"type": 4, "target": target, "arguments": [account_id], "invocationId": "0"}
    records: dict[str, dict[str, Any]] = {}
    key = "orderId" if target == "OpenOrders" else "positionId"
    loop = asyncio.get_running_loop()
    window_end: float | None = None
    async with session.ws_connect(
        url.replace("http", "ws", 1) + _HUB_PATH, params={"access_token": token}, max_msg_size=0
    ) as ws:
        await ws.send_str(_HANDSHAKE)
        await ws.send_str(json.dumps(invocation) + _RS)
        while True:
            timeout = None if window_end is None else max(window_end - loop.time(), 0)
            try:
                frame = await asyncio.wait_for(ws.receive(), timeout)
            except TimeoutError:
                break
            if frame.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"the hub sent {frame.type!r} before the window ended")
            for part in frame.data.split(_RS):
                message = json.loads(part) if part else {}
                kind = message.get("type")
                if kind in (_COMPLETION, _CLOSE):
                    raise RuntimeError(f"the hub ended the stream: {part[:200]}")
                if kind != _STREAM_ITEM:
                    continue
                item = message["item"]
                if isinstance(item, dict) and "item" in item:
                    item = item["item"]  # OpenPositions nests its array
                item = item if isinstance(item, list) else [item]
                for record in item:
                    records[record[key]] = record
                if window_end is None:
                    window_end = loop.time() + SETTLE
                    if on_first is not None:
                        on_first(item)
    return [r for r in records.values() if r.get("status") not in _FINAL]


async def _raw(target: Target, concurrency: int) -> dict[str, float]:
    headers, prefix = target.headers, target.orders_prefix
    async with aiohttp.ClientSession(connector=connector(concurrency)) as session:

        async def one(order_id: str) -> Any:
            async with session.delete(prefix + order_id, headers=headers) as response:
                response.raise_for_status()
                return json.loads(await response.read())

        work: list[asyncio.Task[int]] = []

        def cancel(records: list[dict[str, Any]]) -> None:
            ids = [record["orderId"] for record in records]
            work.append(asyncio.ensure_future(pool(ids, concurrency, one)))

        url, token, account = target.url, target.token, target.account_id
        started = time.perf_counter()
        await raw_snapshot(session, url, token, account, on_first=cancel)
        snapshot = time.perf_counter()
        done = sum(await asyncio.gather(*work))
        cancelled = time.perf_counter()
        left = await raw_snapshot(session, url, token, account)
        verified = time.perf_counter()
    if left:
        raise RuntimeError(f"raw cancel-all: {done} cancelled, {len(left)} left")
    return {
        "orders": done,
        "wall_s": verified - started,
        "wall_one_snapshot_s": cancelled - started,
        "snapshot_s": snapshot - started,  # its window included
    }


async def _library(target: Target, concurrency: int) -> dict[str, float]:
    async with FrontOfficeClient(
        target.url, token=target.token, account_id=target.account_id, concurrency=concurrency
    ) as client:
        started = time.perf_counter()
        result = await client.cancel_all_orders()
        wall = time.perf_counter() - started
    return {"orders": len(result.cancelled), "wall_s": wall}


def _run(
    kind: str, *, orders: int, latency: float, concurrency: int, cpu: int | None
) -> dict[str, float]:
    """One contender against a fresh simulator process; also the CPU each side used."""
    runner = _library if kind == "library" else _raw
    with _server.start("sim", orders=orders, latency=latency, cpu=cpu) as server:
        target = Target(server.url, server.token, server.account_id)
        server_cpu, client_cpu = server.cpu_seconds(), time.process_time()
        result = asyncio.run(runner(target, concurrency))
        result["client_cpu_s"] = time.process_time() - client_cpu
        after = server.cpu_seconds()
        if after is not None and server_cpu is not None:
            result["server_cpu_s"] = after - server_cpu
    if result["orders"] != orders:
        raise RuntimeError(f"{kind} cancel-all: {result['orders']} of {orders} cancelled")
    return result


def measure_cancel_all(
    *, orders: int, latency: float, concurrency: int, rounds: int, server_cpu: int | None
) -> dict[str, Any]:
    """Per-round ratios of the library's wall time to the raw contender's, rotated order.

    `server_cpu` pins each simulator to that core.
    """
    size: dict[str, Any] = {"latency": latency, "concurrency": concurrency, "cpu": server_cpu}
    for kind in ("library", "raw"):  # untimed: lazy imports and caches of both sides
        _run(kind, orders=min(orders, 50), **size)
    library: list[dict[str, float]] = []
    raw: list[dict[str, float]] = []
    for round_ in range(rounds):
        order = ("library", "raw") if round_ % 2 == 0 else ("raw", "library")
        for kind in order:
            (library if kind == "library" else raw).append(_run(kind, orders=orders, **size))
    walls = [lib["wall_s"] for lib in library]
    return {
        "orders": orders,
        "latency_s": latency,
        "concurrency": concurrency,
        # The work starts on the first item, inside the window; the verify window follows.
        "ideal_s": max(-(-orders // concurrency) * latency, SETTLE) + SETTLE,
        "library_wall_s": Spread.of(walls).as_dict(),
        "raw_wall_s": Spread.of(r["wall_s"] for r in raw).as_dict(),
        "raw_snapshot_s": Spread.of(r["snapshot_s"] for r in raw).as_dict(),
        "ratio": Spread.of(w / r["wall_s"] for w, r in zip(walls, raw, strict=True)).as_dict(),
        "ratio_one_snapshot": Spread.of(
            w / r["wall_one_snapshot_s"] for w, r in zip(walls, raw, strict=True)
        ).as_dict(),
        "runs": {"library": library, "raw": raw},
    }
