"""Where the client's time goes per cancel: cProfile by function and by package, and
callgrind's instruction count (repeatable to a fraction of a percent), library vs floor.

`python -m bench --profile` prints both; `make bench` prints the instruction counts too;
`--callgrind-child` is their internal child mode.
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import _server
from ._clients import Contender, Target
from ._contenders import CONTENDERS, FLOOR, LIBRARY, PEERS, STDLIB
from ._rounds import order_ids
from ._stats import client_core, pin, server_core

__all__ = [
    "CALLGRIND_KEYS",
    "callgrind_child",
    "callgrind_per_cancel",
    "profile_main",
    "read_total",
]

_WARMUP = 2000
#: Counted by callgrind: the floor, the library with and without speedups, the hand-loop peer.
CALLGRIND_KEYS = (FLOOR, LIBRARY[0], STDLIB, PEERS[1])
#: Cancels of the two counted runs; their difference is what one cancel costs.
_CALLGRIND_RUNS = (1000, 3000)


async def _profiled(contender: Contender, target: Target, n: int, c: int) -> pstats.Stats:
    async with contender.open(target, c) as run:
        await run(list(order_ids(_WARMUP, start=n)))
        ids = list(order_ids(n))
        gc.collect()
        profile = cProfile.Profile()
        profile.enable()
        await run(ids)
        profile.disable()
    return pstats.Stats(profile)


def _where(filename: str, name: str) -> tuple[str, str]:
    """(package, short location) of a profiled function."""
    if filename == "~":
        return "C builtins", name
    if filename.startswith("<cattrs"):
        return "cattrs generated", filename.strip("<>").split()[-1].rsplit(".", 1)[-1]
    path = filename.replace(os.sep, "/")
    for marker in ("site-packages/", "/frontoffice_async/", "/bench/", "/python3.11/"):
        if marker in path:
            rest = path.split(marker, 1)[1]
            top = rest.split("/", 1)[0].removesuffix(".py")
            if marker == "/frontoffice_async/":
                top, rest = f"frontoffice_async.{top}", f"frontoffice_async/{rest}"
            elif marker == "/bench/":
                top, rest = "bench", f"bench/{rest}"
            return top, f"{rest}:{name}"
    return "other", f"{Path(path).name}:{name}"


def _tables(stats: pstats.Stats, n: int) -> tuple[dict[str, float], dict[str, float]]:
    """µs per cancel of self time: by package, and by function."""
    packages: dict[str, float] = defaultdict(float)
    functions: dict[str, float] = defaultdict(float)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, name), (_, _, tottime, *_rest) in raw.items():
        package, where = _where(filename, name)
        packages[package] += tottime / n * 1e6
        functions[where] += tottime / n * 1e6
    return packages, functions


def profile_main(*, n: int, concurrency: int, keys: list[str], callgrind: bool) -> str:
    """Profile each contender in `keys`; returns the printed report."""
    pin(client_core())
    chosen = [c for c in CONTENDERS if c.key in keys]
    lines: list[str] = []
    by_package: dict[str, dict[str, float]] = {}
    with _server.start("fast", cpu=server_core()) as server:
        target = Target(server.url, server.token, server.account_id)
        for contender in chosen:
            stats = asyncio.run(_profiled(contender, target, n, concurrency))
            packages, functions = _tables(stats, n)
            by_package[contender.key] = packages
            total = sum(packages.values())
            lines += ["", f"== {contender.label}: {total:.1f} µs/cancel under cProfile =="]
            top = sorted(functions.items(), key=lambda kv: -kv[1])[:25]
            lines += [f"  {us:7.2f}  {where}" for where, us in top]
        lines += ["", _package_table(by_package)]
        if callgrind and shutil.which("valgrind"):
            lines += ["", "callgrind instructions per cancel (Ir, from runs of 1,000 and 3,000):"]
            counts = callgrind_per_cancel(CALLGRIND_KEYS, server.url, concurrency)
            labels = {c.key: c.label for c in CONTENDERS}
            lines += [f"  {counts[key]:>10,.0f}  {labels[key]}" for key in CALLGRIND_KEYS]
    return "\n".join(lines)


def _package_table(by_package: dict[str, dict[str, float]]) -> str:
    keys = list(by_package)
    names = sorted({p for table in by_package.values() for p in table})
    names.sort(key=lambda p: -max(table.get(p, 0.0) for table in by_package.values()))
    head = f"{'self µs/cancel by package':<34}" + "".join(f"{k[:18]:>19}" for k in keys)
    rows = [head]
    for name in names:
        values = [by_package[k].get(name, 0.0) for k in keys]
        if max(values) >= 0.05:
            rows.append(f"{name:<34}" + "".join(f"{v:>19.2f}" for v in values))
    totals = [sum(by_package[k].values()) for k in keys]
    rows.append(f"{'total':<34}" + "".join(f"{v:>19.2f}" for v in totals))
    return "\n".join(rows)


def callgrind_per_cancel(keys: Sequence[str], url: str, concurrency: int) -> dict[str, float]:
    """Instructions per cancel of each contender in `keys`, counted by callgrind against the
    fast server at `url` (valgrind must be installed)."""
    return {key: _callgrind_per_cancel(key, url, concurrency) for key in keys}


# A fixed hash seed: string hashes decide dict layouts and so a few instructions per lookup;
# with the seed fixed, a contender's count repeats from run to run.
_CALLGRIND_ENV = {**os.environ, "PYTHONHASHSEED": "0"}


def _callgrind_per_cancel(key: str, url: str, concurrency: int) -> float:
    """Instructions of N2 cancels minus those of N1, over N2 - N1: start-up, imports and
    warm-up cancel out, so only the per-cancel cost is left."""
    counts = []
    for n in _CALLGRIND_RUNS:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "callgrind.out"
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            command += [sys.executable, "-m", "bench", "--callgrind-child", key, url]
            command += [str(n), str(concurrency)]
            subprocess.run(command, capture_output=True, check=True, env=_CALLGRIND_ENV)  # noqa: S603
            counts.append(read_total(out.read_text(encoding="utf-8", errors="replace")))
    first, second = _CALLGRIND_RUNS
    return (counts[1] - counts[0]) / (second - first)


def read_total(text: str) -> int:
    """The total instruction count of a callgrind output file."""
    match = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError("callgrind wrote no totals")
    return int(match.group(1))


def callgrind_child(key: str, url: str, n: int, concurrency: int) -> None:
    """Warm up, then send `n` cancels with one contender (run under valgrind)."""
    contender = next(c for c in CONTENDERS if c.key == key)
    target = Target(url, "bench-token", "685a7eaa360f9e7416221a61")

    async def main() -> None:
        async with contender.open(target, concurrency) as run:
            await run(list(order_ids(200, start=n)))
            await run(list(order_ids(n)))

    asyncio.run(main())
