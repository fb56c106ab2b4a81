"""Time to a verified-flat book, at scale, against its ideal and against raw aiohttp.

Each run gets a fresh simulator process (on the servers' core when the bench is pinned) with
`n` accounts, each with `orders` open orders,
`stops` stop orders and `positions` positions, and a fixed REST latency. The library runs
`flatten(accounts="all")` at the client's default concurrency. The raw contender sends the same
requests in the same phases, by hand, as the library's round does them: the account listing,
then for each account the stop orders'
DELETEs at once, both snapshots of each account (the first item, then the rest of the settle
window), the DELETEs of the orders as the first orders item brings them and one bulk close as
the first positions item does; once the window and the work are over, both snapshots again to
verify.

The ideal, from first principles (docs/performance.md): with R = n (orders + stops + 1)
requests through C slots of latency L, and a settle window W,

    ideal = max(ceil(R / C) * L, W) + W

the acting round lasts at least its window and at least the work (which starts at once), and
the verifying snapshots take one more window after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import aiohttp

from frontoffice_async import FrontOfficeClient

from ._cancel_all import SETTLE, raw_snapshot
from ._stats import Spread, pin_to_server_core

__all__ = ["ideal_seconds", "measure_flatten", "measure_journal"]

_API: Final = "/frontoffice/api"
_V4: Final = {"Content-Type": "application/json; x-api-version=4.0"}
#: The library's defaults, which both contenders use.
CONCURRENCY: Final = 32


def ideal_seconds(
    *, accounts: int, orders: int, stops: int, latency: float, concurrency: int = CONCURRENCY
) -> float:
    """The shortest a flatten of this book can take (see the module's docstring)."""
    requests = accounts * (orders + stops + 1)
    work = math.ceil(requests / concurrency) * latency
    return max(work, SETTLE) + SETTLE


# --- the simulator, in a process of its own ------------------------------------------------------


async def _serve(accounts: int, orders: int, stops: int, positions: int, latency: float) -> None:
    from frontoffice_async.testing import FrontOfficeSimulator  # noqa: PLC0415

    ids = [f"{0x685A7EAA360F9E7416221A00 + n:024x}" for n in range(accounts)]
    sim = FrontOfficeSimulator(accounts=ids, latency=latency)
    stop_ids: dict[str, list[str]] = {}
    for account in ids:
        sim.add_orders(orders, account_id=account)
        stop_ids[account] = sim.add_stop_orders(stops, account_id=account)
        sim.add_positions(positions, account_id=account, market_id="cfd.btc_usd")
    async with sim:
        about = {"url": sim.url, "token": sim.token, "accounts": ids, "stops": stop_ids}
        cpu = time.process_time()
        print(json.dumps(about), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until closed
        cpu = time.process_time() - cpu  # serving only: not the imports, not the books
        left = len(sim.open_order_ids()) + len(sim.open_position_ids())
        left += len(sim.open_stop_order_ids())
        stats = sim.stats
        said = {"left": left, "cpu_s": cpu, "requests": stats.requests}
        print(json.dumps(said | {"max_in_flight": stats.max_in_flight}), flush=True)


@contextlib.contextmanager
def _simulator(**book: Any) -> Iterator[tuple[dict[str, Any], subprocess.Popen[str]]]:
    args = [str(book[k]) for k in ("accounts", "orders", "stops", "positions", "latency")]
    process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
        [sys.executable, "-m", "bench._flatten", "serve", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    pin_to_server_core(process.pid)
    try:
        assert process.stdout is not None
        yield json.loads(process.stdout.readline()), process
    finally:
        process.kill()
        process.wait()


def _left(process: subprocess.Popen[str]) -> int:
    """Close the simulator's stdin: it says what is still open, then waits to be killed."""
    return int(_said(process)["left"])


def _said(process: subprocess.Popen[str]) -> dict[str, Any]:
    """Close the simulator's stdin: it says what is still open, the CPU it spent serving,
    the requests it served and the most REST requests it had in flight at once."""
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.close()
    said: dict[str, Any] = json.loads(process.stdout.readline())
    return said


# --- the contenders --------------------------------------------------------------------------


async def _library(about: dict[str, Any], journal: Any = None) -> float:
    async with FrontOfficeClient(
        about["url"], token=about["token"], account_id=about["accounts"][0]
    ) as client:
        started = time.perf_counter()
        result = await client.flatten(
            accounts="all", stop_order_ids=about["stops"], journal=journal
        )
        wall = time.perf_counter() - started
    if not result.verified:
        raise RuntimeError("the library's flatten is not verified")
    return wall


async def _raw(about: dict[str, Any]) -> float:
    url, token = about["url"], about["token"]
    gate = asyncio.Semaphore(CONCURRENCY)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        auth = {"Authorization": f"Bearer {token}"}

        async def request(method: str, path: str, account: str, **kw: Any) -> None:
            async with (
                gate,
                session.request(
                    method, url + _API + path, headers={**auth, **_V4, "accountId": account}, **kw
                ) as response,
            ):
                response.raise_for_status()
                await response.read()

        async def account(account_id: str) -> None:
            work = [
                asyncio.ensure_future(request("DELETE", f"/v3/stop-orders/{s}", account_id))
                for s in about["stops"][account_id]
            ]

            def cancel_all(records: list[dict[str, Any]]) -> None:
                for record in records:
                    path = f"/v3/orders/{record['orderId']}"
                    work.append(asyncio.ensure_future(request("DELETE", path, account_id)))

            def close_all(records: list[dict[str, Any]]) -> None:
                if records:
                    body = {"mode": "AllPositions"}
                    post = request("POST", "/v4/positions/bulk-close", account_id, json=body)
                    work.append(asyncio.ensure_future(post))

            await asyncio.gather(
                raw_snapshot(session, url, token, account_id, "OpenOrders", cancel_all),
                raw_snapshot(session, url, token, account_id, "OpenPositions", close_all),
            )
            await asyncio.gather(*work)
            left = await asyncio.gather(
                raw_snapshot(session, url, token, account_id, "OpenOrders", None),
                raw_snapshot(session, url, token, account_id, "OpenPositions", None),
            )
            if any(left):
                raise RuntimeError(f"raw flatten: {account_id} is not flat")

        started = time.perf_counter()
        # accounts="all": the library lists them first, and so does this.
        async with session.get(url + _API + "/v3/accounts", headers=auth) as response:
            response.raise_for_status()
            listed = [a["accountId"] for a in json.loads(await response.read())]
        await asyncio.gather(*(account(a) for a in listed))
        return time.perf_counter() - started


# --- measurements --------------------------------------------------------------------------


def _run(kind: str, **book: Any) -> float:
    wall: float = _run_measured(kind, **book)["wall_s"]
    return wall


def _run_measured(kind: str, **book: Any) -> dict[str, Any]:
    """One run: its wall time, the client's and the server's CPU over it (their busy shares
    say which side, if either, was the bottleneck) and the requests the server served."""
    with _simulator(**book) as (about, process):
        cpu = time.process_time()
        wall = asyncio.run(_library(about) if kind == "library" else _raw(about))
        cpu = time.process_time() - cpu
        said = _said(process)
    if said["left"]:
        raise RuntimeError(f"{kind}: {said['left']} things left open")
    return {
        "wall_s": wall,
        "client_busy": cpu / wall,
        "server_busy": said["cpu_s"] / wall,
        "requests": said["requests"],
        "max_in_flight": said["max_in_flight"],
    }


def measure_flatten(
    *,
    sizes: tuple[int, ...] = (1, 10, 50),
    orders: int = 200,
    stops: int = 20,
    positions: int = 20,
    latency: float = 0.02,
    rounds: int = 3,
    orders_sweep: tuple[int, ...] = (50, 100, 200, 400),
    sweep_accounts: int = 10,
    wave_requests: int = 100 * CONCURRENCY,
) -> dict[str, Any]:
    """Wall time of flatten per size, its ratio to the ideal and (per round) to raw aiohttp,
    and wall time against orders per account at `sweep_accounts` accounts."""
    book = {"stops": stops, "positions": positions, "latency": latency}
    _run("library", accounts=1, orders=5, **book)  # untimed: imports and caches
    _run("raw", accounts=1, orders=5, **book)
    by_size: list[dict[str, Any]] = []
    for n in sizes:
        runs: dict[str, list[dict[str, Any]]] = {"library": [], "raw": []}
        for round_ in range(rounds):
            order = ("library", "raw") if round_ % 2 == 0 else ("raw", "library")
            for kind in order:
                runs[kind].append(_run_measured(kind, accounts=n, orders=orders, **book))
        library = [r["wall_s"] for r in runs["library"]]
        raw = [r["wall_s"] for r in runs["raw"]]
        ideal = ideal_seconds(accounts=n, orders=orders, stops=stops, latency=latency)
        found: dict[str, Any] = {
            "accounts": n,
            "ideal_s": ideal,
            "library_wall_s": Spread.of(library).as_dict(),
            "raw_wall_s": Spread.of(raw).as_dict(),
            "ratio_ideal": Spread.of(w / ideal for w in library).as_dict(),
            "ratio_raw": Spread.of(w / r for w, r in zip(library, raw, strict=True)).as_dict(),
        }
        for kind, measured in runs.items():
            for key in ("client_busy", "server_busy", "requests", "max_in_flight"):
                found[f"{kind}_{key}"] = Spread.of(r[key] for r in measured).as_dict()
        by_size.append(found)
    sweep = []
    for count in orders_sweep:
        walls = [
            _run("library", accounts=sweep_accounts, orders=count, **book) for _ in range(rounds)
        ]
        ideal = ideal_seconds(accounts=sweep_accounts, orders=count, stops=stops, latency=latency)
        sweep.append({"orders": count, "ideal_s": ideal, "wall_s": Spread.of(walls).as_dict()})
    return {
        "orders": orders,
        "stops": stops,
        "positions": positions,
        "latency_s": latency,
        "concurrency": CONCURRENCY,
        "settle_s": SETTLE,
        "sizes": by_size,
        "orders_sweep": {"accounts": sweep_accounts, "points": sweep},
        "wave_s": measure_wave(latency=latency, requests=wave_requests),
    }


def measure_wave(*, latency: float, requests: int) -> dict[str, Any]:
    """How long one wave of `CONCURRENCY` requests really takes on this machine: raw aiohttp
    sends `requests` DELETEs (of ids the simulator does not know: each answered 404 after the
    same latency) at the default concurrency, nothing else. The ideal counts `latency` a
    wave; the difference is the round trip's own cost (both sides' CPU, the event loops'
    timers), which no client can avoid."""
    with _simulator(accounts=1, orders=1, stops=0, positions=0, latency=latency) as (about, _):
        walls = [asyncio.run(_deletes(about, requests)) for _ in range(3)]
    waves = requests / CONCURRENCY
    return Spread.of(w / waves for w in walls).as_dict()


async def _deletes(about: dict[str, Any], requests: int) -> float:
    url, account = about["url"] + _API + "/v3/orders/", about["accounts"][0]
    headers = {"Authorization": f"Bearer {about['token']}", "accountId": account}
    gate = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def delete(n: int) -> None:
            async with gate, session.delete(f"{url}{n:024x}", headers=headers) as response:
                await response.read()

        await asyncio.gather(*(delete(n) for n in range(CONCURRENCY)))  # connections, untimed
        started = time.perf_counter()
        await asyncio.gather(*(delete(n) for n in range(requests)))
        return time.perf_counter() - started


def measure_journal(
    *, orders: int = 10_000, latencies: tuple[float, ...] = (0.02, 0.0), rounds: int = 3
) -> dict[str, Any]:
    """flatten with `journal=` against without, at each REST latency: wall time and the
    client's CPU, per round. The first latency is the scenario's (the target's); a latency of
    0 makes the run CPU-bound, which shows the journal's whole cost."""
    return {
        "orders": orders,
        "by_latency": [_journal_at(orders, latency, rounds) for latency in latencies],
    }


def _journal_at(orders: int, latency: float, rounds: int) -> dict[str, Any]:
    book = {"accounts": 1, "orders": orders, "stops": 0, "positions": 0, "latency": latency}
    walls: dict[str, list[float]] = {"with": [], "without": []}
    cpus: dict[str, list[float]] = {"with": [], "without": []}
    for round_ in range(rounds + 1):  # the first round warms up, untimed
        order = ("with", "without") if round_ % 2 == 0 else ("without", "with")
        for kind in order:
            with (
                _simulator(**book) as (about, process),
                tempfile.TemporaryDirectory() as tmp,
            ):
                journal = Path(tmp) / "run.jsonl" if kind == "with" else None
                cpu = time.process_time()
                wall = asyncio.run(_library(about, journal))
                cpu = time.process_time() - cpu
                if _left(process):
                    raise RuntimeError("journal run: not flat")
            if round_:
                walls[kind].append(wall)
                cpus[kind].append(cpu)
    pairs = zip(walls["with"], walls["without"], strict=True)
    cpu_pairs = zip(cpus["with"], cpus["without"], strict=True)
    return {
        "latency_s": latency,
        "wall_with_s": Spread.of(walls["with"]).as_dict(),
        "wall_without_s": Spread.of(walls["without"]).as_dict(),
        "ratio_wall": Spread.of(a / b for a, b in pairs).as_dict(),
        "ratio_cpu": Spread.of(a / b for a, b in cpu_pairs).as_dict(),
    }


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    n, o, s, p = (int(v) for v in sys.argv[2:6])
    asyncio.run(_serve(n, o, s, p, float(sys.argv[6])))
