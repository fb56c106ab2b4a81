"""`python -m bench`: client CPU per cancel against a fast server, and the library's targets.

Prints a table, writes JSON (bench/results/latest.json) and a PNG bar plot.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from . import _measure, _report, _server
from ._clients import CONTENDERS, Target

__all__ = ["main"]

_RESULTS = Path(__file__).parent / "results"


def main(argv: Sequence[str] | None = None) -> int:
    """Run every measurement once, print the report, write the JSON and the plot."""
    args = _parse(argv)
    quick = args.quick
    n = args.n if args.n is not None else (200 if quick else 5000)
    repeat = args.repeat if args.repeat is not None else (1 if quick else 5)
    stream_n = args.stream_n if args.stream_n is not None else (1000 if quick else 100_000)
    results: dict[str, Any] = {
        "machine": _machine(),
        "params": {"n": n, "concurrency": args.concurrency, "repeat": repeat, "quick": quick},
    }

    with _server.start("fast") as server:
        target = Target(server.url, server.token, server.account_id)
        contenders = asyncio.run(
            _measure.measure_contenders(
                CONTENDERS, target, n=n, concurrency=args.concurrency, repeat=repeat
            )
        )
        for contender in CONTENDERS:
            contenders[contender.key] = {"label": contender.label, **contenders[contender.key]}
        results["contenders"] = contenders
        results["stream"] = asyncio.run(
            _measure.measure_stream(target, n=stream_n, concurrency=args.concurrency)
        )

    results["parsing"] = _measure.measure_parsing(number=2000 if quick else 20_000)
    try:
        results["cancel_all"] = _measure.measure_cancel_all(
            orders=100 if quick else 1000,
            latency=0.02,
            concurrency=50,
            repeat=1 if quick else 3,
        )
    except ImportError as exc:  # the simulator is optional while it is being written
        results["cancel_all"] = None
        results["cancel_all_skipped"] = str(exc)
    results["imports"] = _measure.measure_imports(
        ["aiohttp", "frontoffice_async"], repeat=1 if quick else 7
    )

    results["machine"]["loadavg_after"] = _loadavg()
    targets = _report.evaluate(results)
    print(_report.format_report(results, targets))
    _report.write_json(args.json, results, targets)
    print(f"\nwrote {args.json}")
    if args.plot is not None:
        _report.write_plot(args.plot, results)
        print(f"wrote {args.plot}")
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--n", type=_positive, help="cancels per contender run (5000)")
    parser.add_argument("--concurrency", type=_positive, default=64, help="in flight (64)")
    parser.add_argument("--repeat", type=_positive, help="runs per contender; median (5)")
    parser.add_argument("--stream-n", type=_positive, help="ids for the memory test (100000)")
    parser.add_argument(
        "--json", type=Path, default=_RESULTS / "latest.json", help="where to write results"
    )
    parser.add_argument(
        "--plot", type=Path, default=_RESULTS / "bench_cpu.png", help="where to write the PNG"
    )
    parser.add_argument(
        "--quick", action="store_true", help="small N, one repetition: checks it runs"
    )
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
    for dist in ("aiohttp", "httpx", "aiohttp-retry", "tenacity", "cattrs"):
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
