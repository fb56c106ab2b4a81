"""The `frontoffice` command, run in-process (`cli.run`) against a loopback simulator."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async import RetryPolicy, _cli_output, cli
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator

TOKEN = "tok-CLI-SENTINEL-9f3b7c"
UNKNOWN_ID = "01K2ZZZZZZZZZZZZZZZZZZZZZZ"
ENV_VARS = ("FRONTOFFICE_BASE_URL", "FRONTOFFICE_TOKEN", "FRONTOFFICE_ACCOUNT_ID")

Run = Callable[..., Any]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff of a millisecond, so retry paths cost no real time."""
    monkeypatch.setattr(cli, "_RETRY", RetryPolicy(base_delay=0.001, max_delay=0.002))


@pytest.fixture
async def sim(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FrontOfficeSimulator]:
    """A simulator with a distinctive token, and the environment pointing at it."""
    async with FrontOfficeSimulator(token=TOKEN) as simulator:
        monkeypatch.setenv("FRONTOFFICE_BASE_URL", simulator.url)
        monkeypatch.setenv("FRONTOFFICE_TOKEN", TOKEN)
        monkeypatch.setenv("FRONTOFFICE_ACCOUNT_ID", simulator.account_ids[0])
        yield simulator


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Run:
    """`await invoke(*argv)` -> (exit code, stdout, stderr); the token must appear in neither."""

    async def run(*argv: str) -> tuple[int, str, str]:
        code = await cli.run(list(argv))
        out, err = capsys.readouterr()
        assert TOKEN not in out
        assert TOKEN not in err
        return code, out, err

    return run


class _Terminal(io.StringIO):
    """A stdin that claims to be a terminal, holding the user's typed answer."""

    def isatty(self) -> bool:
        return True


def _row(out: str, name: str) -> str:
    """The value of a summary row in plain-text output."""
    for line in out.splitlines():
        if line.strip().startswith(name + "  "):
            return line.strip()[len(name) :].strip()
    raise AssertionError(f"no {name!r} row in:\n{out}")


# --- cancel --------------------------------------------------------------------------------------


async def test_cancel_ids_prints_summary(sim: FrontOfficeSimulator, invoke: Run) -> None:
    ids = sim.add_orders(3)
    code, out, err = await invoke("cancel", *ids)
    assert code == 0, err
    assert _row(out, "cancelled") == "3"
    assert _row(out, "failed") == "0"
    assert _row(out, "retries") == "0"
    assert "ms" in _row(out, "latency p99")
    assert "req/s" in _row(out, "requests")
    assert sim.open_order_ids() == []


async def test_unknown_id_is_not_found_not_failure(sim: FrontOfficeSimulator, invoke: Run) -> None:
    ids = sim.add_orders(2)
    code, out, _ = await invoke("cancel", "--json", *ids, UNKNOWN_ID)
    assert code == 0
    doc = json.loads(out)
    assert doc["cancelled"] == ids
    assert doc["not_found"] == [UNKNOWN_ID]
    assert doc["failed"] == []
    assert doc["attempts"] == 3
    assert doc["elapsed"] > 0


async def test_failing_id_exits_1_and_is_listed(sim: FrontOfficeSimulator, invoke: Run) -> None:
    good, bad = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={bad: [Fault.server_error()] * 10})
    code, out, _ = await invoke("cancel", good, bad)
    assert code == 1
    assert _row(out, "failed") == "1"
    assert _row(out, "retries") == "3"  # the policy's 4 attempts for the bad id
    assert f"{bad}  ServerError: 500" in out
    assert sim.open_order_ids() == [bad]


async def test_failing_id_in_json(sim: FrontOfficeSimulator, invoke: Run) -> None:
    good, bad = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={bad: [Fault.server_error()] * 10})
    # Global options work after the subcommand as well as before it.
    code, out, _ = await invoke("--json", "cancel", good, bad, "--concurrency", "2")
    assert code == 1
    doc = json.loads(out)
    assert doc["cancelled"] == [good]
    [failed] = doc["failed"]
    assert failed["order_id"] == bad
    assert failed["error"] == "ServerError"
    assert failed["status"] == 500
    assert failed["message"].startswith("500 ")
    assert doc["attempts"] == 5


async def test_ids_from_file(sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path) -> None:
    ids = sim.add_orders(3)
    path = tmp_path / "ids.txt"
    path.write_text(f"# to cancel\n{ids[0]}\n\n  {ids[1]}  # trailing comment\n{ids[2]}\n")
    code, out, _ = await invoke("cancel", "--json", "--from-file", str(path))
    assert code == 0
    assert json.loads(out)["cancelled"] == ids


