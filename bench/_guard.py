"""The guard's reaction time: from the bot's death to the guard's first DELETE and to a
verified-flat account, against the same flatten started by hand on a warm client.

Each round gets a fresh simulator in this process (its request log's times are this process's
`time.monotonic()`) with the same open orders, positions and stop orders, and one contender in
a process of its own, so that neither shares a core's time with the simulator unfairly:

- `guard`: a bot (this module, `bot`) enters `client.guard()` and waits; once the guard has
  been idle a moment, the bot is SIGKILLed. The clock starts at the kill.
- `hand`: a process (this module, `hand`) opens a client, warms it (`list_accounts`: session,
  connection, token), waits, and runs `flatten` when told "go" on its stdin. The clock starts
  when "go" is written.

Both flatten with the library's defaults (a 0.5 s settle window per snapshot: the verdict
waits for it) and a journal: "verified" is the time of the journal's `summary` event (written
as flatten returns, millisecond resolution), "first DELETE" the simulator's first cancel or
close request, "flat" the moment the simulator's books are empty (polled every millisecond).

`python -m bench._guard` prints the result as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from frontoffice_async import FrontOfficeClient
from frontoffice_async.testing import FrontOfficeSimulator

from ._stats import Spread, pin_to_server_core

__all__ = ["measure_guard"]

_ROOT: Final = Path(__file__).resolve().parent.parent
_TOKEN: Final = "bench-guard-token"
#: Seconds a contender sits ready before the clock starts: the guard idle, as in real life.
_IDLE: Final = 0.3
#: The child process of each contender: `python -m bench._guard ROLE PLAN`.
_ROLES: Final = {"guard": "bot", "hand": "hand"}


def measure_guard(
    *, rounds: int = 5, orders: int = 100, positions: int = 5, stop_orders: int = 5
) -> dict[str, Any]:
    """Seconds from the bot's SIGKILL (guard) or from "go" (hand) to the first DELETE, to
    empty books and to the verified verdict, per contender (median, range); and the guard's
    verdict minus the hand's, round by round. Rounds alternate which contender goes first."""
    scene = {"orders": orders, "positions": positions, "stop_orders": stop_orders}
    runs: dict[str, list[dict[str, float]]] = {"guard": [], "hand": []}

    async def measure() -> None:
        with tempfile.TemporaryDirectory(prefix="bench-guard-") as tmp:
            for n in range(rounds + 1):  # the first round is untimed: caches, imports
                order = ("guard", "hand") if n % 2 == 0 else ("hand", "guard")
                for kind in order:
                    result = await _round(kind, scene, Path(tmp) / f"{kind}-{n}.jsonl")
                    if n:
                        runs[kind].append(result)

    asyncio.run(measure())
    summary: dict[str, Any] = {"scene": scene, "rounds": rounds}
    for kind, results in runs.items():
        summary[kind] = {
            key: Spread.of(r[key] for r in results).as_dict()
            for key in ("first_delete_s", "flat_s", "verified_s")
        }
    summary["verified_delta_s"] = Spread.of(
        g["verified_s"] - h["verified_s"] for g, h in zip(runs["guard"], runs["hand"], strict=True)
    ).as_dict()
    summary["runs"] = runs
    return summary


async def _round(kind: str, scene: dict[str, int], journal: Path) -> dict[str, float]:
    async with FrontOfficeSimulator(token=_TOKEN) as sim:
        sim.add_orders(scene["orders"])
        sim.add_positions(scene["positions"])
        stops = sim.add_stop_orders(scene["stop_orders"])
        plan = {"url": sim.url, "account": sim.account_ids[0], "stops": stops}
        async with _child(kind, {**plan, "journal": str(journal)}) as process:
            assert process.stdout is not None
            ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 30))
            await asyncio.sleep(_IDLE)
            started, wall = time.monotonic(), time.time()
            if kind == "guard":
                os.kill(process.pid, signal.SIGKILL)
            else:
                assert process.stdin is not None
                process.stdin.write(b"go\n")
            flat = await _until(lambda: not _books(sim))
            verified = await _verdict(journal)
            if kind == "guard":
                await _until(lambda: _gone(ready["guard_pid"]))
        first = min(r.started_at for r in sim.requests if r.method in ("DELETE", "POST"))
    return {
        "first_delete_s": first - started,
        "flat_s": flat - started,
        "verified_s": verified - wall,
    }


@contextlib.asynccontextmanager
async def _child(kind: str, plan: dict[str, Any]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench._guard",
        _ROLES[kind],
        json.dumps(plan),
        cwd=_ROOT,
        env={**os.environ, "BENCH_GUARD_TOKEN": _TOKEN},
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    # The simulator runs in this process, on the client's core: the contender (and the guard
    # it starts, which inherits its core) on the other.
    pin_to_server_core(process.pid)
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.communicate()


async def _until(condition: Any, seconds: float = 30.0) -> float:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("the bench's contender did not finish in time")
        await asyncio.sleep(0.001)
    return time.monotonic()


async def _verdict(journal: Path) -> float:
    """The wall time of the journal's `summary` event, once it is written; verified only."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            for line in journal.read_text().splitlines():  # noqa: ASYNC240 - a small local file
                event = json.loads(line)
                if event["event"] == "summary":
                    if not event["verified"]:
                        raise RuntimeError(f"{journal.name}: not verified")
                    return datetime.fromisoformat(event["time"]).timestamp()
        await asyncio.sleep(0.005)
    raise RuntimeError(f"{journal.name}: no summary")


def _books(sim: FrontOfficeSimulator) -> list[str]:
    return sim.open_order_ids() + sim.open_stop_order_ids() + sim.open_position_ids()


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


# --- the contenders, each in a process of its own ------------------------------------------------


async def _bot(plan: dict[str, Any]) -> None:
    """A bot under the guard that waits to be killed."""
    async with (
        FrontOfficeClient(
            plan["url"], token=os.environ["BENCH_GUARD_TOKEN"], account_id=plan["account"]
        ) as client,
        client.guard(stop_order_ids=plan["stops"], journal=plan["journal"]) as guard,
    ):
        print(json.dumps({"guard_pid": guard.pid}), flush=True)
        await asyncio.sleep(3600)


async def _hand(plan: dict[str, Any]) -> None:
    """The same flatten, started by hand on a warm client when "go" arrives on stdin."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with FrontOfficeClient(
        plan["url"], token=os.environ["BENCH_GUARD_TOKEN"], account_id=plan["account"]
    ) as client:
        await client.list_accounts()  # warm: the session, a connection, the token
        print(json.dumps({"ready": True}), flush=True)
        await reader.readline()
        await client.flatten(stop_order_ids=plan["stops"], journal=plan["journal"])


def _main(argv: list[str]) -> int:
    if not argv:
        print(json.dumps(measure_guard(), indent=2))
        return 0
    if len(argv) == 2 and argv[0] in ("bot", "hand"):  # a contender: never measures itself
        asyncio.run((_bot if argv[0] == "bot" else _hand)(json.loads(argv[1])))
        return 0
    print("usage: python -m bench._guard [bot|hand PLAN]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
