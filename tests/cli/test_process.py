"""The `frontoffice` command as a real process: signals, a closed stdout, a light `--help`.

Only what needs a process is here (few and fast); the simulator runs in the test's loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from frontoffice_async.testing import FrontOfficeSimulator

from ..support import SENTINEL_TOKEN as TOKEN
from ..support import send_signal

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

COMMAND = (sys.executable, "-m", "frontoffice_async")
HAVE_DEV_FULL = Path("/dev/full").exists()


@pytest.fixture
async def slow() -> AsyncIterator[FrontOfficeSimulator]:
    """A simulator answering in 20 ms, so that a run can be interrupted half-way."""
    async with FrontOfficeSimulator(token=TOKEN, latency=0.02) as simulator:
        yield simulator


def _env(sim: FrontOfficeSimulator) -> dict[str, str]:
    return {
        **os.environ,
        "FRONTOFFICE_BASE_URL": sim.url,
        "FRONTOFFICE_TOKEN": TOKEN,
        "FRONTOFFICE_ACCOUNT_ID": sim.account_ids[0],
    }


async def _until(condition: object, what: str) -> None:
    for _ in range(2000):  # bounded: a test must not hang
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def _assert_quiet(err: str) -> None:
    assert "Traceback" not in err
    assert "Task was destroyed" not in err
    assert "Exception ignored" not in err
    assert TOKEN not in err


@pytest.mark.parametrize(
    ("command", "gap"),
    [("cancel", 0.0), ("cancel", 0.03), ("cancel-all", 0.015)],
)
async def test_second_ctrl_c_still_ends_with_valid_json(
    slow: FrontOfficeSimulator, command: str, gap: float
) -> None:
    ids = slow.add_orders(200)
    argv = [*ids] if command == "cancel" else ["--yes"]
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        command,
        "--json",
        "--concurrency",
        "2",
        *argv,
        env=_env(slow),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await _until(lambda: len(slow.open_order_ids()) <= 194, "a few cancels")
    send_signal(process, signal.SIGINT)
    await asyncio.sleep(gap)
    send_signal(process, signal.SIGINT)
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    _assert_quiet(err.decode())
    assert process.returncode == 130
    doc = json.loads(out)  # complete, valid JSON
    assert doc["interrupted"] is True
    cancelled = {o["order_id"] for o in doc["outcomes"] if o["category"] == "cancelled"}
    assert len(cancelled) >= 6
    assert not cancelled & set(slow.open_order_ids())


async def test_a_late_sigterm_cannot_kill_the_process_once_it_has_reported(
    slow: FrontOfficeSimulator,
) -> None:
    slow.add_orders(200)
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "cancel-all",
        "--yes",
        "--json",
        "--concurrency",
        "2",
        env=_env(slow),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    await _until(lambda: len(slow.open_order_ids()) <= 196, "a few cancels")
    send_signal(process, signal.SIGINT)
    printed = b""
    line = b""
    while line != b"}\n":  # the end of the interrupted document: reported, now it exits
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert line, "no complete document"
        printed += line
    with contextlib.suppress(ProcessLookupError):
        send_signal(process, signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    _assert_quiet(err.decode())
    assert process.returncode == 130  # the first signal's code, not killed by SIGTERM (-15)
    assert json.loads(printed)["interrupted"] is True


async def test_sigterm_stops_a_bulk_command_like_ctrl_c(slow: FrontOfficeSimulator) -> None:
    ids = slow.add_orders(200)
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "cancel",
        "--json",
        "--concurrency",
        "2",
        *ids,
        env=_env(slow),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await _until(lambda: len(slow.open_order_ids()) <= 196, "a few cancels")
    send_signal(process, signal.SIGTERM)
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    _assert_quiet(err.decode())
    assert process.returncode == 143
    assert json.loads(out)["interrupted"] is True


async def test_flatten_runs_end_to_end_as_a_process(tmp_path: Path) -> None:
    async with FrontOfficeSimulator(token=TOKEN) as sim:
        main, other = sim.account_ids
        for account in (main, other):
            sim.add_orders(20, account_id=account)
            sim.add_positions(3, account_id=account)
        stops = {a: sim.add_stop_orders(2, account_id=a) for a in (main, other)}
        sim.stop_out_on_close(other)
        journal = tmp_path / "flatten.jsonl"
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            "flatten",
            "--all-accounts",
            "--stop-orders",
            "-",
            "--journal",
            str(journal),
            "--yes",
            env=_env(sim),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        lines = "".join(f"{a} {i}\n" for a, ids in stops.items() for i in ids)
        out, err = await asyncio.wait_for(process.communicate(lines.encode()), timeout=60)
        _assert_quiet(err.decode())
        assert process.returncode == 0, err.decode()
        assert sim.open_order_ids() == sim.open_stop_order_ids() == []
        assert sim.open_position_ids() == []
    text = out.decode()
    assert TOKEN not in text
    assert text.count(": verified\n") == 2
    assert text.rstrip().splitlines()[-1].startswith("verified: fresh snapshots show 2 accounts")
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    assert (events[0]["event"], events[-1]["event"]) == ("run", "summary")
    assert TOKEN not in journal.read_text()


async def test_sigterm_stops_a_flatten_with_a_partial_document(slow: FrontOfficeSimulator) -> None:
    slow.add_orders(200)
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "flatten",
        "--yes",
        "--json",
        "--concurrency",
        "2",
        env=_env(slow),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    await _until(lambda: len(slow.open_order_ids()) <= 196, "a few cancels")
    send_signal(process, signal.SIGTERM)
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    _assert_quiet(err.decode())
    assert process.returncode == 143
    doc = json.loads(out)
    assert (doc["interrupted"], doc["verified"], doc["accounts"]) == (True, False, None)
    assert "NOT verified" in err.decode()


async def test_closed_stdout_ends_quietly_with_141() -> None:
    async with FrontOfficeSimulator(token=TOKEN) as sim:
        sim.add_orders(5)
        read_end, write_end = os.pipe()
        os.close(read_end)  # like `| head -1` after its line: nobody reads any more
        try:
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                "cancel-all",
                "--dry-run",
                env=_env(sim),
                stdout=write_end,
                stderr=subprocess.PIPE,
            )
        finally:
            os.close(write_end)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    _assert_quiet(err.decode())
    assert "BrokenPipe" not in err.decode()
    assert process.returncode == 141


@pytest.mark.parametrize("unbuffered", ["1", ""], ids=["PYTHONUNBUFFERED", "buffered"])
@pytest.mark.parametrize("options", [["--json"], []], ids=["json", "plain"])
async def test_a_reader_that_stops_early_gives_141_whatever_the_output(
    unbuffered: str, options: list[str]
) -> None:
    # `| head -c 10`: the reader takes 10 bytes of a document far larger than a pipe holds and
    # goes away. Under PYTHONUNBUFFERED (set by many container images) stdout's text layer
    # writes to the raw file and ignores a short write: the document was cut and the command
    # exited 0, as if its output had been read whole.
    async with FrontOfficeSimulator(token=TOKEN) as sim:
        sim.add_orders(2000)  # about 1.6 MB of JSON, 160 kB of text: more than a pipe holds
        read_end, write_end = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                *COMMAND,
                "cancel-all",
                "--dry-run",
                *options,
                env={**_env(sim), "PYTHONUNBUFFERED": unbuffered},
                stdout=write_end,
                stderr=subprocess.PIPE,
            )
        finally:
            os.close(write_end)
        try:
            loop = asyncio.get_running_loop()
            head = await loop.run_in_executor(None, os.read, read_end, 10)
        finally:
            os.close(read_end)
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert len(head) == 10
    _assert_quiet(err.decode())
    assert err.decode() == ""
    assert process.returncode == 141


@pytest.mark.parametrize("redirect", ["> /dev/full", ">&-"])
async def test_unwritable_stdout_is_one_error_line_and_exit_74(redirect: str) -> None:
    if redirect == "> /dev/full" and not HAVE_DEV_FULL:
        pytest.skip("no /dev/full")
    async with FrontOfficeSimulator(token=TOKEN) as sim:
        sim.add_orders(3)
        process = await asyncio.create_subprocess_exec(
            "/bin/sh",
            "-c",
            f'exec "$@" {redirect}',
            "sh",
            *COMMAND,
            "cancel-all",
            "--dry-run",
            env=_env(sim),
            stderr=subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(process.communicate(), timeout=30)
        requests = sim.stats.requests
    _assert_quiet(err.decode())
    assert process.returncode == 74
    reason = "No space left on device" if "full" in redirect else "stdout is closed"
    assert err.decode() == f"error: cannot write the output: {reason}\n"
    assert (requests == 0) == (redirect == ">&-")  # closed: refused before sending anything


async def _on_a_terminal(
    sim: FrontOfficeSimulator, *argv: str
) -> tuple[asyncio.subprocess.Process, int]:
    """The command with stdin on a pseudo-terminal (whose controller is returned)."""
    controller, terminal = pty.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            *argv,
            env=_env(sim),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(terminal)
    return process, controller


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_at_the_prompt_ends_it_at_once(signum: int) -> None:
    async with FrontOfficeSimulator(token=TOKEN) as sim:
        sim.add_orders(3)
        process, controller = await _on_a_terminal(sim, "cancel-all", "--no-progress")
        try:
            assert process.stderr is not None
            seen = b""
            while b"[y/N]" not in seen:  # asking: blocked reading the terminal
                chunk = await asyncio.wait_for(process.stderr.read(200), timeout=30)
                assert chunk, f"no prompt: {seen!r}"
                seen += chunk
            send_signal(process, signum)
            _, err = await asyncio.wait_for(process.communicate(), timeout=5)  # not at Enter
        finally:
            os.close(controller)
        assert len(sim.open_order_ids()) == 3
    _assert_quiet(err.decode())
    assert process.returncode == 128 + signum
    assert "interrupted before any cancel was sent: nothing was cancelled" in err.decode()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_a_signal_while_reading_ids_from_a_terminal_ends_it_at_once(signum: int) -> None:
    async with FrontOfficeSimulator(token=TOKEN) as sim:
        process, controller = await _on_a_terminal(sim, "cancel", "--json", "--from-file", "-")
        try:
            os.write(controller, b"01K2PF9XS29WN4JZRHMCTTQYJB\n")  # typed, no Ctrl-D yet
            await _until(lambda: _threads(process.pid) >= 2, "the thread reading stdin")
            send_signal(process, signum)
            out, err = await asyncio.wait_for(process.communicate(), timeout=5)
        finally:
            os.close(controller)
        assert sim.stats.requests == 0
    _assert_quiet(err.decode())
    assert process.returncode == 128 + signum
    assert json.loads(out)["interrupted"] is True


def _threads(pid: int) -> int:
    """The process's threads (2 once stdin is read in its thread); 2 where /proc is missing."""
    task = Path(f"/proc/{pid}/task")
    return len(list(task.iterdir())) if task.exists() else 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_simulate_stops_cleanly_on_sigterm_and_ctrl_c(signum: int) -> None:
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "simulate",
        "--port",
        "0",
        "--json",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    printed = b""
    line = b""
    while line != b"}\n":  # the end of the environment document: it is serving
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert line, "simulate ended before printing its environment"
        printed += line
    url = json.loads(printed)["url"]
    send_signal(process, signum)
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    _assert_quiet(err.decode())
    assert process.returncode == 0
    assert "simulator stopped after" in err.decode()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):  # closed: nothing listens there any more
        await asyncio.open_connection(host, int(port))


