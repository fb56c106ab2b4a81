"""Turn the measurements into targets with PASS/MISS, a printed table, JSON and a PNG bar plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import attrs

__all__ = ["Target", "evaluate", "format_report", "write_json", "write_plot"]

_FLOOR: Final = "raw_aiohttp"
_OURS: Final = "fo_cancel_orders"


@attrs.frozen
class Target:
    """One goal: `value` must be at most (or at least) `limit`."""

    name: str
    value: float | None
    limit: float
    at_least: bool = False
    unit: str = "x"

    @property
    def passed(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.at_least else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "passed": self.passed}


def evaluate(results: dict[str, Any]) -> list[Target]:
    """The five targets, each from the result it is about (None when it was not measured)."""
    contenders: dict[str, dict[str, Any]] = results["contenders"]
    floor = contenders[_FLOOR]["cpu_us_per_request"]
    ours = contenders[_OURS]["cpu_us_per_request"]
    httpx = contenders.get("httpx")
    cancel_all = results.get("cancel_all")
    return [
        Target("per-cancel client CPU vs raw aiohttp", ours / floor, 1.10),
        Target(
            "httpx CPU vs ours",
            None if httpx is None else httpx["cpu_us_per_request"] / ours,
            20.0,
            at_least=True,
        ),
        Target("Order structuring vs hand-written", results["parsing"]["ratio"], 1.30),
        Target(
            f"{results['stream']['ids']:,}-id streaming peak memory",
            results["stream"]["peak_mib"],
            10.0,
            unit=" MiB",
        ),
        Target(
            "cancel-all wall vs ideal",
            None if cancel_all is None else cancel_all["ratio"],
            1.15,
        ),
    ]


def format_report(results: dict[str, Any], targets: list[Target]) -> str:
    """The human-readable summary: contenders table, the other measurements, the targets."""
    params = results["params"]
    contenders: dict[str, dict[str, Any]] = results["contenders"]
    floor = contenders[_FLOOR]["cpu_us_per_request"]
    lines = [
        f"N={params['n']} concurrency={params['concurrency']} repeat={params['repeat']} "
        f"(medians); server in its own process",
        "",
        f"{'contender':<40} {'CPU µs/req':>10} {'x raw':>7} {'req/s':>8} "
        f"{'client busy':>11} {'server busy':>11} {'runs':>4}",
    ]
    for row in contenders.values():
        cpu = row["cpu_us_per_request"]
        lines.append(
            f"{row['label']:<40} {cpu:>10.1f} {cpu / floor:>7.2f} {row['requests_per_s']:>8.0f} "
            f"{row['client_busy']:>11.0%} {row['server_busy']:>11.0%} {row['repeat']:>4}"
        )
    parsing = results["parsing"]
    lines += [
        "",
        f"Order structuring: cattrs {parsing['structure_us']:.1f} µs, "
        f"hand-written {parsing['hand_us']:.1f} µs ({parsing['ratio']:.2f}x)",
        f"Body parsing: library (_converter.loads) {parsing['library_loads_us']:.1f} µs, "
        f"json.loads {parsing['json_plain_us']:.1f} µs",
    ]
    stream = results["stream"]
    lines.append(
        f"Streaming {stream['ids']:,} ids through iter_cancel_orders: peak "
        f"{stream['peak_mib']:.2f} MiB (tracemalloc; {stream['wall_s_traced']:.1f} s traced); "
        f"with dedupe=False {stream['peak_mib_no_dedupe']:.2f} MiB"
    )
    cancel_all = results.get("cancel_all")
    if cancel_all is None:
        lines.append(f"cancel-all: skipped ({results.get('cancel_all_skipped', 'not run')})")
    else:
        lines += _cancel_all_lines(cancel_all)
    imports = results["imports"]
    lines.append(
        "import time (-X importtime, cumulative): "
        + ", ".join(f"{name} {ms:.0f} ms" for name, ms in imports.items())
    )
    lines += ["", "Targets:"]
    for target in targets:
        verdict = {True: "PASS", False: "MISS", None: "SKIP"}[target.passed]
        sign = "≥" if target.at_least else "≤"
        value = "n/a" if target.value is None else f"{target.value:.2f}{target.unit}"
        lines.append(
            f"  {verdict}  {target.name}: {value} (target {sign} {target.limit:g}{target.unit})"
        )
    return "\n".join(lines)


def _cancel_all_lines(c: dict[str, Any]) -> list[str]:
    lines = [
        f"cancel-all of {c['orders']} orders, {c['latency_s'] * 1000:g} ms latency, concurrency "
        f"{c['concurrency']}: {c['wall_s']:.3f} s vs ideal {c['ideal_s']:.3f} s "
        f"({c['ratio']:.2f}x); snapshot alone {c['snapshot_s']:.3f} s",
    ]
    cpu = f"  client CPU {c['client_cpu_s']:.2f} s"
    if c["server_cpu_s"] is not None:
        cpu += f", simulator CPU {c['server_cpu_s']:.2f} s"
    lines.append(
        f"{cpu}; raw aiohttp, same DELETEs without the snapshot: "
        f"{c['raw_aiohttp_wall_s']:.3f} s ({c['raw_aiohttp_ratio']:.2f}x ideal)"
    )
    return lines


def write_json(path: Path, results: dict[str, Any], targets: list[Target]) -> None:
    """Everything measured, plus the targets, as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**results, "targets": [t.as_dict() for t in targets]}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def write_plot(path: Path, results: dict[str, Any]) -> None:
    """A horizontal bar chart of client CPU µs per request, with the floor and the 1.10x line."""
    import matplotlib  # noqa: PLC0415 -- slow to import; only when a plot is wanted

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    contenders: dict[str, dict[str, Any]] = results["contenders"]
    params = results["params"]
    rows = list(contenders.values())
    labels = [
        row["label"]
        if row["repeat"] == params["repeat"]
        else f"{row['label']} ({row['repeat']} run)"
        for row in rows
    ]
    values = [row["cpu_us_per_request"] for row in rows]
    floor = contenders[_FLOOR]["cpu_us_per_request"]
    colors = ["#2b7bba" if key.startswith("fo_") else "#9a9a9a" for key in contenders]
    fig, ax = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.8), layout="constrained")
    bars = ax.barh(labels, values, color=colors)
    ax.invert_yaxis()
    ax.bar_label(bars, labels=[f"{v:.0f} µs ({v / floor:.2f}x)" for v in values], padding=3)
    ax.axvline(
        floor * 1.10, color="#d62728", linestyle="--", linewidth=1, label="1.10x raw aiohttp"
    )
    # Log scale: httpx is an order of magnitude off, and the differences that matter are small.
    ax.set_xscale("log")
    ax.set_xlim(min(values) / 2, max(values) * 4)
    ax.set_xlabel("client CPU per DELETE + JSON parse (µs, log scale, lower is better)")
    ax.set_title(
        f"Client CPU per cancel: N={params['n']}, concurrency={params['concurrency']}, "
        f"median of {params['repeat']}"
    )
    ax.legend(loc="upper right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
