"""The measurements besides the races: streaming memory, start-up time, the peer's parse.

Each returns plain dicts of numbers, which `_report` prints and saves.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
import tracemalloc
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from frontoffice_async import FrontOfficeClient, _converter

from . import _server
from ._clients import Target
from ._peer import loads_order, parse_order
from ._rounds import order_ids
from ._stats import Spread

__all__ = ["measure_help", "measure_imports", "measure_parse", "measure_stream"]


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
        target.url, token=target.token, account_id=target.account_id, concurrency=concurrency
    ) as client:
        async for _ in client.iter_cancel_orders(order_ids(2 * concurrency, start=10**9)):
            pass  # warm-up: connections open, lazily built caches filled
        gc.collect()
        tracemalloc.start()
        try:
            started = time.perf_counter()
            ok = 0
            async for outcome in client.iter_cancel_orders(order_ids(n), dedupe=dedupe):
                ok += outcome.ok
            wall = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    if ok != n:
        raise RuntimeError(f"streaming: {ok} of {n} cancels came back")
    return {"ids": n, "peak_mib": peak / 2**20, "wall_s_traced": wall}


# --- start-up ---------------------------------------------------------------------------------


def measure_imports(*, repeat: int) -> dict[str, Any]:
    """Cumulative `-X importtime` of `aiohttp` and of `frontoffice_async`, each in fresh
    interpreters taking turns; the extra is the median of the paired differences."""
    aiohttp_ms: list[float] = []
    ours_ms: list[float] = []
    first_use_ms: list[float] = []
    _statement_ms(_FIRST_USE)  # writes the bytecode caches, as an install does
    for _ in range(repeat):
        aiohttp_ms.append(_import_us("aiohttp") / 1000)
        ours_ms.append(_import_us("frontoffice_async") / 1000)
        first_use_ms.append(_statement_ms(_FIRST_USE) - _statement_ms("import aiohttp"))
    return {
        "aiohttp_ms": Spread.of(aiohttp_ms).as_dict(),
        "frontoffice_async_ms": Spread.of(ours_ms).as_dict(),
        "extra_ms": Spread.of(o - a for o, a in zip(ours_ms, aiohttp_ms, strict=True)).as_dict(),
        # The package loads its names on first use, so `import frontoffice_async` alone is
        # cheap; this is what a program pays when it takes the client, over aiohttp alone.
        "first_use_extra_ms": Spread.of(first_use_ms).as_dict(),
    }


_FIRST_USE = "from frontoffice_async import FrontOfficeClient"


# An installed package has bytecode caches (pip writes them); an editable one under
# PYTHONDONTWRITEBYTECODE=1 would be compiled from source on every start.
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def _importtime(statement: str) -> list[tuple[int, str]]:
    """(cumulative µs, name) of every import `statement` makes, from `-X importtime` in a
    fresh interpreter; the name keeps its indent (one space: a top-level import)."""
    completed = subprocess.run(  # noqa: S603 -- our own interpreter, fixed arguments
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=True,
        env=_ENV,
    )
    rows = []
    for line in completed.stderr.splitlines():
        # "import time:  self [us] | cumulative | imported package"; nested names are indented.
        fields = line.split("|")
        if len(fields) == 3 and fields[1].strip().isdigit():  # not the heading
            rows.append((int(fields[1]), fields[2]))
    return rows


def _import_us(module: str) -> int:
    for cumulative, name in _importtime(f"import {module}"):
        if name == f" {module}":
            return cumulative
    raise RuntimeError(f"no import time reported for {module}")


def _statement_ms(statement: str) -> float:
    """Milliseconds of every import `statement` makes (the top-level entries, the
    interpreter's own start-up included: it cancels in a difference)."""
    top_level = (us for us, name in _importtime(statement) if not name.startswith("  "))
    return sum(top_level) / 1000


def measure_help(*, repeat: int) -> dict[str, Any]:
    """Wall time of `frontoffice --help` in a fresh process (the first run is not counted:
    it may write bytecode caches)."""
    script = Path(sys.executable).with_name("frontoffice")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "frontoffice_async"]
    command.append("--help")
    walls: list[float] = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, env=_ENV)  # noqa: S603
        walls.append((time.perf_counter() - started) * 1000)
    return {"command": " ".join(command[-2:]), "wall_ms": Spread.of(walls[1:]).as_dict()}


# --- the peer's parse -------------------------------------------------------------------------


def measure_parse(*, number: int) -> dict[str, Any]:
    """µs per cancel body: the peer's `json.loads(parse_float=Decimal)` and its `Order`
    building, plain `json.loads` (what the floor does), and the library's JSON parse with
    the standard library and with the `speedups` extra (None without orjson)."""
    body = _server.ORDER_BYTES
    data = json.loads(body, parse_float=Decimal)["order"]
    orjson_path = _converter._orjson_json_loads
    return {
        "json_loads_us": _per_call_us(lambda: json.loads(body), number),
        "json_decimal_us": _per_call_us(lambda: json.loads(body, parse_float=Decimal), number),
        "parse_order_us": _per_call_us(lambda: parse_order(data), number),
        "loads_order_us": _per_call_us(lambda: loads_order(body), number),
        "library_stdlib_us": _per_call_us(lambda: _converter._stdlib_json_loads(body), number),
        "library_orjson_us": (
            _per_call_us(lambda: orjson_path(body), number) if _converter._SPEEDUPS else None
        ),
    }


def _per_call_us(func: Callable[[], object], number: int) -> float:
    """Median over 5 batches of the time of one call, in µs."""
    return statistics.median(timeit.repeat(func, number=number, repeat=5)) / number * 1e6
