"""The `frontoffice` command, run in-process (`cli.run`) against a loopback simulator."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async import (
    BulkCancelResult,
    CancelOutcome,
    Order,
    OrderNotActiveError,
    cli,
)
from frontoffice_async.cli import common, output, progress
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator

from ..support import RESULT_KEYS, SENTINEL_TOKEN, UNKNOWN_ID, Run, summary_row

TOKEN = SENTINEL_TOKEN
ENV_VARS = ("FRONTOFFICE_BASE_URL", "FRONTOFFICE_TOKEN", "FRONTOFFICE_ACCOUNT_ID")
CONFLICT = Fault.response(409, b'{"title":"Conflict","status":409}')

pytestmark = pytest.mark.usefixtures("fast_retries")


class _Terminal(io.StringIO):
    """A stdin that claims to be a terminal, holding the user's typed answer."""

    def isatty(self) -> bool:
        return True


def _ids(doc: dict[str, Any], category: str) -> list[str]:
    return [o["order_id"] for o in doc["outcomes"] if o["category"] == category]


# --- cancel --------------------------------------------------------------------------------------


async def test_cancel_ids_prints_summary(sim: FrontOfficeSimulator, invoke: Run) -> None:
    ids = sim.add_orders(3)
    code, out, err = await invoke("cancel", *ids)
    assert code == 0, err
    assert summary_row(out, "cancelled") == "3"
    assert summary_row(out, "failed") == "0"
    assert summary_row(out, "retries") == "0"
    assert "ms" in summary_row(out, "latency p99")
    assert "req/s" in summary_row(out, "requests")
    assert "rounds" not in out  # a cancel by id has no rounds to verify
    assert sim.open_order_ids() == []


async def test_json_is_the_results_as_dict(sim: FrontOfficeSimulator, invoke: Run) -> None:
    ids = sim.add_orders(2)
    code, out, _ = await invoke("cancel", "--json", *ids, UNKNOWN_ID)
    assert code == 0  # not found is not a failure
    doc = json.loads(out)
    assert set(doc) == RESULT_KEYS
    assert doc["counts"] == {"cancelled": 2, "not_found": 1, "not_active": 0, "failed": 0}
    assert _ids(doc, "cancelled") == ids
    assert _ids(doc, "not_found") == [UNKNOWN_ID]
    assert doc["outcomes"][0]["order"]["status"] == "Cancelled"
    assert doc["attempts"] == 3
    assert doc["elapsed"] > 0


async def test_already_cancelled_id_is_not_active_and_exits_0(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    [done] = sim.add_orders(1, status="Cancelled")
    code, out, err = await invoke("cancel", done)
    assert code == 0, err
    assert summary_row(out, "not active") == "1"
    assert summary_row(out, "failed") == "0"
    code, out, _ = await invoke("cancel", "--json", done)
    assert code == 0
    [outcome] = json.loads(out)["outcomes"]
    assert outcome["category"] == "not_active"
    assert outcome["error"]["type"] == "OrderNotActiveError"


async def test_failing_id_exits_1_and_is_listed(sim: FrontOfficeSimulator, invoke: Run) -> None:
    good, bad = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={bad: [Fault.server_error()] * 10})
    code, out, _ = await invoke("cancel", good, bad)
    assert code == 1
    assert summary_row(out, "failed") == "1"
    assert summary_row(out, "retries") == "3"  # the policy's 4 attempts for the bad id
    assert f"{bad}  ServerError: 500" in out
    assert sim.open_order_ids() == [bad]


async def test_failing_id_in_json(sim: FrontOfficeSimulator, invoke: Run) -> None:
    good, bad = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={bad: [Fault.server_error()] * 10})
    # Common options work after the command as well as before it.
    code, out, _ = await invoke("--json", "cancel", good, bad, "--concurrency", "2")
    assert code == 1
    doc = json.loads(out)
    assert _ids(doc, "cancelled") == [good]
    [failed] = [o for o in doc["outcomes"] if o["category"] == "failed"]
    assert failed["order_id"] == bad
    assert failed["attempts"] == 4
    assert failed["error"]["type"] == "ServerError"
    assert failed["error"]["status"] == 500
    assert doc["attempts"] == 5


async def test_ids_from_file(sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path) -> None:
    ids = sim.add_orders(3)
    path = tmp_path / "ids.txt"
    path.write_text(f"# to cancel\n{ids[0]}\n\n  {ids[1]}  # trailing comment\n{ids[2]}\n")
    code, out, _ = await invoke("cancel", "--json", "--from-file", str(path))
    assert code == 0
    assert _ids(json.loads(out), "cancelled") == ids


