"""`python -m bench`: client CPU per cancel against a fast server, and the library's targets.

Prints a table with PASS/MISS per target, writes JSON (bench/results/latest.json) and a PNG.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

from . import _cancel_all, _emergency, _measure, _profile, _report, _rounds, _server, _study
from ._clients import Target
from ._contenders import CONTENDERS, FLOOR, LIBRARY, PEERS, STDLIB
from ._stats import client_core, pin, server_core

__all__ = ["main"]

_RESULTS = Path(__file__).parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement once, print the report, write the JSON and the plot."""
    args = _parse(argv)
    if args.study:
        return _run_study(args)
    if args.callgrind_child:
        key, url, n, concurrency = args.callgrind_child
        _profile.callgrind_child(key, url, int(n), int(concurrency))
        return 0
    if args.profile:
        keys = [FLOOR, *LIBRARY, STDLIB, PEERS[1]]
        n = args.n or (500 if args.quick else 10_000)
        print(f"N={n} concurrency={args.concurrency}; self time per cancel, cProfile on")
        print(_profile.profile_main(n=n, concurrency=args.concurrency, keys=keys,
                                    callgrind=not args.quick))  # fmt: skip
        return 0
    quick = args.quick
    if args.no_pin or client_core() is None:
        cores: tuple[int | None, int | None] = (None, None)
    else:
        cores = (client_core(), server_core())
    pin(cores[0])
    options = _rounds.RaceOptions(
        n=args.n or (200 if quick else 5000),
        concurrency=args.concurrency,
        rounds=args.rounds or (3 if quick else 7),
    )
    stream_n = args.stream_n or (1000 if quick else 100_000)
    results: dict[str, Any] = {
        "machine": _machine(),
        "params": {
            **attrs.asdict(options),
            "quick": quick,
            "client_core": cores[0],
            "server_core": cores[1],
        },
    }
    with _server.start("fast", cpu=cores[1]) as server:
        target = Target(server.url, server.token, server.account_id)
        race = asyncio.run(_rounds.race(CONTENDERS, target, options))
        results["calibration_us"] = race["calibration_us"]
        results.update(_report.summarise_race(race))
        results["stream"] = asyncio.run(
            _measure.measure_stream(target, n=stream_n, concurrency=args.concurrency)
        )
        # The figure no neighbour can move; about 40 s per contender, so not in quick mode.
        if args.callgrind and not quick and shutil.which("valgrind"):
            results["instructions"] = _profile.callgrind_per_cancel(
                _profile.CALLGRIND_KEYS, server.url, args.concurrency
            )
    results["parse"] = _measure.measure_parse(number=2000 if quick else 20_000)
    results["cancel_all"] = _cancel_all.measure_cancel_all(
        orders=100 if quick else 1000,
        latency=0.02,
        concurrency=50,
        rounds=1 if quick else 7,
        server_cpu=cores[1],
    )
    if args.emergency:
        results["emergency"] = _emergency.measure(quick=quick)
    results["imports"] = _measure.measure_imports(repeat=1 if quick else 9)
    results["help"] = _measure.measure_help(repeat=1 if quick else 7)

    results["machine"]["loadavg_after"] = _loadavg()
    goals = _report.evaluate(results) + _emergency.evaluate(results)
    print(_report.format_report(results, goals, _emergency.format_lines(results)))
    _report.write_json(args.json, results, goals)
    print(f"\nwrote {args.json}")
    if args.plot is not None:
        _report.write_plot(args.plot, results)
        print(f"wrote {args.plot}")
        for path in _emergency.write_plots(args.plot.parent, results):
            print(f"wrote {path}")
    return 0


def _run_study(args: argparse.Namespace) -> int:
    """`--study`: what makes runs differ (see `_study`)."""
    n = args.n or (200 if args.quick else 5000)
    rounds = args.rounds or (2 if args.quick else 7)
    study = _study.run_study(n=n, concurrency=args.concurrency, rounds=rounds)
    print(f"N={n} concurrency={args.concurrency} rounds={rounds}; median (min-max) over rounds")
    print(_study.format_study(study))
    default = args.json == _RESULTS / "latest.json"
    path = _RESULTS / "study.json" if default else args.json
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"machine": _machine(), "study": study}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}")
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--n", type=_positive, help="cancels per contender and round (5000)")
    parser.add_argument("--concurrency", type=_positive, default=64, help="in flight (64)")
    parser.add_argument("--rounds", type=_positive, help="rounds of the CPU race (7)")
    parser.add_argument("--stream-n", type=_positive, help="ids for the memory test (100000)")
    parser.add_argument("--no-pin", action="store_true", help="let the OS place the processes")
    parser.add_argument(
        "--json", type=Path, default=_RESULTS / "latest.json", help="where to write results"
    )
    parser.add_argument(
        "--plot", type=Path, default=_RESULTS / "bench_cpu.png", help="where to write the PNG"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small counts, few rounds: checks that it runs"
    )
    parser.add_argument(
        "--study", action="store_true", help="what makes runs differ: one change at a time"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile and callgrind of the hot path"
    )
    parser.add_argument(
        "--no-callgrind",
        dest="callgrind",
        action="store_false",
        help="skip callgrind's instruction counts (they need valgrind and ~3 minutes)",
    )
    parser.add_argument(
        "--no-emergency",
        dest="emergency",
        action="store_false",
        help="skip flatten at scale, the guard, the journal and the snapshot memory (~6 min)",
    )
    parser.add_argument("--callgrind-child", nargs=4, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor() or "unknown"
    versions: dict[str, str | None] = {}
    for dist in ("aiohttp", "httpx", "aiohttp-retry", "tenacity", "cattrs", "attrs", "orjson"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "versions": versions,
        "executable": sys.executable,
        # Others' work on the machine slows wall-clock results (CPU time much less so).
        "loadavg_before": _loadavg(),
    }


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
