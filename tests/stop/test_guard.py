"""The guard against a real bot process (tests/stop/_guard_bot.py) and the simulator: killed,
the bot is flattened at once; hung, after the timeout; and the token goes nowhere but the pipe.

Few and quick: each test starts two Pythons (the bot and its guard). The simulator runs in the
test's event loop, so its request log's times are this process's `time.monotonic()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async.testing import FrontOfficeSimulator, RecordedRequest

from ..support import SENTINEL_TOKEN

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX sessions and signals")

BOT = Path(__file__).with_name("_guard_bot.py")
#: Snapshots settle this long in the guard, as in the suite's own clients.
SETTLE = 0.05


class Bot:
    """A bot process under `client.guard()`, and the guard it started."""

    def __init__(self, process: asyncio.subprocess.Process, guard_pid: int) -> None:
        self.process = process
        self.guard_pid = guard_pid

    async def line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout=20)
        assert raw, "the bot ended early"
        parsed: dict[str, Any] = json.loads(raw)
        return parsed


@contextlib.asynccontextmanager
async def bot(sim: FrontOfficeSimulator, **plan: Any) -> AsyncIterator[Bot]:
    """Start the bot (in a session of its own, so that its whole group can be killed) and
    wait until its guard is ready; kill both at the end, whatever happened."""
    plan = {"url": sim.url, "account": sim.account_ids[0], "settle": SETTLE, **plan}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(BOT),
        json.dumps(plan),
        env={**os.environ, "FO_BOT_TOKEN": sim.token, "FRONTOFFICE_TOKEN": sim.token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    guard_pid = None
    try:
        started = Bot(process, 0)
        guard_pid = started.guard_pid = (await started.line())["guard_pid"]
        yield started
    finally:
        for pid in (process.pid, guard_pid):
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await process.communicate()


def books(sim: FrontOfficeSimulator) -> list[str]:
    """Everything still open on the simulator: orders, stop orders, positions."""
    return sim.open_order_ids() + sim.open_stop_order_ids() + sim.open_position_ids()


def scene(sim: FrontOfficeSimulator) -> list[str]:
    """Orders, positions and stop orders to flatten; the stop orders' ids."""
    sim.add_orders(20)
    sim.add_positions(3)
    return sim.add_stop_orders(2)


async def until(condition: Any, seconds: float) -> float:
    """Wait until `condition()` holds (at most `seconds`); the monotonic time it did."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.005)
    return time.monotonic()


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        stat = proc(pid, "stat").decode()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def proc(pid: int, name: str) -> bytes:
    """/proc/PID/NAME (a read of a kernel listing: it does not block)."""
    return Path(f"/proc/{pid}/{name}").read_bytes()


def cancels(sim: FrontOfficeSimulator) -> list[RecordedRequest]:
    return [r for r in sim.requests if r.method in ("DELETE", "POST")]


def journal_of(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    assert SENTINEL_TOKEN not in text
    return [json.loads(line) for line in text.splitlines()]


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
async def test_killing_the_bot_flattens_at_once_and_the_token_only_went_over_the_pipe(
    sim: FrontOfficeSimulator, tmp_path: Path
) -> None:
    stops = scene(sim)
    journal = tmp_path / "guard.jsonl"
    plan = {"timeout": 30.0, "stop_order_ids": stops, "journal": str(journal), "then": "wait"}
    async with bot(sim, **plan) as b:
        guard = b.guard_pid
        # The bot's environment holds the token (twice); the guard's holds it nowhere.
        for listing in ("cmdline", "environ"):
            assert SENTINEL_TOKEN.encode() not in proc(guard, listing)
        assert os.getsid(guard) == guard != os.getsid(b.process.pid)  # a session of its own
        os.killpg(b.process.pid, signal.SIGKILL)  # the bot's whole process group
        killed = time.monotonic()
        flat = await until(lambda: not books(sim), 2.0)
        await until(lambda: gone(guard), 5.0)
        _, err = await b.process.communicate()  # the guard wrote to the bot's stderr
    assert flat - killed < 2.0
    assert min(r.started_at for r in cancels(sim)) - killed < 1.0
    [run, *_, summary] = journal_of(journal)
    assert (run["event"], run["trigger"]) == ("run", "pipe closed")
    assert summary["event"] == "summary"
    assert summary["verified"] is True
    assert SENTINEL_TOKEN not in err.decode()
    assert "pipe closed without a disarm" in err.decode()


async def test_a_blocked_event_loop_is_flattened_after_the_timeout_not_before(
    sim: FrontOfficeSimulator, tmp_path: Path
) -> None:
    stops = scene(sim)
    journal = tmp_path / "guard.jsonl"
    timeout = 0.5
    async with bot(
        sim,
        timeout=timeout,
        stop_order_ids=stops,
        journal=str(journal),
        then="block",
        block=timeout + 0.8,
    ) as b:
        assert await b.line() == {"blocking": True}
        flat = await until(lambda: not books(sim), timeout + 2.0)
        first = min(r.started_at for r in cancels(sim))
        # Woken, the bot finds its guard gone, and why.
        assert await b.line() == {"alive": False, "trigger": "heartbeat missed"}
        await until(lambda: gone(b.guard_pid), 5.0)
        _, err = await b.process.communicate()
    # The bot blocked as soon as its guard was ready (before its first heartbeat), and the
    # guard's clock started then: just after its token check, the one `accounts` request.
    [check] = [r.started_at for r in sim.requests if r.endpoint == "accounts"]
    assert first > check + timeout
    assert flat - check < timeout + 2.0
    assert journal_of(journal)[0]["trigger"] == "heartbeat missed"
    assert "flattening the account: heartbeat missed" in err.decode()  # the bot's warning
    assert b.process.returncode == 0