async def test_ids_from_stdin(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = sim.add_orders(2)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(ids) + "\n"))
    code, out, _ = await invoke("cancel", "--json", "--from-file", "-")
    assert code == 0
    assert _ids(json.loads(out), "cancelled") == ids


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
    assert json.loads(out)["outcomes"][0]["error"]["type"] == "InvalidOrderIdError"
    assert sim.stats.requests == 0


# --- cancel-all ----------------------------------------------------------------------------------


async def test_cancel_all_verified_in_one_round(sim: FrontOfficeSimulator, invoke: Run) -> None:
    sim.add_orders(3)
    code, out, err = await invoke("cancel-all", "--yes")
    assert code == 0, err
    assert summary_row(out, "cancelled") == "3"
    assert summary_row(out, "rounds") == "1"
    assert summary_row(out, "verified") == "yes"
    assert out.rstrip().endswith(
        "verified: a fresh snapshot shows no matching open order (1 round)"
    )
    assert sim.open_order_ids() == []


async def test_cancel_all_dry_run_cancels_nothing(sim: FrontOfficeSimulator, invoke: Run) -> None:
    ids = sim.add_orders(3)
    code, out, _ = await invoke("cancel-all", "--dry-run")
    assert code == 0
    assert "dry run: would cancel 3 open orders" in out
    assert all(i in out for i in ids)
    code, out, _ = await invoke("cancel-all", "--dry-run", "--json")
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == RESULT_KEYS
    assert doc["rounds"] == 0
    assert doc["outcomes"] == []
    assert sorted(o["order_id"] for o in doc["remaining"]) == sorted(ids)
    assert sorted(sim.open_order_ids()) == sorted(ids)


@pytest.mark.parametrize("side", ["sell", "SELL", "Sell"])
async def test_cancel_all_with_filters(sim: FrontOfficeSimulator, invoke: Run, side: str) -> None:
    target = sim.add_orders(3, market_id="spot.btc_usdt", side="Sell")
    other_side = sim.add_orders(2, market_id="spot.btc_usdt", side="Buy")
    other_market = sim.add_orders(2, market_id="spot.eth_usdt", side="Sell")
    other_account = sim.add_orders(
        1, account_id=sim.account_ids[1], market_id="spot.btc_usdt", side="Sell"
    )
    code, out, _ = await invoke(
        "cancel-all", "--yes", "--market", "spot.btc_usdt", "--side", side, "--json"
    )
    assert code == 0
    doc = json.loads(out)
    assert sorted(_ids(doc, "cancelled")) == sorted(target)
    assert doc["verified"] is True
    assert doc["filtered_out"] == {"spot.btc_usdt": 2, "spot.eth_usdt": 2}
    assert sorted(sim.open_order_ids()) == sorted(other_side + other_market + other_account)


