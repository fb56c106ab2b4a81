"""Small helpers every measurement shares: a median with its spread, and CPU pinning.

The client (this process) and each server get a core of their own when the machine has two.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterable
from typing import Any

import attrs

__all__ = ["Spread", "busy_seconds", "calibrate", "client_core", "pin", "server_core"]


@attrs.frozen
class Spread:
    """The median of some samples and their range (min-max)."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread:
        """Summarise at least one value."""
        items = sorted(values)
        if not items:
            raise ValueError("no samples")
        return cls(statistics.median(items), items[0], items[-1], len(items))

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def text(self, fmt: str = ".2f", unit: str = "") -> str:
        """`1.23x (1.20-1.31)`: the median, then the range in brackets."""
        return f"{self.median:{fmt}}{unit} ({self.low:{fmt}}-{self.high:{fmt}})"


def _cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return []


# Read once, before `pin` narrows this process to one core.
_CORES = _cores()


def client_core() -> int | None:
    """The core the client (this process) runs on, when there are at least two."""
    return _CORES[0] if len(_CORES) >= 2 else None


def server_core() -> int | None:
    """The core the servers run on, when there are at least two."""
    return _CORES[1] if len(_CORES) >= 2 else None


def pin(core: int | None) -> bool:
    """Run this process on one core only (or on all of them again for None)."""
    if not _CORES:
        return False
    os.sched_setaffinity(0, {core} if core is not None else set(_CORES))
    return core is not None


def pin_to_server_core(pid: int) -> None:
    """Move a child process to the servers' core when this process is pinned (as `make
    bench` pins it): a child inherits the client's core, and two busy processes on one core
    would time each other's CPU."""
    core = server_core()
    if core is not None and len(os.sched_getaffinity(0)) == 1:
        os.sched_setaffinity(pid, {core})


def calibrate(loops: int = 200_000) -> float:
    """CPU µs of a fixed pure-Python loop: how fast the machine is right now.

    Its drift between rounds is what a frequency change or a noisy neighbour does to
    absolute numbers; the per-round ratios cancel it.
    """
    start = time.process_time()
    total = 0
    for i in range(loops):
        total += i * i % 7
    return (time.process_time() - start) * 1e6 if total >= 0 else 0.0


def busy_seconds() -> float:
    """CPU seconds all processes have used, on all cores (Linux only; else 0).

    Minus what the client and the server used, it is what others did during a run.
    """
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(x) for x in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    # user, nice, system: time charged to processes. Interrupts are left out: the loopback
    # traffic of the bench itself is handled there, charged to no process.
    return sum(fields[:3]) / os.sysconf("SC_CLK_TCK")
