"""What makes runs differ: the CPU race under one changed condition at a time.

`python -m bench --study` runs the floor, the library and the hand-written peer in each
setting and prints how far the absolute cost and the per-round ratios spread.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import attrs

from . import _server
from ._clients import Target
from ._contenders import CONTENDERS, FLOOR, LIBRARY, PEERS
from ._rounds import RaceOptions, per_round_ratios, race
from ._stats import Spread, client_core, pin, server_core

__all__ = ["SETTINGS", "Setting", "format_study", "run_study"]

_KEYS = (FLOOR, LIBRARY[0], PEERS[1])


@attrs.frozen
class Setting:
    """One condition of the study; everything not named here is the stable method."""

    name: str
    pin_client: bool = True
    #: "own" core, "client" (shares the client's core), or None (the OS decides).
    server: str | None = "own"
    #: A busy loop on the server's core, as a noisy neighbour or a slower server would be.
    hog: bool = False
    race: dict[str, Any] = attrs.field(factory=dict)


SETTINGS = (
    Setting("stable method (make bench)"),
    Setting("nothing pinned", pin_client=False, server=None),
    Setting("server on the client's core", server="client"),
    Setting("busy loop beside the server", hog=True, race={"quiet": None}),
    Setting("rounds kept when others are busy", race={"quiet": None}),
    Setting("no warm-up", race={"warmup": 0}),
    Setting("clients kept across rounds", race={"reuse": True}),
    Setting("no gc.collect() before runs", race={"gc_mode": "none"}),
    Setting("GC disabled during runs", race={"gc_mode": "disable"}),
)


@contextlib.contextmanager
def _hog(core: int | None) -> Iterator[None]:
    code = f"import os\nos.sched_setaffinity(0, {{{core}}})\nwhile True: pass"
    hog = subprocess.Popen([sys.executable, "-c", code])  # noqa: S603 -- fixed code
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


def run_study(*, n: int, concurrency: int, rounds: int) -> dict[str, Any]:
    """Every setting in turn; returns spreads of the absolute costs and of the ratios."""
    contenders = [c for c in CONTENDERS if c.key in _KEYS]
    out: dict[str, Any] = {}
    for setting in SETTINGS:
        client = client_core() if setting.pin_client else None
        server = {"own": server_core(), "client": client_core()}.get(setting.server or "")
        pin(client)
        options = RaceOptions(n=n, concurrency=concurrency, rounds=rounds, **setting.race)
        with contextlib.ExitStack() as stack:
            if setting.hog:
                stack.enter_context(_hog(server_core()))
            proc = stack.enter_context(_server.start("fast", cpu=server))
            target = Target(proc.url, proc.token, proc.account_id)
            result = asyncio.run(race(contenders, target, options))
        runs = result["runs"]
        out[setting.name] = {
            "speed_us": result["calibration_us"],
            **{f"{k}_us": Spread.of(r["cpu_us"] for r in runs[k]).as_dict() for k in _KEYS},
            "library_x_raw": Spread.of(per_round_ratios(runs[LIBRARY[0]], runs[FLOOR])).as_dict(),
            "peer_x_raw": Spread.of(per_round_ratios(runs[PEERS[1]], runs[FLOOR])).as_dict(),
            "library_x_peer": Spread.of(
                per_round_ratios(runs[LIBRARY[0]], runs[PEERS[1]])
            ).as_dict(),
            "redone": len(result["redone"]),
            "server_busy": Spread.of(
                r["server_cpu_us"] * r["n"] / 1e6 / r["wall_s"] for r in runs[FLOOR]
            ).as_dict(),
        }
    pin(client_core())
    return out


def format_study(study: dict[str, Any]) -> str:
    """One line per setting: raw µs, ratios, how wide each range is."""

    def s(d: dict[str, Any], fmt: str = ".2f") -> str:
        return Spread(d["median"], d["low"], d["high"], d["n"]).text(fmt)

    def width(d: dict[str, Any]) -> str:
        return f"{(d['high'] - d['low']) / d['median']:.0%}"

    lines = [
        f"{'setting':<32} {'raw µs/req':>20} {'width':>5} {'library x raw':>18} {'width':>5} "
        f"{'library x peer':>18} {'peer x raw':>18} {'server busy':>17} {'speed':>6} {'redone':>6}"
    ]
    for name, row in study.items():
        raw = row[f"{FLOOR}_us"]
        lines.append(
            f"{name:<32} {s(raw, '.1f'):>20} {width(raw):>5} {s(row['library_x_raw']):>18} "
            f"{width(row['library_x_raw']):>5} {s(row['library_x_peer']):>18} "
            f"{s(row['peer_x_raw']):>18} {s(row['server_busy']):>17} "
            f"{width(row['speed_us']):>6} {row['redone']:>6}"
        )
    return "\n".join(lines)
