"""What the test files share: sample bodies, a simulator-backed client, instant sleeps, scripts,
task and secret checks. Fixtures live in conftest.py (and the simulator's pytest plugin)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import frontoffice_async
from frontoffice_async import FrontOfficeClient, RetryPolicy
from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, Fault, FaultPlan, FrontOfficeSimulator

DATA = Path(__file__).parent / "data"
LIBRARY_DIR = Path(frontoffice_async.__file__).parent
SECOND_ACCOUNT_ID = "685a7eaa360f9e7416221a62"
UNKNOWN_ID = "01K2ZZZZZZZZZZZZZZZZZZZZZZ"
#: The bearer token of the `sim` fixture: a leak of it anywhere can be searched for.
SENTINEL_TOKEN = "tok-SENTINEL-5b2c7e"
#: Retries with backoff too short to matter (the sleeps are injected anyway).
FAST = RetryPolicy(base_delay=0.001, max_delay=0.01)
#: The keys of `BulkCancelResult.as_dict()`: `--json` prints exactly that document.
RESULT_KEYS = {
    "counts",
    "attempts",
    "elapsed",
    "rounds",
    "verified",
    "outcomes",
    "remaining",
    "unreadable",
    "filtered_out",
    "stopped_by",
}

#: What a CLI test calls: `await invoke(*argv)` -> (exit code, stdout, stderr).
Run = Callable[..., Awaitable[tuple[int, str, str]]]


def sample(name: str) -> bytes:
    """The bytes of a sample body from tests/data (copied from shared/api/samples)."""
    return (DATA / name).read_bytes()


class Sleeps:
    """An injected sleep: records each delay and returns at once (no real waiting)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


async def no_sleep(_: float) -> None:
    """Backoff without waiting: retries cost no wall-clock time."""


class FakeClock:
    """A monotonic clock the test moves by hand (`advance`), or that sleeps move."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """A sleep that moves this clock instead of waiting."""
        self.now += seconds
        await asyncio.sleep(0)


#: The keys of a `FlattenResult.as_dict()`.
FLATTEN_KEYS = {"verified", "dry_run", "elapsed", "journal_error", "accounts"}

#: The keys of an `AccountFlatten.as_dict()`.
ACCOUNT_KEYS = {"account_id", "verified", "rounds", "orders", "stop_orders", "positions", "error"}

#: The snapshot settle window of the test session (conftest): long enough for items sent back
#: to back on loopback, short enough that hundreds of snapshots do not each wait 0.5 s.
SHORT_SETTLE = 0.02


def client_for(target: FrontOfficeSimulator | str, **kwargs: Any) -> FrontOfficeClient:
    """A client of a simulator (its URL and token) or of any URL (`SENTINEL_TOKEN`), with the
    default account and instant backoff unless told otherwise."""
    kwargs.setdefault("account_id", DEFAULT_ACCOUNT_ID)
    kwargs.setdefault("sleep", Sleeps())
    if isinstance(target, str):
        return FrontOfficeClient(target, **{"token": SENTINEL_TOKEN, **kwargs})
    token = kwargs.pop("token", target.token)
    return FrontOfficeClient(target.url, token=token, **kwargs)


def script(sim: FrontOfficeSimulator, faults: Sequence[Fault | None], **plan: Any) -> str:
    """A new open order whose n-th cancel request gets `faults[n]` (None: no fault)."""
    [order_id] = sim.add_orders(1)
    sim.faults = FaultPlan(scripts={order_id: list(faults)}, **{"slow_delay": 1.0, **plan})
    return order_id


def cancel_requests(sim: FrontOfficeSimulator) -> Counter[str | None]:
    """How many cancel requests (orders and stop orders) the simulator received, per id."""
    endpoints = {"cancel_order", "cancel_stop_order"}
    return Counter(r.order_id for r in sim.requests if r.endpoint in endpoints)


def library_tasks() -> list[asyncio.Task[Any]]:
    """Unfinished tasks running the library's own code (not its simulator, not the test)."""
    me = asyncio.current_task()
    found = []
    for task in asyncio.all_tasks():
        if task is me or task.done():
            continue
        code = getattr(task.get_coro(), "cr_code", None)
        where = Path(code.co_filename) if code is not None else Path()
        in_library = where.is_relative_to(LIBRARY_DIR)
        in_simulator = where.is_relative_to(LIBRARY_DIR / "testing")
        named = task.get_name().startswith(("frontoffice-bulk", "frontoffice-token"))
        if (in_library and not in_simulator) or named:
            found.append(task)
    return found


async def agen(items: Iterable[Any]) -> AsyncIterator[Any]:
    """`items` as an async generator that yields to the loop between items."""
    for item in items:
        await asyncio.sleep(0)
        yield item


def errors_in(error: BaseException) -> Iterator[BaseException]:
    """`error` and everything reachable from it: causes, contexts, group members."""
    todo, seen = [error], set[int]()
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)


def assert_secret_absent(error: BaseException, *secrets: str) -> None:
    """No secret in anything a user can reach from `error`: str, repr, args, attributes,
    notes and the formatted traceback, along every cause and context."""
    texts = ["".join(traceback.format_exception(error))]
    for item in errors_in(error):
        texts += [str(item), repr(item), repr(item.args), repr(getattr(item, "__notes__", ""))]
        texts += [repr(v) for v in vars(item).values()] if hasattr(item, "__dict__") else []
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"secret leaked: {text[:300]}"


def summary_row(out: str, name: str) -> str:
    """The value of a summary row in plain-text output."""
    for line in out.splitlines():
        if line.strip().startswith(name + "  "):
            return line.strip()[len(name) :].strip()
    raise AssertionError(f"no {name!r} row in:\n{out}")


def send_signal(process: asyncio.subprocess.Process, signum: int) -> None:
    """Signal a child without `Process.send_signal`: before Python 3.13 that polls the child
    first (`waitpid`), which can reap one that is exiting before asyncio's child watcher does,
    and the watcher then reports returncode 255 (CPython gh-87744)."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def frame_locals(error: BaseException, *, ours: bool = False) -> list[tuple[str, str]]:
    """(where, repr) of every local of every frame of `error`'s traceback and of the frames
    that called them: what Sentry or `capture_locals=True` would record (`ours`: only the
    library's frames)."""
    frames, tb = [], error.__traceback__
    while tb is not None:
        frame: Any = tb.tb_frame
        while frame is not None and frame not in frames:
            frames.append(frame)
            frame = frame.f_back
        tb = tb.tb_next
    found = []
    for frame in frames:
        if ours and not frame.f_code.co_filename.startswith(str(LIBRARY_DIR)):
            continue
        for name, value in frame.f_locals.items():
            try:
                text = repr(value)
            except Exception as exc:
                text = type(exc).__name__
            found.append((f"{frame.f_code.co_name}:{name}", text))
    return found