async def test_cancel_all_bad_side_is_a_usage_error(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    sim.add_orders(1)
    code, out, err = await invoke("cancel-all", "--yes", "--side", "up")
    assert code == 2
    assert out == ""
    assert err.startswith("error: side must be one of")
    assert sim.stats.requests == 0  # the library refused it before any request


async def test_mistyped_market_warns_with_the_markets_that_have_orders(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    sim.add_orders(2, market_id="spot.eth_usdt")
    sim.add_orders(1, market_id="spot.btc_usdt")
    code, out, err = await invoke("cancel-all", "--yes", "--market", "spot.eth_usd")
    assert code == 0  # nothing matched, nothing is left: verified, but the human is warned
    assert out.startswith("nothing to cancel: no open order (market spot.eth_usd) on account")
    assert "warning: no open order" in err
    assert "spot.btc_usdt (1), spot.eth_usdt (2)" in err
    code, _, err = await invoke("cancel-all", "--dry-run", "--json", "--market", "nope")
    assert code == 0
    assert "spot.btc_usdt (1), spot.eth_usdt (2)" in err
    assert len(sim.open_order_ids()) == 3


async def test_order_filled_between_snapshot_and_cancel_is_not_active(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep, filled = sim.add_orders(2)
    # The platform answers the cancel with 400 because the order has just filled: the
    # scripted answer is what it sends, and the order is final from that moment on.
    body = b'{"title":"Bad Request","status":400,"detail":"Order cannot be cancelled."}'
    sim.faults = FaultPlan(scripts={filled: [Fault.response(400, body)]})
    on_outcome = common.BulkRun.on_outcome

    def fill_then_record(run: common.BulkRun, outcome: CancelOutcome[Order]) -> None:
        if outcome.order_id == filled:
            sim.update_order(filled, status="Completed")
        on_outcome(run, outcome)

    monkeypatch.setattr(common.BulkRun, "on_outcome", fill_then_record)
    code, out, err = await invoke("cancel-all", "--yes", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["counts"] == {"cancelled": 1, "not_found": 0, "not_active": 1, "failed": 0}
    assert _ids(doc, "not_active") == [filled]
    assert _ids(doc, "cancelled") == [keep]
    assert doc["verified"] is True
    assert doc["rounds"] == 1


async def test_order_still_open_after_every_round_exits_1(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    _, busy = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={busy: [CONFLICT] * 10})
    code, out, _ = await invoke("cancel-all", "--yes")
    assert code == 1
    assert summary_row(out, "rounds") == "3"
    assert summary_row(out, "verified") == "NO"
    assert "still open (1)" in out
    assert f"{busy}  ConflictError" in out
    assert out.rstrip().endswith("NOT verified after 3 rounds: 1 still open")
    assert len(sim.requests_for(busy)) == 3  # one 409 per round, none retried within one
    code, out, _ = await invoke("cancel-all", "--yes", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["verified"] is False
    assert [o["order_id"] for o in doc["remaining"]] == [busy]
    assert sim.open_order_ids() == [busy]


async def test_busy_order_is_cancelled_by_the_second_round(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    _, busy = sim.add_orders(2)
    sim.faults = FaultPlan(scripts={busy: [CONFLICT]})
    code, out, _ = await invoke("cancel-all", "--yes", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["rounds"] == 2
    assert doc["verified"] is True
    assert doc["counts"]["cancelled"] == 2


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
    assert ("error: not confirmed" in err) != cancelled
    assert len(sim.open_order_ids()) == (0 if cancelled else 2)


async def test_cancel_all_with_nothing_open(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = await invoke("cancel-all", "--yes", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["outcomes"] == []
    assert doc["verified"] is True
    assert err == f"nothing to cancel: no open order on account {sim.account_ids[0]}\n"
    # Asked on a terminal: nothing to confirm, so no question, and still verified.
    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    code, out, err = await invoke("cancel-all", "--json")
    assert code == 0
    assert "[y/N]" not in err
    assert json.loads(out)["verified"] is True


def _not_active(order_id: str) -> OrderNotActiveError:
    return OrderNotActiveError(
        "400", order_id=order_id, status=400, method="DELETE", url="http://x/orders"
    )


def test_exit_code_follows_the_categories() -> None:
    not_active = CancelOutcome[Order]("A", error=_not_active("A"), attempts=1)
    assert common.exit_code(BulkCancelResult([not_active]), verify=False) == 0
    unverified = BulkCancelResult([not_active], unreadable=['{"orderId": 7}'], rounds=3)
    assert common.exit_code(unverified, verify=True) == 1
    out = io.StringIO()
    output.print_result(unverified, verify=True, out=out)
    assert 'unreadable records in the last snapshot (1):\n  {"orderId": 7}' in out.getvalue()
    assert "NOT verified after 3 rounds: 0 still open, 1 unreadable" in out.getvalue()


def test_bulk_run_keeps_one_outcome_per_id_as_the_library_does() -> None:
    run = common.BulkRun(clock=iter(range(100)).__next__)
    ids = list(run.feed(["A", "B"]))
    cancelled = CancelOutcome[Order]("A", attempts=1, order=object())  # type: ignore[arg-type]
    late = CancelOutcome[Order]("A", attempts=1, error=_not_active("A"))
    for outcome in (CancelOutcome[Order]("B", attempts=2), cancelled, late):
        run.on_outcome(outcome)
    partial = run.partial()
    assert [o.order_id for o in partial] == ids  # input order, whatever the arrival order
    assert partial[0] is cancelled  # a later round's "not active" does not undo "cancelled"
    assert run.latencies == [1, 3, 4]  # B sent at 2, done at 3; A sent at 1, done at 4, 5


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


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--concurrency", "3"],
        ["--timeout", "3", "simulate"],
        ["--base-url", "http://x", "demo"],
        ["--no-progress", "accounts"],
    ],
)
async def test_options_that_do_not_apply_are_refused(invoke: Run, argv: list[str]) -> None:
    code, out, err = await invoke(*argv)
    assert code == 2
    assert out == ""
    assert err.startswith(("error: --", "usage: "))


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


async def test_help(invoke: Run) -> None:
    code, out, _ = await invoke("--help")
    assert code == 0
    assert "cancel-all" in out
    code, out, _ = await invoke("simulate", "--help")
    assert code == 0
    assert "(default: 8765)" in out
    assert "(default: 100)" in out
    for unrelated in ("--concurrency", "--timeout", "--no-progress", "--token"):
        assert unrelated not in out


# --- output details ------------------------------------------------------------------------------


async def test_control_characters_are_escaped(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.add_orders(1, market_id="spot.\x1b[31mevil\r")
    code, out, _ = await invoke("cancel-all", "--dry-run")
    assert code == 0
    assert "spot.\\x1b[31mevil\\r" in out
    assert "\x1b" not in out
    assert "\r" not in out
    code, out, err = await invoke("cancel-all", "--yes", "--market", "x\u202ey")
    assert "\\x1b" in err  # the warning names the markets that have orders, escaped
    assert "\x1b" not in err
    assert out == "nothing to cancel: no open order (market x\\u202ey) on account " + (
        f"{sim.account_ids[0]}\n"
    )
    code, out, _ = await invoke("cancel", "evil\x1b]0;title\x07")
    assert code == 1  # not a valid id: a failed outcome, listed with its id
    assert "evil\\x1b]0;title\\x07" in out
    assert "\x1b" not in out
    monkeypatch.setattr(output, "_use_rich", lambda out: True)
    code, out, _ = await invoke("cancel-all", "--dry-run")
    assert "\x1b[31mevil" not in out


def test_printable() -> None:
    assert output.printable("plain id-01 ü €") == "plain id-01 ü €"
    assert output.printable("a\tb\r\nc\x00\x7f\x9b") == "a\\tb\\r\\nc\\x00\\x7f\\x9b"
    assert output.printable("\u200b\U000e0001") == "\\u200b\\U000e0001"


async def test_rich_tables_and_progress_bar(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "_use_rich", lambda out: True)
    monkeypatch.setattr(progress, "show_progress", lambda args: True)
    ids = sim.add_orders(3)
    code, out, err = await invoke("cancel", *ids)
    assert code == 0
    assert "│ cancelled" in out
    assert "3/3" in err  # the bar, drawn on stderr
    sim.add_orders(2)
    code, out, err = await invoke("cancel-all", "--yes")
    assert code == 0
    assert "│ verified" in out
    assert "2/?" in err  # cancel-all with --yes: the total is not known in advance


async def test_plain_text_without_rich(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(output, "HAVE_RICH", False)
    # Asked for, but impossible.
    monkeypatch.setattr(progress, "show_progress", lambda args: True)
    ids = sim.add_orders(2)
    code, out, err = await invoke("cancel", *ids)
    assert code == 0
    assert summary_row(out, "cancelled") == "2"
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
    assert output.percentile(values, q) == expected


# --- interruption, main --------------------------------------------------------------------------


@pytest.fixture
async def slow(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FrontOfficeSimulator]:
    """A simulator that answers in 20 ms, so that a run can be interrupted half-way."""
    async with FrontOfficeSimulator(token=TOKEN, latency=0.02) as simulator:
        monkeypatch.setenv("FRONTOFFICE_BASE_URL", simulator.url)
        monkeypatch.setenv("FRONTOFFICE_TOKEN", TOKEN)
        monkeypatch.setenv("FRONTOFFICE_ACCOUNT_ID", simulator.account_ids[0])
        yield simulator


async def _interrupt_after(sim: FrontOfficeSimulator, total: int, argv: list[str]) -> None:
    task = asyncio.create_task(cli.run(argv))
    for _ in range(2000):  # until a few ids are done (bounded: the test must not hang)
        if len(sim.open_order_ids()) <= total - 6:
            break
        await asyncio.sleep(0.005)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_interrupted_cancel_prints_what_was_done(
    slow: FrontOfficeSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = slow.add_orders(40)
    await _interrupt_after(slow, 40, ["cancel", "--json", "--concurrency", "2", *ids])
    out, err = capsys.readouterr()
    open_after = slow.open_order_ids()
    doc = json.loads(out)
    assert doc["interrupted"] is True
    assert set(doc) == {*RESULT_KEYS, "interrupted", "unfinished"}
    cancelled = _ids(doc, "cancelled")
    assert len(cancelled) >= 4
    assert not set(cancelled) & set(open_after)
    assert len(doc["outcomes"]) + len(doc["unfinished"]) == 40
    assert doc["verified"] is False
    assert "interrupted:" in err
    assert TOKEN not in out + err


async def test_interrupted_cancel_all_prints_what_was_done(
    slow: FrontOfficeSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    slow.add_orders(40)
    await _interrupt_after(slow, 40, ["cancel-all", "--yes", "--json", "--concurrency", "2"])
    out, _ = capsys.readouterr()
    doc = json.loads(out)
    assert doc["interrupted"] is True
    assert doc["rounds"] is None  # not known from the outcomes alone
    assert doc["remaining"] is None  # no snapshot verified the account: not known
    assert doc["verified"] is False
    assert doc["counts"]["cancelled"] >= 4
    assert not set(_ids(doc, "cancelled")) & set(slow.open_order_ids())


def test_main_maps_interrupt_to_130(monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupted(argv: Any) -> int:
        raise asyncio.CancelledError

    monkeypatch.setattr(cli, "run", interrupted)
    assert cli.main(["cancel", "X1"]) == 130