def test_help_loads_neither_rich_nor_the_simulator() -> None:
    probe = (
        "import contextlib, io, sys\n"
        "import frontoffice_async\n"
        "before = set(sys.modules)\n"
        "from frontoffice_async import cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert cli.main(['--help']) == 0\n"
        "    assert cli.main(['simulate', '--help']) == 0\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    done = subprocess.run(  # noqa: S603 - this interpreter, this code
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.split()
    heavy = [m for m in loaded if m.split(".")[0] == "rich" or ".testing" in m or "aiohttp" in m]
    assert heavy == []


def test_python_dash_m_help() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "frontoffice_async", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert "cancel-all" in done.stdout
    assert done.stderr == ""


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
@pytest.mark.parametrize("source", ["file", "stdin"])
async def test_ids_from_dev_zero_are_a_usage_error_not_a_memory_error(source: str) -> None:
    # Under a 1 GiB address-space limit, so that reading without bound fails fast (with a
    # MemoryError traceback) instead of eating the machine's memory.
    def limit_memory() -> None:
        import resource  # noqa: PLC0415 - POSIX only, in the child

        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    with Path("/dev/zero").open("rb") as zeros:  # noqa: ASYNC230 - opening it does not block
        process = await asyncio.create_subprocess_exec(
            *COMMAND,
            "cancel",
            "--from-file",
            "/dev/zero" if source == "file" else "-",
            env={
                **os.environ,
                "FRONTOFFICE_BASE_URL": "http://127.0.0.1:9",  # never reached
                "FRONTOFFICE_TOKEN": TOKEN,
                "FRONTOFFICE_ACCOUNT_ID": "685a7eaa360f9e7416221a61",
            },
            stdin=zeros if source == "stdin" else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=limit_memory,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    _assert_quiet(err.decode())
    assert out == b""
    assert err.decode().startswith("error: cannot read ids from ")
    assert "line 1 is longer than 1024 bytes" in err.decode()
    assert process.returncode == 2