async def test_ids_from_stdin(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = sim.add_orders(2)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(ids) + "\n"))
    code, out, _ = await invoke("cancel", "--json", "--from-file", "-")
    assert code == 0
    assert json.loads(out)["cancelled"] == ids


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cancel"], "no order ids"),
        (["cancel", "X1", "--from-file", "ids.txt"], "not both"),
        (["cancel", "--from-file", "/nonexistent/ids.txt"], "cannot read ids"),
    ],
)
async def test_cancel_usage_errors(
    sim: FrontOfficeSimulator, invoke: Run, argv: list[str], message: str
) -> None:
    code, out, err = await invoke(*argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: ")
    assert message in err
    assert sim.stats.requests == 0


async def test_invalid_id_is_a_failed_outcome(sim: FrontOfficeSimulator, invoke: Run) -> None:
    code, out, _ = await invoke("cancel", "--json", "..")
    assert code == 1
    assert json.loads(out)["failed"][0]["error"] == "InvalidOrderIdError"
    assert sim.stats.requests == 0


# --- cancel-all ----------------------------------------------------------------------------------


async def test_cancel_all_dry_run_cancels_nothing(sim: FrontOfficeSimulator, invoke: Run) -> None:
    ids = sim.add_orders(3)
    code, out, _ = await invoke("cancel-all", "--dry-run")
    assert code == 0
    assert "dry run: 3 open orders" in out
    assert all(i in out for i in ids)
    code, out, _ = await invoke("cancel-all", "--dry-run", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["dry_run"] is True
    assert sorted(o["order_id"] for o in doc["orders"]) == sorted(ids)
    assert sorted(sim.open_order_ids()) == sorted(ids)


async def test_cancel_all_yes_with_filters(sim: FrontOfficeSimulator, invoke: Run) -> None:
    target = sim.add_orders(3, market_id="spot.btc_usdt", side="Sell")
    other_side = sim.add_orders(2, market_id="spot.btc_usdt", side="Buy")
    other_market = sim.add_orders(2, market_id="spot.eth_usdt", side="Sell")
    other_account = sim.add_orders(
        1, account_id=sim.account_ids[1], market_id="spot.btc_usdt", side="Sell"
    )
    code, out, _ = await invoke(
        "cancel-all", "--yes", "--market", "spot.btc_usdt", "--side", "sell", "--json"
    )
    assert code == 0
    assert sorted(json.loads(out)["cancelled"]) == sorted(target)
    assert sorted(sim.open_order_ids()) == sorted(other_side + other_market + other_account)


async def test_cancel_all_on_another_account(sim: FrontOfficeSimulator, invoke: Run) -> None:
    mine = sim.add_orders(2)
    theirs = sim.add_orders(2, account_id=sim.account_ids[1])
    code, _, _ = await invoke("cancel-all", "-y", "--account-id", sim.account_ids[1])
    assert code == 0
    assert sorted(sim.open_order_ids()) == sorted(mine)
    assert not set(theirs) & set(sim.open_order_ids())


async def test_cancel_all_without_yes_and_no_terminal_refuses(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.add_orders(2)
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))  # piped: not a terminal
    code, out, err = await invoke("cancel-all")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "--yes" in err
    assert sim.stats.requests == 0
    assert len(sim.open_order_ids()) == 2


@pytest.mark.parametrize(("answer", "cancelled"), [("y\n", True), ("no\n", False), ("", False)])
async def test_cancel_all_asks_on_a_terminal(
    sim: FrontOfficeSimulator,
    invoke: Run,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    cancelled: bool,
) -> None:
    sim.add_orders(2)
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    handler = signal.getsignal(signal.SIGINT)
    code, _, err = await invoke("cancel-all")
    assert signal.getsignal(signal.SIGINT) is handler  # the prompt put it back
    assert "cancel 2 open orders on account" in err
    assert code == (0 if cancelled else 2)
    assert len(sim.open_order_ids()) == (0 if cancelled else 2)


async def test_cancel_all_with_nothing_open(sim: FrontOfficeSimulator, invoke: Run) -> None:
    code, out, err = await invoke("cancel-all", "--yes", "--json")
    assert code == 0
    assert json.loads(out)["cancelled"] == []
    assert "nothing to do: 0 open orders" in err


# --- accounts, configuration, errors -------------------------------------------------------------


async def test_accounts_table_and_json(sim: FrontOfficeSimulator, invoke: Run) -> None:
    code, out, _ = await invoke("accounts")
    assert code == 0
    assert all(a in out for a in sim.account_ids)
    code, out, _ = await invoke("accounts", "--json")
    assert code == 0
    assert [a["account_id"] for a in json.loads(out)] == list(sim.account_ids)


@pytest.mark.parametrize("command", [["accounts"], ["cancel", "X1"], ["cancel-all", "--yes"]])
async def test_missing_configuration(
    invoke: Run, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    code, out, err = await invoke(*command)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: missing --base-url (or FRONTOFFICE_BASE_URL), --token")
    assert ("--account-id" in err) == (command[0] != "accounts")


async def test_bad_base_url_is_one_line(sim: FrontOfficeSimulator, invoke: Run) -> None:
    code, _, err = await invoke("accounts", "--base-url", "ftp://example")
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: base_url must be an http(s) URL")


async def test_refused_token_is_one_line_without_it(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "tok-WRONG-SENTINEL-51aa"
    monkeypatch.setenv("FRONTOFFICE_TOKEN", wrong)
    code, out, err = await invoke("accounts")
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("error: 401 ")
    assert wrong not in err


async def test_connection_refused_is_one_line(
    invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("FRONTOFFICE_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("FRONTOFFICE_TOKEN", TOKEN)
    code, _, err = await invoke("accounts")
    assert code == 1
    assert err.count("\n") == 1
    assert err.startswith("error: cannot connect")


async def test_usage_errors_from_argparse(invoke: Run) -> None:
    code, _, err = await invoke("cancel-all", "--side", "up")
    assert code == 2
    assert "invalid choice" in err
    code, out, _ = await invoke("--help")
    assert code == 0
    assert "cancel-all" in out


# --- output details ------------------------------------------------------------------------------


async def test_rich_tables_and_progress_bar(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cli_output, "_use_rich", lambda out: True)
    monkeypatch.setattr(_cli_output, "show_progress", lambda args: True)
    ids = sim.add_orders(3)
    code, out, err = await invoke("cancel", *ids)
    assert code == 0
    assert "│ cancelled" in out
    assert "3/3" in err  # the bar, drawn on stderr


async def test_plain_text_without_rich(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_cli_output, "HAVE_RICH", False)
    monkeypatch.setattr(
        _cli_output, "show_progress", lambda args: True
    )  # asked for, but impossible
    ids = sim.add_orders(2)
    code, out, err = await invoke("cancel", *ids)
    assert code == 0
    assert _row(out, "cancelled") == "2"
    assert err == ""
    code, out, _ = await invoke("accounts")
    assert code == 0
    assert sim.account_ids[0] in out


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 0.5, None),
        ([3.0], 0.99, 3.0),
        ([4.0, 1.0, 3.0, 2.0], 0.5, 2.0),
        ([*range(100)], 0.99, 98),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert _cli_output.percentile(values, q) == expected


# --- interruption, demo, simulate, main ----------------------------------------------------------


async def test_interrupt_prints_what_was_done(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FrontOfficeSimulator(token=TOKEN, latency=0.02) as slow:
        monkeypatch.setenv("FRONTOFFICE_BASE_URL", slow.url)
        monkeypatch.setenv("FRONTOFFICE_TOKEN", TOKEN)
        monkeypatch.setenv("FRONTOFFICE_ACCOUNT_ID", slow.account_ids[0])
        ids = slow.add_orders(40)
        task = asyncio.create_task(cli.run(["cancel", "--json", "--concurrency", "2", *ids]))
        for _ in range(2000):  # until a few ids are done (bounded: the test must not hang)
            if len(slow.open_order_ids()) <= 34:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        out, err = capsys.readouterr()
        open_after = slow.open_order_ids()
    doc = json.loads(out)
    assert doc["interrupted"] is True
    # 6+ cancelled on the server, at most 2 (the concurrency) still waiting for their answer.
    assert len(doc["cancelled"]) >= 4
    assert not set(doc["cancelled"]) & set(open_after)
    assert len(doc["cancelled"]) + len(doc["unfinished"]) == 40
    assert "interrupted:" in err
    assert TOKEN not in out + err


async def test_demo_cancels_everything(invoke: Run) -> None:
    code, out, err = await invoke("demo", "--orders", "200")
    assert code == 0, err
    assert _row(out, "cancelled") == "200"
    assert out.rstrip().endswith("verified: 0 orders left open")


async def test_demo_json(invoke: Run) -> None:
    code, out, _ = await invoke("demo", "--orders", "50", "--fault-rate", "0.3", "--json")
    assert code == 0
    doc = json.loads(out)
    assert len(doc["cancelled"]) == 50
    assert doc["verified"] is True
    assert doc["left_open"] == 0
    assert doc["attempts"] > 50  # faults were retried


async def test_simulate_serves_until_cancelled(capsys: pytest.CaptureFixture[str]) -> None:
    task = asyncio.create_task(cli.run(["simulate", "--port", "0", "--orders", "4", "--json"]))
    seen = ""
    for _ in range(2000):  # until the simulator has printed its environment
        seen += capsys.readouterr().out
        if seen.endswith("}\n") or task.done():
            break
        await asyncio.sleep(0.005)
    info = json.loads(seen)
    env = info["env"]
    assert env["FRONTOFFICE_BASE_URL"] == info["url"]
    assert env["FRONTOFFICE_ACCOUNT_ID"] == info["account_ids"][0]
    # The printed environment is enough to drive the CLI against it.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        assert await cli.run(["cancel-all", "--yes", "--no-progress"]) == 0
    assert "cancelled" in capsys.readouterr().out
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "simulator stopped" in capsys.readouterr().err


def test_main_maps_interrupt_to_130(monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupted(argv: Any) -> int:
        raise asyncio.CancelledError

    monkeypatch.setattr(cli, "run", interrupted)
    assert cli.main(["cancel", "X1"]) == 130


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
