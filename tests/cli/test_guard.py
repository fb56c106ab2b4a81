"""`frontoffice guard` on its own: `--heartbeat-file`, `--token-command`, its usage errors, and
a SIGTERM before it acts. The pipe mode (`client.guard()`) is tested in tests/stop/."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async.testing import FrontOfficeSimulator, RecordedRequest

from ..support import SENTINEL_TOKEN, Run

posix = pytest.mark.skipif(sys.platform == "win32", reason="POSIX")


def cancels(sim: FrontOfficeSimulator) -> list[RecordedRequest]:
    return [r for r in sim.requests if r.method in ("DELETE", "POST")]


def books(sim: FrontOfficeSimulator) -> list[str]:
    return sim.open_order_ids() + sim.open_stop_order_ids() + sim.open_position_ids()


def stop_orders_file(sim: FrontOfficeSimulator, path: Path) -> Path:
    sim.add_orders(10)
    sim.add_positions(2)
    ids = sim.add_stop_orders(2)
    path.write_text("# kept by the bot\n" + "\n".join(ids) + "\n\n")
    return path


async def test_a_heartbeat_file_touched_keeps_it_quiet_and_once_stale_it_flattens(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path
) -> None:
    stops = stop_orders_file(sim, tmp_path / "stops.txt")
    beat, journal = tmp_path / "heartbeat", tmp_path / "guard.jsonl"
    timeout = 0.3
    run = asyncio.ensure_future(
        invoke(
            "guard",
            "--heartbeat-file",
            str(beat),
            "--timeout",
            str(timeout),
            "--stop-orders",
            str(stops),
            "--journal",
            str(journal),
            "--json",
        )
    )
    # The file does not exist yet: the guard's start counts as the first heartbeat.
    for _ in range(int(2 * timeout / 0.05)):
        await asyncio.sleep(0.05)
        touched = time.monotonic()  # before the touch: the guard sees it later, if at all
        beat.touch()
        assert not run.done()
    code, out, err = await asyncio.wait_for(run, timeout + 2.0)
    assert code == 0, err
    assert books(sim) == []
    first = min(r.started_at for r in cancels(sim))
    assert first > touched + timeout
    assert first < touched + timeout + 2.0
    document = json.loads(out)
    assert (document["trigger"], document["verified"]) == ("heartbeat file stale", True)
    run_event = json.loads(journal.read_text().splitlines()[0])
    assert run_event["trigger"] == "heartbeat file stale"
    assert "armed" in err
    assert "has not changed for 0.3 s: flattening account" in err


@posix
async def test_the_token_command_gives_the_token_at_start_and_again_when_it_acts(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRONTOFFICE_TOKEN")
    sim.add_orders(3)
    secret, runs = tmp_path / "token", tmp_path / "runs"
    secret.write_text(sim.token + "\n")
    command = f"sh -c 'echo run >> {runs}; cat {secret}'"
    code, _, err = await invoke(
        "guard", "--heartbeat-file", str(tmp_path / "beat"), "--timeout", "0.2",
        "--token-command", command,
    )  # fmt: skip
    assert code == 0, err
    assert sim.open_order_ids() == []
    assert runs.read_text().split() == ["run", "run"]
    assert {r.token for r in cancels(sim)} == {sim.token}


async def test_a_refused_token_stops_it_before_it_arms(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTOFFICE_TOKEN", "not-the-token")
    sim.add_orders(3)
    code, _, err = await invoke("guard", "--heartbeat-file", str(tmp_path / "beat"))
    assert code == 1
    assert err.startswith("error: 401 ")
    assert "armed" not in err
    assert "not-the-token" not in err
    assert cancels(sim) == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give --heartbeat-file PATH"),
        (["--pipe", "--market", "spot.eth_usdt"], "with --pipe the settings come from the pipe"),
        (["--beat", "--token", "t", "--token-command", "cat t"], "--token or --token-command"),
        (["--beat", "--token-command", "false"], "--token-command: the token command exited"),
        (["--beat", "--token-command", "'"], "--token-command: No closing quotation"),
        (["--beat", "--all-accounts", "--account", "a"], "--account or --all-accounts"),
        (["--beat", "--all-accounts", "--stop-orders", "-"], "exactly one account"),
        (["--beat", "--stop-orders", "/no/such/file"], "cannot read --stop-orders"),
        (["--beat", "--timeout", "0"], "must be a number of seconds > 0"),
        (["--beat", "--rounds", "0"], "must be at least 1"),
        (["--beat", "--pipe"], "not allowed with argument"),
        (["--beat", "--market", ""], "--market must not be empty"),
    ],
)
async def test_usage_errors(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path, argv: list[str], message: str
) -> None:
    argv = [str(tmp_path / "beat") if a == "--beat" else a for a in argv]
    if str(tmp_path / "beat") in argv:
        argv.insert(argv.index(str(tmp_path / "beat")), "--heartbeat-file")
    code, _, err = await invoke("guard", *argv)
    assert code == 2
    assert message in err
    assert sim.requests == []


@posix
async def test_sigterm_before_it_acts_stops_it_without_flattening(
    sim: FrontOfficeSimulator, tmp_path: Path
) -> None:
    sim.add_orders(3)
    env: dict[str, Any] = {**os.environ, "FRONTOFFICE_TOKEN": SENTINEL_TOKEN}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "frontoffice_async",
        "guard",
        "--heartbeat-file",
        str(tmp_path / "beat"),
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        line = await asyncio.wait_for(process.stderr.readline(), 20)
        assert b"armed" in line
        os.kill(process.pid, signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 143
    assert "Traceback" not in err.decode()
    assert cancels(sim) == []
