"""The measurements: CPU per request, structuring, streaming memory, cancel-all, import time.

Each returns plain dicts of numbers, which `_report` prints, saves and plots.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import statistics
import subprocess
import sys
import time
import timeit
import tracemalloc
from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from frontoffice_async import (
    FrontOfficeClient,
    Order,
    OrderSide,
    OrderSource,
    OrderStatus,
    OrderType,
    TimeInForce,
    _converter,
)

from . import _server
from ._clients import Contender, Target, raw_aiohttp

__all__ = [
    "hand_order",
    "measure_cancel_all",
    "measure_contenders",
    "measure_imports",
    "measure_parsing",
    "measure_stream",
    "order_ids",
]


def order_ids(count: int, *, start: int = 0) -> Iterator[str]:
    """ULID-shaped ids (26 alphanumerics), distinct, as a lazy generator."""
    for number in range(start, start + count):
        yield f"01K2PF9XS2{number:016d}"


# --- contenders -------------------------------------------------------------------------------


async def measure_contenders(
    contenders: Sequence[Contender],
    target: Target,
    *,
    n: int,
    concurrency: int,
    repeat: int,
) -> dict[str, dict[str, Any]]:
    """CPU and wall time of each contender doing `n` cancels, `repeat` times, interleaved.

    Rounds interleave the contenders (rotating who goes first) so slow drift of the machine
    spreads over all of them instead of biasing whoever ran last.
    """
    samples: dict[str, list[dict[str, float]]] = {c.key: [] for c in contenders}
    ids = list(order_ids(n))
    # httpx needs ~1,000 requests at concurrency 64 before its cost per request settles.
    warmup = list(order_ids(max(20 * concurrency, n // 5), start=n))
    for round_ in range(repeat):
        shift = round_ % len(contenders)
        for contender in (*contenders[shift:], *contenders[:shift]):
            if contender.max_repeat is not None and round_ >= contender.max_repeat:
                continue
            sample = await _measure_once(contender, target, ids, warmup, concurrency)
            samples[contender.key].append(sample)
    return {key: _summarise(runs, n) for key, runs in samples.items()}


async def _measure_once(
    contender: Contender,
    target: Target,
    ids: list[str],
    warmup: list[str],
    concurrency: int,
) -> dict[str, float]:
    async with contender.open(target, concurrency) as run:
        # Opens the pool's connections and fills every cache before the clock starts.
        await run(warmup)
        gc.collect()
        before = await _server.fetch_stats(target.url)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        done = await run(ids)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        after = await _server.fetch_stats(target.url)
    if done != len(ids):
        raise RuntimeError(f"{contender.key}: {done} of {len(ids)} cancels came back")
    return {"cpu": cpu, "wall": wall, "server_cpu": after.cpu - before.cpu}


def _summarise(runs: list[dict[str, float]], n: int) -> dict[str, Any]:
    cpu = statistics.median(r["cpu"] for r in runs)
    wall = statistics.median(r["wall"] for r in runs)
    server_cpu = statistics.median(r["server_cpu"] for r in runs)
    return {
        "cpu_us_per_request": cpu / n * 1e6,
        "requests_per_s": n / wall,
        "client_busy": cpu / wall,
        "server_busy": server_cpu / wall,
        "server_cpu_us_per_request": server_cpu / n * 1e6,
        "repeat": len(runs),
        "runs": runs,
    }


# --- structuring and parsing ------------------------------------------------------------------


def hand_order(d: dict[str, Any]) -> Order:
    """dict -> Order written out by hand: the least work that gives an equal record."""
    price = d.get("requestedPrice")
    cancelled = d.get("cancellationDate")
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
        # Python 3.11+ reads "Z" and 7 fractional digits itself.
        created_at=datetime.fromisoformat(d["createdAt"]),
        updated_at=datetime.fromisoformat(d["updatedAt"]),
        reject_details=d.get("rejectDetails"),
        cancellation_date=None if cancelled is None else datetime.fromisoformat(cancelled),
        fill_factor=Decimal(d["fillFactor"]),
    )


def _per_call_us(func: Any, arg: Any, number: int) -> float:
    """Median over 5 batches of the time of one call, in µs."""
    batches = timeit.repeat(lambda: func(arg), number=number, repeat=5)
    return statistics.median(batches) / number * 1e6


def measure_parsing(*, number: int) -> dict[str, Any]:
    """Order structuring (cattrs vs by hand) and body parsing (library vs json), µs per call."""
    body = json.dumps(_server.ORDER_BODY).encode()
    data = _converter.loads(body)["order"]
    if _converter.structure(data, Order) != hand_order(data):
        raise RuntimeError("the hand-written structuring does not match the library's")
    result: dict[str, Any] = {
        "structure_us": _per_call_us(lambda d: _converter.structure(d, Order), data, number),
        "hand_us": _per_call_us(hand_order, data, number),
        "library_loads_us": _per_call_us(_converter.loads, body, number),
        "json_plain_us": _per_call_us(json.loads, body, number),
    }
    result["ratio"] = result["structure_us"] / result["hand_us"]
    return result


# --- streaming memory -------------------------------------------------------------------------


async def measure_stream(target: Target, *, n: int, concurrency: int) -> dict[str, Any]:
    """Peak traced memory while `iter_cancel_orders` consumes `n` ids from a generator,
    with the default exactly-once set of seen ids and without it (`dedupe=False`)."""
    result = await _stream_peak(target, n=n, concurrency=concurrency, dedupe=True)
    plain = await _stream_peak(target, n=n, concurrency=concurrency, dedupe=False)
    result["peak_mib_no_dedupe"] = plain["peak_mib"]
    return result


async def _stream_peak(
    target: Target, *, n: int, concurrency: int, dedupe: bool
) -> dict[str, Any]:
    async with FrontOfficeClient(
        target.url, token=target.token, account_id=target.account_id
    ) as client:
        async for _ in client.iter_cancel_orders(order_ids(2 * concurrency, start=10**9)):
            pass  # warm-up: connections open, lazily built caches filled
        gc.collect()
        tracemalloc.start()
        try:
            started = time.perf_counter()
            ok = 0
            stream = client.iter_cancel_orders(
                order_ids(n), concurrency=concurrency, dedupe=dedupe
            )
            async for outcome in stream:
                ok += outcome.ok
            wall = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    if ok != n:
        raise RuntimeError(f"streaming: {ok} of {n} cancels came back")
    return {"ids": n, "peak_mib": peak / 2**20, "wall_s_traced": wall}


# --- cancel-all against the simulator ---------------------------------------------------------


def measure_cancel_all(
    *, orders: int, latency: float, concurrency: int, repeat: int
) -> dict[str, Any]:
    """Wall time of `cancel_all_orders` against a simulator process, vs ceil(N/c)·latency.

    For scale, raw aiohttp sends the same DELETEs (no snapshot) to an identical simulator.
    """
    runs: list[dict[str, float | None]] = []
    for _ in range(repeat):
        # A fresh simulator per run: the previous run cancelled every order.
        with _server.start("sim", orders=orders, latency=latency) as server:
            target = Target(server.url, server.token, server.account_id)
            server_cpu = server.cpu_seconds()
            cpu = time.process_time()
            run = asyncio.run(_cancel_all_once(target, orders, concurrency))
            run["client_cpu"] = time.process_time() - cpu
            after = server.cpu_seconds()
            run["server_cpu"] = None if after is None or server_cpu is None else after - server_cpu
        with _server.start("sim", orders=orders, latency=latency) as server:
            target = Target(server.url, server.token, server.account_id)
            run["raw_wall"] = asyncio.run(_raw_cancels(target, server.order_ids, concurrency))
        runs.append(run)
    ideal = math.ceil(orders / concurrency) * latency

    def median(key: str) -> float | None:
        values = [value for r in runs if (value := r[key]) is not None]
        return statistics.median(values) if values else None

    wall = median("wall")
    raw_wall = median("raw_wall")
    assert wall is not None  # every run records one
    return {
        "orders": orders,
        "latency_s": latency,
        "concurrency": concurrency,
        "wall_s": wall,
        "ideal_s": ideal,
        "ratio": wall / ideal,
        "snapshot_s": median("snapshot"),
        "client_cpu_s": median("client_cpu"),
        "server_cpu_s": median("server_cpu"),
        "raw_aiohttp_wall_s": raw_wall,
        "raw_aiohttp_ratio": None if raw_wall is None else raw_wall / ideal,
        "runs": runs,
    }


async def _cancel_all_once(
    target: Target, orders: int, concurrency: int
) -> dict[str, float | None]:
    async with FrontOfficeClient(
        target.url, token=target.token, account_id=target.account_id
    ) as client:
        # Timed alone first, to show how much of the cancel-all is the snapshot.
        started = time.perf_counter()
        seen = len(await client.open_orders())
        snapshot = time.perf_counter() - started
        if seen != orders:
            raise RuntimeError(f"cancel-all: the snapshot holds {seen} orders, not {orders}")
        started = time.perf_counter()
        result = await client.cancel_all_orders(concurrency=concurrency)
        wall = time.perf_counter() - started
    if len(result.cancelled) != orders:
        raise RuntimeError(f"cancel-all: {len(result.cancelled)} of {orders} cancelled")
    return {"wall": wall, "snapshot": snapshot}


async def _raw_cancels(target: Target, order_ids: list[str], concurrency: int) -> float:
    async with raw_aiohttp(target, concurrency) as run:
        started = time.perf_counter()
        done = await run(order_ids)
        wall = time.perf_counter() - started
    if done != len(order_ids):
        raise RuntimeError(f"cancel-all floor: {done} of {len(order_ids)} cancelled")
    return wall


# --- import time ------------------------------------------------------------------------------


def measure_imports(modules: Sequence[str], *, repeat: int) -> dict[str, float]:
    """Median cumulative `-X importtime` of each module in a fresh interpreter, in ms."""
    return {
        module: statistics.median(_import_us(module) for _ in range(repeat)) / 1000
        for module in modules
    }


def _import_us(module: str) -> int:
    completed = subprocess.run(  # noqa: S603 -- our own interpreter, fixed arguments
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in completed.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"; nested names are indented.
        fields = line.split("|")
        if len(fields) == 3 and fields[2] == f" {module}":
            return int(fields[1])
    raise RuntimeError(f"no import time reported for {module}")
