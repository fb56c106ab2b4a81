"""The emergency's figures (issue 23): time to a verified-flat book at scale, the guard's
reaction, the journal's cost, and the memory of a large snapshot; their targets, report lines
and plots. `python -m bench` runs them after the CPU race.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import _flatten, _guard, _memory
from ._report import Goal
from ._stats import Spread

__all__ = ["evaluate", "format_lines", "measure", "write_plots"]

#: Issue 23's targets.
FLATTEN_VS_IDEAL = 1.15
FLATTEN_VS_RAW = 1.0
GUARD_FIRST_DELETE_S = 0.1
GUARD_VERIFIED_DELTA_S = 0.15
JOURNAL_RATIO = 1.05


def measure(*, quick: bool) -> dict[str, Any]:
    """Every emergency figure; `quick`: small books, one round (a check that it runs)."""
    if quick:
        return {
            "flatten": _flatten.measure_flatten(
                sizes=(1, 2),
                orders=20,
                stops=2,
                positions=2,
                rounds=1,
                orders_sweep=(10, 20),
                sweep_accounts=2,
                wave_requests=320,
            ),
            "journal": _flatten.measure_journal(orders=200, rounds=1),
            "guard": _guard.measure_guard(rounds=1, orders=10, positions=1, stop_orders=1),
            "snapshot_memory": _memory.measure_snapshot_memory(orders=3000),
        }
    return {
        "flatten": _flatten.measure_flatten(),
        "journal": _flatten.measure_journal(),
        "guard": _guard.measure_guard(rounds=7),
        "snapshot_memory": _memory.measure_snapshot_memory(),
    }


def evaluate(results: dict[str, Any]) -> list[Goal]:
    """The targets of what `measure` found (none when it did not run)."""
    found = results.get("emergency")
    if found is None:
        return []
    goals: list[Goal] = []
    flatten = found["flatten"]
    for size in flatten["sizes"]:
        n = size["accounts"]
        ideal, raw = _spread(size["ratio_ideal"]), _spread(size["ratio_raw"])
        goals.append(
            Goal(f"flatten, {n} account(s): wall vs the ideal", ideal.median, FLATTEN_VS_IDEAL,
                 spread=_range(ideal))
        )  # fmt: skip
        goals.append(
            Goal(f"flatten, {n} account(s): wall vs raw aiohttp", raw.median, FLATTEN_VS_RAW,
                 spread=_range(raw))
        )  # fmt: skip
    guard = found["guard"]
    first = _spread(guard["guard"]["first_delete_s"])
    delta = _spread(guard["verified_delta_s"])
    goals.append(
        Goal("guard: bot's SIGKILL to its first DELETE", first.median * 1000,
             GUARD_FIRST_DELETE_S * 1000, " ms", _range(first, 1000))
    )  # fmt: skip
    goals.append(
        Goal("guard: verified-flat minus the same flatten by hand", delta.median * 1000,
             GUARD_VERIFIED_DELTA_S * 1000, " ms", _range(delta, 1000))
    )  # fmt: skip
    at = found["journal"]["by_latency"][0]
    journal = _spread(at["ratio_wall"])
    goals.append(
        Goal(f"flatten of {found['journal']['orders']:,} orders, {at['latency_s'] * 1000:g} ms "
             "latency: with journal= vs without", journal.median, JOURNAL_RATIO,
             spread=_range(journal))
    )  # fmt: skip
    memory = found["snapshot_memory"]
    goals.append(
        Goal(f"{memory['orders']:,}-order snapshot selected: traced peak vs its JSON size",
             memory["ratio"], _memory.TARGET)
    )  # fmt: skip
    return goals


def format_lines(results: dict[str, Any]) -> list[str]:
    """What was measured, beyond the targets."""
    found = results.get("emergency")
    if found is None:
        return ["emergency figures: not measured (--no-emergency)"]
    flatten = found["flatten"]
    lines = [
        f'flatten(accounts="all"), {flatten["orders"]} orders, {flatten["stops"]} stop orders and '
        f"{flatten['positions']} positions an account, {flatten['latency_s'] * 1000:g} ms "
        f"latency, concurrency {flatten['concurrency']}, settle {flatten['settle_s']:g} s:",
    ]
    for size in flatten["sizes"]:
        lib, raw = _spread(size["library_wall_s"]), _spread(size["raw_wall_s"])
        lines.append(
            f"  {size['accounts']:>3} account(s): ideal {size['ideal_s']:.3f} s, library "
            f"{lib.text('.3f', ' s')}, raw {raw.text('.3f', ' s')}"
        )
        lines.append("        " + "; ".join(_busy(size, kind) for kind in ("library", "raw")))
    wave = _spread(flatten["wave_s"])
    lines.append(
        f"  one wave of {flatten['concurrency']} requests of {flatten['latency_s'] * 1000:g} ms, "
        f"raw aiohttp alone: {_ms(wave)}; "
        "ideals with that wave: "
        + ", ".join(
            f"{s['accounts']}: {_achievable(flatten, s['accounts'], wave.median):.3f} s"
            for s in flatten["sizes"]
        )
    )
    sweep = flatten["orders_sweep"]
    points = ", ".join(
        f"{p['orders']}: {_spread(p['wall_s']).median:.3f} s (ideal {p['ideal_s']:.3f})"
        for p in sweep["points"]
    )
    lines.append(f"  orders an account at {sweep['accounts']} accounts -> wall: {points}")
    journal = found["journal"]
    for at in journal["by_latency"]:
        lines.append(
            f"journal: flatten of {journal['orders']:,} orders, {at['latency_s'] * 1000:g} ms "
            f"latency: wall with/without {_spread(at['ratio_wall']).text()} "
            f"({_spread(at['wall_without_s']).median:.3f} s without), client CPU with/without "
            f"{_spread(at['ratio_cpu']).text()}"
        )
    guard = found["guard"]
    for kind in ("guard", "hand"):
        part = guard[kind]
        lines.append(
            f"{kind:>5}: first DELETE {_spread(part['first_delete_s']).text('.3f', ' s')}, "
            f"books empty {_spread(part['flat_s']).text('.3f', ' s')}, verified "
            f"{_spread(part['verified_s']).text('.3f', ' s')}"
        )
    memory = found["snapshot_memory"]
    lines.append(
        f"snapshot memory: {memory['orders']:,} orders, JSON {memory['json_bytes'] / 2**20:.1f} "
        f"MiB, traced peak {memory['peak_bytes'] / 2**20:.1f} MiB ({memory['ratio']:.2f}x)"
    )
    return lines


def write_plots(directory: Path, results: dict[str, Any]) -> list[Path]:
    """Wall time against accounts (library, raw, ideal) and against orders an account."""
    found = results.get("emergency")
    if found is None:
        return []
    import matplotlib  # noqa: PLC0415 -- slow to import; only when a plot is wanted

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    flatten = found["flatten"]
    sizes = flatten["sizes"]
    by_accounts = _plot(
        plt,
        directory / "flatten_accounts.png",
        [s["accounts"] for s in sizes],
        {
            "frontoffice_async": [_spread(s["library_wall_s"]) for s in sizes],
            "raw aiohttp": [_spread(s["raw_wall_s"]) for s in sizes],
        },
        [s["ideal_s"] for s in sizes],
        xlabel="accounts",
        title=f"flatten: {flatten['orders']} orders, {flatten['stops']} stop orders, "
        f"{flatten['positions']} positions an account; {flatten['latency_s'] * 1000:g} ms",
    )
    sweep = flatten["orders_sweep"]
    points = sweep["points"]
    by_orders = _plot(
        plt,
        directory / "flatten_orders.png",
        [p["orders"] for p in points],
        {"frontoffice_async": [_spread(p["wall_s"]) for p in points]},
        [p["ideal_s"] for p in points],
        xlabel="open orders an account",
        title=f"flatten over {sweep['accounts']} accounts",
    )
    return [by_accounts, by_orders]


def _plot(
    plt: Any,
    path: Path,
    xs: list[int],
    series: dict[str, list[Spread]],
    ideal: list[float],
    *,
    xlabel: str,
    title: str,
) -> Path:
    """Seconds to verified-flat against `xs`: each series' medians with their ranges as
    error bars, and the ideal dashed."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for label, spreads in series.items():
        ax.errorbar(
            xs,
            [s.median for s in spreads],
            yerr=[[s.median - s.low for s in spreads], [s.high - s.median for s in spreads]],
            marker="o",
            capsize=3,
            label=label,
        )
    ax.plot(xs, ideal, "k--", label="ideal")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("seconds to verified-flat")
    ax.set_title(title)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _ms(s: Spread) -> str:
    return f"{s.median * 1000:.2f} ms ({_range(s, 1000)})"


def _achievable(flatten: dict[str, Any], accounts: int, wave: float) -> float:
    """The ideal with the wave this machine really takes instead of the bare latency."""
    return _flatten.ideal_seconds(
        accounts=accounts, orders=flatten["orders"], stops=flatten["stops"], latency=wave
    )


def _busy(size: dict[str, Any], kind: str) -> str:
    """A contender's client and server busy shares and the requests the server served."""
    client = _spread(size[f"{kind}_client_busy"]).median
    server = _spread(size[f"{kind}_server_busy"]).median
    requests = _spread(size[f"{kind}_requests"]).median
    peak = _spread(size[f"{kind}_max_in_flight"]).median
    return (
        f"{kind}: client {client:.0%} busy, server {server:.0%}, {requests:,.0f} requests "
        f"(at most {peak:.0f} in flight)"
    )


def _spread(data: dict[str, Any]) -> Spread:
    return Spread(data["median"], data["low"], data["high"], data["n"])


def _range(s: Spread, scale: float = 1.0) -> str:
    return f"{s.low * scale:.2f}-{s.high * scale:.2f}"
