"""The `frontoffice` command at its edges (an adversarial review's findings), run in-process:
empty options, failures after some cancels, JSON on every failure, an unwritable stdout."""

from __future__ import annotations

import argparse
import asyncio
import errno
import io
import json
import signal
import subprocess
import sys
import threading
from typing import Any

import pytest

from frontoffice_async import cli
from frontoffice_async.cli import common, output, process
from frontoffice_async.testing import FaultPlan, FrontOfficeSimulator, HubFault

from ..support import RESULT_KEYS, Run, summary_row

#: The first hub connection works (the first snapshot), every later one is refused.
HUB_GOES_DOWN = FaultPlan(hub=[None] + [HubFault.refuse(503)] * 50)

pytestmark = pytest.mark.usefixtures("fast_retries")


# --- empty options ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["cancel-all", "--yes", "--market", ""],
        ["cancel-all", "--yes", "--side", " "],
        ["cancel-all", "--dry-run", "--market", ""],
        ["cancel-all", "--yes", "--account-id", ""],
        ["cancel", "--from-file", ""],
        ["accounts", "--token", ""],
    ],
)
async def test_an_empty_option_is_a_usage_error(
    sim: FrontOfficeSimulator, invoke: Run, argv: list[str]
) -> None:
    sim.add_orders(3)
    code, out, err = await invoke(*argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: --")
    assert "must not be empty" in err
    assert sim.stats.requests == 0
    assert len(sim.open_order_ids()) == 3


def test_describe_selection_tests_for_a_filter_not_its_truth() -> None:
    assert output.describe_selection(0, "A", None, None) == "no open order on account A"
    text = output.describe_selection(1, "A", "spot.x", "sell")
    assert text == "1 open order (market spot.x, sell) on account A"


# --- a call that fails after some cancels -------------------------------------------------------


async def test_cancel_all_failing_after_its_cancels_reports_them(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    ids = sim.add_orders(5)
    sim.faults = HUB_GOES_DOWN  # the verifying snapshot cannot be taken
    code, out, err = await invoke("cancel-all", "--yes", "--json")
    assert code == 1
    doc = json.loads(out)
    assert set(doc) == {*RESULT_KEYS, "error"}
    assert sorted(o["order_id"] for o in doc["outcomes"]) == sorted(ids)
    assert doc["counts"]["cancelled"] == 5
    assert doc["verified"] is False
    assert doc["rounds"] is None
    assert doc["remaining"] is None  # no snapshot verified it: not known, not "none"
    assert doc["error"]["type"] == "ServerError"
    assert doc["error"]["status"] == 503
    assert err.splitlines()[-1].startswith("error: 503")
    assert "stopped by an error: 5 orders dealt with, NOT verified" in err

    sim.add_orders(2)
    sim.faults = HUB_GOES_DOWN
    code, out, err = await invoke("cancel-all", "--yes", "--no-progress")
    assert code == 1
    assert summary_row(out, "cancelled") == "2"
    assert "verified: a fresh snapshot" not in out
    assert err.splitlines()[-1].startswith("error: 503")


async def test_a_failure_before_any_outcome_is_a_json_error_document(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    sim.add_orders(2)
    sim.faults = FaultPlan(hub=[HubFault.refuse(503)] * 50)
    code, out, err = await invoke("cancel-all", "--yes", "--json")
    assert code == 1
    doc = json.loads(out)
    assert set(doc) == {"error"}
    assert set(doc["error"]) == {"type", "status", "message", "trace_id", "order_id"}
    assert (doc["error"]["type"], doc["error"]["status"]) == ("ServerError", 503)
    assert err.count("\n") == 1
    assert err.startswith("error: 503")
    assert len(sim.open_order_ids()) == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["cancel", "--json"],
        ["--json", "cancel-all", "--yes", "--side", "up"],
        ["demo", "--json", "--orders", "x"],
    ],
)
async def test_a_usage_error_with_json_is_a_json_error_document(
    sim: FrontOfficeSimulator, invoke: Run, argv: list[str]
) -> None:
    code, out, err = await invoke(*argv)
    assert code == 2
    doc = json.loads(out)
    assert set(doc) == {"error"}
    assert doc["error"]["message"] in err
    assert err.splitlines()[-1].startswith("error: ")


def test_a_bad_number_says_so() -> None:
    assert common.non_negative_int("7") == 7
    with pytest.raises(argparse.ArgumentTypeError, match="not an integer: 'x'"):
        common.non_negative_int("x")


# --- an unwritable stdout -----------------------------------------------------------------------


class _Full(io.StringIO):
    """A stdout on a full disk."""

    def write(self, text: str) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


async def test_a_closed_stdout_sends_nothing_and_exits_74(
    sim: FrontOfficeSimulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = sim.add_orders(2)
    monkeypatch.setattr(sys, "stdout", None)
    assert await cli.run(["cancel", *ids]) == process.EXIT_OUTPUT
    assert capsys.readouterr().err == "error: cannot write the output: stdout is closed\n"
    assert sim.stats.requests == 0


@pytest.mark.parametrize("argv", [["cancel-all", "--dry-run"], ["cancel-all", "--yes", "--json"]])
async def test_a_failed_write_is_one_line_and_exits_74(
    sim: FrontOfficeSimulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    sim.add_orders(2)
    monkeypatch.setattr(sys, "stdout", _Full())
    assert await cli.run(argv) == process.EXIT_OUTPUT
    err = capsys.readouterr().err
    assert err.endswith("error: cannot write the output: No space left on device\n")
    assert "Traceback" not in err


# --- interrupted --------------------------------------------------------------------------------


async def test_demo_interrupted_during_its_setup_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = asyncio.create_task(cli.run(["demo", "--orders", "100000", "--json"]))
    await asyncio.sleep(0.05)  # the setup takes seconds; orders are made a chunk at a time
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, timeout=10)
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["interrupted"] is True
    assert doc["verified"] is False
    assert doc["flatten"] is None  # nothing was flattened
    assert "interrupted during the setup" in err
    assert "nothing was cancelled" in err


async def test_in_thread_is_cancelled_at_once_while_the_read_blocks() -> None:
    release = threading.Event()
    read = asyncio.ensure_future(process.in_thread(lambda: release.wait(10)))
    await asyncio.sleep(0.02)
    read.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(read, timeout=1)
    release.set()  # let the thread end
    assert await process.in_thread(lambda: 42) == 42
    with pytest.raises(OSError, match="gone"):
        await process.in_thread(_raise_gone)


def _raise_gone() -> Any:
    raise OSError("gone")


def test_main_ends_quietly_on_a_very_early_interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: Any, **kwargs: Any) -> int:
        raise KeyboardInterrupt  # Ctrl-C before the loop handles signals

    monkeypatch.setattr(process, "run_main", interrupted)
    assert cli.main(["cancel", "X1"]) == 130


def test_main_in_a_program_gives_back_its_signal_handlers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def mine(signum: int, frame: object) -> None:
        raise AssertionError("not expected to run")

    previous = {s: signal.signal(s, mine) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        # A usage error found inside the event loop, which had its own handlers meanwhile.
        assert cli.main(["cancel", "X1", "--base-url", "http://127.0.0.1:9", "--token", ""]) == 2
        assert signal.getsignal(signal.SIGINT) is mine
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()  # nothing left blocked
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    capsys.readouterr()


def test_the_cli_module_imports_next_to_nothing() -> None:
    probe = (
        "import sys\n"
        "import frontoffice_async\n"
        "before = set(sys.modules)\n"
        "import frontoffice_async.cli\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, this code
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["frontoffice_async.cli"]
