"""The CPU race: every contender cancels the same ids, round after round, in rotated order.

Each contender's cost in a round is divided by the floor's cost in the same round: drift of
the machine between rounds (frequency, neighbours) cancels out of those ratios.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import attrs

from . import _server
from ._clients import Contender, Runner, Target
from ._stats import Spread, busy_seconds, calibrate

__all__ = ["RaceOptions", "order_ids", "per_round_ratios", "race", "summarise"]

GcMode = Literal["collect", "disable", "none"]


@attrs.frozen
class RaceOptions:
    """How the race is run; the defaults are the stable method `make bench` uses."""

    n: int = 5000
    concurrency: int = 64
    rounds: int = 7
    #: Send this many requests first, untimed, in each fresh client (None: 20 per worker).
    warmup: int | None = None
    #: Open each contender's client once and keep it (and its pool) across rounds.
    reuse: bool = False
    #: `collect` before each timed run; `disable` also turns the collector off during it.
    gc_mode: GcMode = "collect"
    #: Redo a round in which other processes kept more than this share of a core busy
    #: during some run (at most `rounds` redos in all); None keeps every round.
    quiet: float | None = 0.10


def order_ids(count: int, *, start: int = 0) -> Iterator[str]:
    """ULID-shaped ids (26 alphanumerics), distinct, as a lazy generator."""
    for number in range(start, start + count):
        yield f"01K2PF9XS2{number:016d}"


async def race(
    contenders: Sequence[Contender], target: Target, options: RaceOptions
) -> dict[str, Any]:
    """Run `options.rounds` rounds; returns each contender's runs, one per round."""
    ids = list(order_ids(options.n))
    warmup_n = options.warmup if options.warmup is not None else 20 * options.concurrency
    warmup = list(order_ids(warmup_n, start=options.n))
    runs: dict[str, list[dict[str, float]]] = {c.key: [] for c in contenders}
    speed: list[float] = []
    redone: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        kept: dict[str, Runner] = {}
        if options.reuse:
            for c in contenders:
                kept[c.key] = await stack.enter_async_context(c.open(target, options.concurrency))
        round_ = 0
        while round_ < options.rounds:
            speed.append(calibrate())
            shift = round_ % len(contenders)
            samples: dict[str, dict[str, float]] = {}
            for c in (*contenders[shift:], *contenders[:shift]):
                mine = ids[: max(1, round(len(ids) * c.share))]
                warm = warmup if not options.reuse or round_ == 0 else []
                if options.reuse:
                    sample = await _timed(kept[c.key], mine, warm, target, options.gc_mode)
                else:
                    async with c.open(target, options.concurrency) as run:
                        sample = await _timed(run, mine, warm, target, options.gc_mode)
                samples[c.key] = sample
            noise = max(s["others_busy"] for s in samples.values())
            limit = options.quiet
            if limit is not None and noise > limit and len(redone) < options.rounds:
                redone.append(noise)  # a neighbour was busy: this round is not comparable
                continue
            for key, sample in samples.items():
                runs[key].append(sample)
            round_ += 1
    return {"runs": runs, "calibration_us": Spread.of(speed).as_dict(), "redone": redone}


async def _timed(
    run: Runner, ids: list[str], warmup: list[str], target: Target, gc_mode: GcMode
) -> dict[str, float]:
    if warmup:
        # Opens the pool's connections and fills every lazy cache before the clock starts.
        await run(warmup)
    if gc_mode != "none":
        gc.collect()
    before = await _server.fetch_stats(target.url)
    if gc_mode == "disable":
        gc.disable()
    busy0 = busy_seconds()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        done = await run(ids)
    finally:
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        busy = busy_seconds() - busy0
        gc.enable()
    after = await _server.fetch_stats(target.url)
    server_cpu = after.cpu - before.cpu
    if done != len(ids):
        raise RuntimeError(f"{done} of {len(ids)} cancels came back")
    return {
        "n": len(ids),
        "cpu_us": cpu / len(ids) * 1e6,
        "wall_s": wall,
        "server_cpu_us": server_cpu / len(ids) * 1e6,
        # Share of a core that other processes used meanwhile.
        "others_busy": max(0.0, busy - cpu - server_cpu) / wall,
    }


def per_round_ratios(runs: list[dict[str, float]], base: list[dict[str, float]]) -> list[float]:
    """CPU per request of each round divided by the base's in the same round."""
    return [mine["cpu_us"] / theirs["cpu_us"] for mine, theirs in zip(runs, base, strict=True)]


def summarise(runs: list[dict[str, float]], floor: list[dict[str, float]]) -> dict[str, Any]:
    """One contender's medians and spreads; ratios are against the floor's same round."""
    wall = sum(r["wall_s"] for r in runs)
    return {
        "cpu_us": Spread.of(r["cpu_us"] for r in runs).as_dict(),
        "ratio": Spread.of(per_round_ratios(runs, floor)).as_dict(),
        "server_cpu_us": Spread.of(r["server_cpu_us"] for r in runs).as_dict(),
        "requests_per_s": sum(r["n"] for r in runs) / wall,
        "client_busy": sum(r["cpu_us"] * r["n"] for r in runs) / 1e6 / wall,
        "server_busy": sum(r["server_cpu_us"] * r["n"] for r in runs) / 1e6 / wall,
        "others_busy": Spread.of(r["others_busy"] for r in runs).as_dict(),
        "runs": runs,
    }
