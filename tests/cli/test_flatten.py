"""`frontoffice flatten`, run in-process against the simulator: accounts, stop orders (a file,
stdin), positions, faults; the dry run, the prompt, --json, --journal, exit codes."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async import FrontOfficeClient, cli
from frontoffice_async.cli import idfile, output
from frontoffice_async.testing import Fault, FaultKind, FaultPlan, FrontOfficeSimulator

from ..support import ACCOUNT_KEYS, FLATTEN_KEYS, RESULT_KEYS, SENTINEL_TOKEN, Run
from .test_output import CLI_DOCS, _console_examples

pytestmark = pytest.mark.usefixtures("fast_retries")

SENT = {"cancel_order", "cancel_stop_order", "close_all_positions", "close_position"}
POSITIONS_KEYS = {
    "accepted",
    "remaining",
    "unreadable",
    "errors",
    "requests",
    "rounds",
    "checked",
    "verified",
}


class _Terminal(io.StringIO):
    """A stdin that claims to be a terminal, holding the user's typed answer."""

    def isatty(self) -> bool:
        return True


def _fits(out: str, width: int = 80) -> None:
    too_wide = [line for line in out.splitlines() if len(line) > width]
    assert not too_wide, "\n".join(too_wide)


def _sent(sim: FrontOfficeSimulator) -> list[str]:
    """The endpoints of the requests that change something (cancels and closes)."""
    return [r.endpoint for r in sim.requests if r.endpoint in SENT]


def _stop_file(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "stops.txt"
    path.write_text("".join(f"{line}\n" for line in lines))
    return str(path)


def _books(sim: FrontOfficeSimulator) -> tuple[list[str], list[str], list[str]]:
    return sim.open_order_ids(), sim.open_stop_order_ids(), sim.open_position_ids()


# --- a run --------------------------------------------------------------------------------------


@pytest.mark.parametrize("rich", [False, True], ids=["plain", "rich"])
async def test_two_accounts_are_flattened_and_verified(
    sim: FrontOfficeSimulator,
    invoke: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rich: bool,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(output, "_use_rich", lambda out: rich)
    main, other = sim.account_ids
    for account in (main, other):
        sim.add_orders(5, account_id=account)
        sim.add_positions(2, account_id=account)
        sim.add_positions(1, account_id=account, market_id="perp.eth_usdt")
    stops = {a: sim.add_stop_orders(2, account_id=a) for a in (main, other)}
    sim.stop_out_on_close(main, count=2)  # orders appear when its positions close
    path = _stop_file(
        tmp_path, ["# account, stop order", *(f"{a} {i}" for a in stops for i in stops[a])]
    )
    code, out, err = await invoke("flatten", "--all-accounts", "--stop-orders", path, "--yes")
    assert code == 0, err
    assert _books(sim) == ([], [], [])
    _fits(out)
    assert f"account {main}: verified" in out
    assert f"account {other}: verified" in out
    assert "7 cancelled" in out  # main: 5 orders and the stop-out's 2
    assert (
        out.rstrip().splitlines()[-1].startswith("verified: fresh snapshots show 2 accounts flat")
    )
    assert err == ""


async def test_stop_orders_from_stdin_for_the_configured_account(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    stops = sim.add_stop_orders(3)
    theirs = sim.add_stop_orders(1, account_id=sim.account_ids[1])
    sim.add_positions(1)
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(stops) + "\n# done\n"))
    code, out, err = await invoke("flatten", "--stop-orders", "-", "--yes", "--json")
    assert code == 0, err
    doc = json.loads(out)
    [account] = doc["accounts"].values()
    assert account["account_id"] == sim.account_ids[0]
    assert account["stop_orders"]["counts"]["cancelled"] == 3
    assert sim.open_stop_order_ids() == theirs  # the other account's stays: not asked
    assert sim.open_position_ids() == []


async def test_a_position_that_never_closes_is_named_and_exits_1(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    stuck, closes = sim.add_positions(2, market_id="cfd.btc_usd")
    sim.add_orders(2)
    # Every close of that position is answered 200 and never carried out.
    sim.faults = FaultPlan(scripts={stuck: [Fault.not_applied()] * 10})
    code, out, err = await invoke("flatten", "--market", "cfd.btc_usd", "--yes", "--rounds", "2")
    assert code == 1
    assert sim.open_position_ids() == [stuck]
    assert closes not in out  # closed: not listed
    assert [line for line in out.splitlines() if stuck in line] != []
    assert "NOT verified: 1 position still open" in out
    assert "positions still open (1)" in out
    assert " ".join(out.split()).endswith(  # the verdict, wrapped to 80 columns
        f"NOT verified: account {sim.account_ids[0]} may not be flat on market cfd.btc_usd"
    )
    _fits(out)
    assert err == ""
    # Two rounds, two closes of it: a POST is sent again only by the next round.
    assert len(sim.requests_for(stuck)) == 2


async def test_a_bulk_close_never_carried_out_leaves_positions_named_in_json(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    positions = sim.add_positions(3)
    sim.faults = FaultPlan(
        rates={FaultKind.NOT_APPLIED: 1.0}, endpoints={"close_all_positions"}, seed=1
    )
    code, out, _ = await invoke("flatten", "--yes", "--json")
    assert code == 1
    doc = json.loads(out)
    [account] = doc["accounts"].values()
    assert doc["verified"] is account["verified"] is account["positions"]["verified"] is False
    assert [p["position_id"] for p in account["positions"]["remaining"]] == positions
    assert _sent(sim) == ["close_all_positions"] * 3  # one bulk close a round, 3 rounds


async def test_a_forbidden_account_does_not_stop_the_other(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    main, other = sim.account_ids
    sim.add_orders(3, account_id=main)
    sim.add_positions(2, account_id=main)
    kept = sim.add_orders(2, account_id=other)
    sim.forbid_account(other)
    code, out, err = await invoke("flatten", "--all-accounts", "--yes")
    assert code == 1
    assert sim.open_order_ids() == kept
    assert sim.open_position_ids(main) == []
    assert f"account {main}: verified" in out
    assert f"account {other}: NOT verified: stopped by an error" in out
    said = out + err
    assert said.count("is not accessible") == 1  # its error, once
    assert said.count("error: ") == 1
    assert (
        out.rstrip().splitlines()[-1] == f"NOT verified: 1 of 2 accounts may not be flat: {other}"
    )
    _fits(out)


async def test_keep_positions_leaves_them_and_still_verifies_the_orders(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    sim.add_orders(2)
    positions = sim.add_positions(2)
    code, out, _ = await invoke("flatten", "--keep-positions", "--yes")
    assert code == 0
    assert sim.open_order_ids() == []
    assert sim.open_position_ids() == positions
    assert "left alone" in out
    assert "close_all_positions" not in _sent(sim)


async def test_nothing_to_flatten_is_one_line(sim: FrontOfficeSimulator, invoke: Run) -> None:
    account = sim.account_ids[0]
    code, out, _ = await invoke("flatten", "--yes")
    assert code == 0
    assert out == f"nothing to flatten: no open order or position on account {account}\n"
    code, out, _ = await invoke("flatten", "--dry-run")
    assert code == 0
    assert out == f"dry run: nothing to flatten: no open order or position on account {account}\n"


# --- the dry run --------------------------------------------------------------------------------


@pytest.mark.parametrize("rich", [False, True], ids=["plain", "rich"])
async def test_a_dry_run_lists_each_thing_once_and_sends_nothing(
    sim: FrontOfficeSimulator,
    invoke: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rich: bool,
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setattr(output, "_use_rich", lambda out: rich)
    main, other = sim.account_ids
    orders = sim.add_orders(3, account_id=main, market_id="cfd.xau_usd_perpetual_quarterly")
    orders += sim.add_orders(1, account_id=other)
    positions = sim.add_positions(
        2, account_id=main, market_id="perp.eth_usdt", lot_amount="1234.5678"
    )
    stops = sim.add_stop_orders(2, account_id=other)
    path = _stop_file(tmp_path, [f"{other} {i}" for i in stops])
    code, out, err = await invoke(
        "flatten", "--account", main, "--account", other, "--stop-orders", path, "--dry-run"
    )
    assert code == 0, err
    _fits(out)
    for item in [*orders, *positions, *stops]:
        assert sum(item in line for line in out.splitlines()) == 1, item  # listed once
    assert (
        out.splitlines()[0] == "dry run: 4 open orders, 2 stop orders, 2 positions on 2 accounts"
    )
    assert f"account {main}: would close 2 positions" in out
    assert f"account {other}: would cancel 2 stop orders (the ids given)" in out
    assert "still open" not in out
    assert _sent(sim) == []  # snapshots only
    assert len(_books(sim)[0]) == 4


async def test_a_dry_run_with_json_is_the_dry_run_document(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    orders = sim.add_orders(2)
    positions = sim.add_positions(1)
    code, out, _ = await invoke("flatten", "--dry-run", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["dry_run"] is True
    assert doc["verified"] is False
    [account] = doc["accounts"].values()
    assert [o["order_id"] for o in account["orders"]["remaining"]] == orders
    assert [p["position_id"] for p in account["positions"]["remaining"]] == positions
    assert account["orders"]["outcomes"] == []
    assert _sent(sim) == []


# --- --json and --journal -----------------------------------------------------------------------


async def test_json_is_exactly_the_result_as_dict(sim: FrontOfficeSimulator, invoke: Run) -> None:
    sim.add_orders(2)
    sim.add_positions(2)
    stops = sim.add_stop_orders(1)
    code, out, err = await invoke("flatten", "--yes", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert set(doc) == FLATTEN_KEYS
    [(account_id, account)] = doc["accounts"].items()
    assert account_id == sim.account_ids[0]
    assert set(account) == ACCOUNT_KEYS
    assert set(account["orders"]) == set(account["stop_orders"]) == RESULT_KEYS
    assert set(account["positions"]) == POSITIONS_KEYS
    assert account["orders"]["counts"]["cancelled"] == 2
    assert len(account["positions"]["accepted"]) == 2
    assert sim.open_stop_order_ids() == stops  # not given: no endpoint lists them
    # The same document the library gives (the timings aside).
    async with FrontOfficeClient(sim.url, token=sim.token, account_id=account_id) as client:
        again = (await client.flatten()).as_dict()
    assert set(again) == set(doc)
    assert set(again["accounts"][account_id]) == set(account)


async def test_the_journal_is_json_lines_without_the_token(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path
) -> None:
    sim.add_orders(3)
    sim.add_positions(2)
    stops = sim.add_stop_orders(1)
    journal = tmp_path / "run.jsonl"
    path = _stop_file(tmp_path, stops)
    argv = ["flatten", "--stop-orders", path, "--journal", str(journal), "--yes"]
    code, _, err = await invoke(*argv)
    assert code == 0, err
    text = journal.read_text()
    assert SENTINEL_TOKEN not in text
    events = [json.loads(line) for line in text.splitlines()]  # each line parses alone
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run"
    assert kinds[-1] == "summary"
    assert {"snapshot", "request", "outcome", "round"} <= set(kinds)
    assert events[-1]["verified"] is True
    assert journal.stat().st_mode & 0o077 == 0  # created for the user alone


async def test_a_journal_that_cannot_be_opened_is_a_usage_error(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path
) -> None:
    sim.add_orders(1)
    missing = tmp_path / "no" / "such" / "dir" / "run.jsonl"
    code, out, err = await invoke("flatten", "--yes", "--journal", str(missing))
    assert code == 2
    assert out == ""
    assert err == f"error: cannot write the journal {missing}: No such file or directory\n"
    assert sim.stats.requests == 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
async def test_a_journal_on_a_full_disk_does_not_stop_the_flatten_but_exits_1(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    sim.add_orders(1)
    code, out, err = await invoke("flatten", "--yes", "--json", "--journal", "/dev/full")
    assert code == 1
    doc = json.loads(out)
    assert doc["verified"] is True  # the emergency went on without its record
    assert doc["journal_error"] == "No space left on device"
    assert sim.open_order_ids() == []
    assert err.splitlines()[-1] == (
        "error: cannot write the journal /dev/full: No space left on device"
    )
    assert "Traceback" not in err


# --- the prompt ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "done"), [("y\n", True), ("no\n", False), ("", False)])
async def test_flatten_asks_on_a_terminal_saying_what_it_will_do(
    sim: FrontOfficeSimulator,
    invoke: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    done: bool,
) -> None:
    sim.add_orders(2)
    sim.add_positions(3)
    stops = sim.add_stop_orders(1)
    monkeypatch.setattr(sys, "stdin", _Terminal(answer))
    code, _, err = await invoke("flatten", "--stop-orders", _stop_file(tmp_path, stops))
    account = sim.account_ids[0]
    assert f"  account {account}: 2 open orders, 1 stop order, 3 positions\n" in err
    assert (
        f"flatten account {account}: cancel 2 open orders and 1 stop order, close 3 "
        "positions? [y/N] "
    ) in err
    assert code == (0 if done else 2)
    assert ("error: not confirmed" in err) != done
    if not done:
        assert "nothing was cancelled or closed" in err
        assert _sent(sim) == []
    left = [len(ids) for ids in _books(sim)]
    assert left == ([0, 0, 0] if done else [2, 1, 3])


async def test_the_prompt_names_an_account_that_could_not_be_read(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    main, other = sim.account_ids
    sim.add_orders(1, account_id=main)
    sim.forbid_account(other)
    monkeypatch.setattr(sys, "stdin", _Terminal("no\n"))
    code, _, err = await invoke("flatten", "--all-accounts")
    assert code == 2
    assert f"  account {main}: 1 open order, 0 stop orders, 0 positions\n" in err
    assert f"  account {other}: could not be read: HubError: " in err
    assert "flatten 2 accounts: cancel 1 open order? [y/N] " in err
    assert _sent(sim) == []


async def test_without_yes_and_no_terminal_nothing_is_sent(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.add_orders(2)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))  # piped: not a terminal
    code, out, err = await invoke("flatten")
    assert code == 2
    assert out == ""
    assert "stdin is not a terminal; pass --yes" in err
    assert sim.stats.requests == 0
    monkeypatch.setattr(sys, "stdin", _Terminal("ID\n"))
    code, _, err = await invoke("flatten", "--stop-orders", "-")
    assert code == 2
    assert "--stop-orders - reads stdin" in err
    assert sim.stats.requests == 0


# --- usage --------------------------------------------------------------------------------------

A, B = "685a7eaa360f9e7416221a61", "685a7eaa360f9e7416221a62"
STOP_1, STOP_2 = "01K2Q0B7JW5V9P3E8TZMX4RGKA", "01K2Q0B7JW5V9P3E8TZMX4RGKB"


@pytest.mark.parametrize(
    ("lines", "accounts", "message"),
    [
        ([f"{A} {STOP_1} extra"], [], "line 1 3 fields; expected `ID` or `ACCOUNT_ID ID`"),
        ([STOP_1, f"{A} {STOP_2}"], [], "line 2 mixes the two forms (line 1 is `ID`, line 2"),
        ([STOP_1], ["--all-accounts"], "line 1 gives an id without its account"),
        ([STOP_1], ["--account", A, "--account", B], "line 1 gives an id without its account"),
        ([f"{B} {STOP_1}"], ["--account", A], f"line 1 names account {B}, which is not"),
        ([f"{B} {STOP_1}"], [], f"line 1 names account {B}, which is not"),
        ([f"{A} {STOP_1}", f"{B} {STOP_1}"], ["--all-accounts"], "line 2 gives stop order"),
    ],
)
async def test_an_ambiguous_stop_orders_file_is_refused(
    sim: FrontOfficeSimulator,
    invoke: Run,
    tmp_path: Path,
    lines: list[str],
    accounts: list[str],
    message: str,
) -> None:
    path = _stop_file(tmp_path, lines)
    code, out, err = await invoke("flatten", *accounts, "--stop-orders", path, "--yes", "--json")
    assert code == 2
    assert json.loads(out)["error"]["type"] == "UsageError"
    assert err == f"error: --stop-orders {path}: {message}" + err.split(message, 1)[1]
    assert err.count("\n") == 1
    assert _sent(sim) == []


async def test_a_stop_orders_file_read_within_bounds(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _stop_file(tmp_path, [STOP_1, "x" * 2000])
    code, _, err = await invoke("flatten", "--stop-orders", path, "--yes")
    assert code == 2
    assert err == (
        f"error: cannot read stop-order ids from {path}: line 2 is longer than 1024 bytes (an "
        "order id is at most 128 characters): is it a file of stop-order ids?\n"
    )
    monkeypatch.setattr(idfile, "MAX_IDS", 1)
    path = _stop_file(tmp_path, [STOP_1, STOP_2])
    code, _, err = await invoke("flatten", "--stop-orders", path, "--yes")
    assert code == 2
    assert "more than 1 ids" in err
    assert sim.stats.requests == 0


async def test_an_account_not_listed_for_all_accounts_is_tried_and_reported(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path
) -> None:
    # In a panic, one line naming an account the token does not list must not stop the
    # others: they are flattened, and that account is reported (exit 1).
    sim.add_orders(1)
    path = _stop_file(tmp_path, [f"{'0' * 24} {STOP_1}"])
    code, out, _ = await invoke("flatten", "--all-accounts", "--stop-orders", path, "--yes")
    assert code == 1
    assert sim.open_order_ids() == []
    assert f"account {'0' * 24}: NOT verified: 1 stop order failed" in out
    assert "PermissionDeniedError: 403" in out


async def test_an_empty_stop_orders_file_warns(
    sim: FrontOfficeSimulator, invoke: Run, tmp_path: Path
) -> None:
    path = _stop_file(tmp_path, ["# nothing kept"])
    code, _, err = await invoke("flatten", "--stop-orders", path, "--yes")
    assert code == 0
    assert err == f"warning: --stop-orders {path} holds no stop-order id\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--all-accounts", "--account", A], "not allowed with argument"),
        (["--rounds", "0"], "must be at least 1"),
        (["--account", " "], "--account must not be empty"),
        (["--market", ""], "--market must not be empty"),
        (["--stop-orders", ""], "--stop-orders must not be empty"),
        (["--journal", ""], "--journal must not be empty"),
    ],
)
async def test_usage_errors_exit_2_and_send_nothing(
    sim: FrontOfficeSimulator, invoke: Run, argv: list[str], message: str
) -> None:
    code, _, err = await invoke("flatten", "--yes", *argv)
    assert code == 2
    assert message in err
    assert sim.stats.requests == 0


async def test_no_account_configured_is_a_usage_error(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FRONTOFFICE_ACCOUNT_ID")
    code, _, err = await invoke("flatten", "--yes")
    assert code == 2
    assert "missing --account-id (or FRONTOFFICE_ACCOUNT_ID)" in err
    sim.add_orders(1, account_id=sim.account_ids[1])
    code, _, _ = await invoke("flatten", "--yes", "--account", sim.account_ids[1])
    assert code == 0  # --account needs no configured default
    assert sim.open_order_ids() == []


# --- interrupted --------------------------------------------------------------------------------


async def test_interrupted_it_prints_what_was_done(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async with FrontOfficeSimulator(token=SENTINEL_TOKEN, latency=0.02) as slow:
        for name, value in (
            ("FRONTOFFICE_BASE_URL", slow.url),
            ("FRONTOFFICE_TOKEN", SENTINEL_TOKEN),
            ("FRONTOFFICE_ACCOUNT_ID", slow.account_ids[0]),
        ):
            monkeypatch.setenv(name, value)
        slow.add_orders(200)
        argv = ["flatten", "--yes", "--json", "--concurrency", "2"]
        task = asyncio.create_task(cli.run(argv))
        for _ in range(2000):  # bounded: until a few cancels are done
            if len(slow.open_order_ids()) <= 194:
                break
            await asyncio.sleep(0.005)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=10)
        out, err = capsys.readouterr()
        left = slow.open_order_ids()
    doc: dict[str, Any] = json.loads(out)
    assert doc["interrupted"] is True
    assert doc["verified"] is False
    assert doc["accounts"] is None  # the library returned no result: not known, not none
    cancelled = [o["order_id"] for o in doc["outcomes"] if o["category"] == "cancelled"]
    assert cancelled  # the outcomes received before the interruption, each with its id
    assert not set(cancelled) & set(left)
    assert doc["counts"]["cancelled"] == len(cancelled)
    assert "interrupted: " in err
    assert "NOT verified" in err
    assert SENTINEL_TOKEN not in out + err


# --- the docs show what the command prints -----------------------------------------------------


def _timeless(lines: list[str]) -> list[str]:
    """The lines with the run's duration (`(1.5 s)`) left out: it varies."""
    return [re.sub(r"\(\d+\.\d s\)", "(… s)", line) for line in lines]


async def test_the_flatten_examples_of_the_docs_are_what_it_prints(
    sim: FrontOfficeSimulator,
    invoke: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.chdir(tmp_path)
    [dry_run] = _console_examples("flatten --all-accounts --stop-orders stops.txt --dry-run")
    [run] = _console_examples("flatten --all-accounts --stop-orders stops.txt --yes")
    # The scene of the examples: the same ids and prices in every fresh simulator (its seed).
    main, other = sim.account_ids
    sim.add_orders(2, account_id=main)
    sim.add_orders(1, account_id=other)
    sim.add_positions(2, account_id=main)
    sim.add_positions(1, account_id=other, market_id="perp.eth_usdt")
    stops = sim.add_stop_orders(1, account_id=main) + sim.add_stop_orders(1, account_id=other)
    sim.stop_out_on_close(main)
    _stop_file(
        tmp_path, ["# account id, stop-order id", f"{main} {stops[0]}", f"{other} {stops[1]}"]
    )
    argv = ["flatten", "--all-accounts", "--stop-orders", "stops.txt"]
    code, out, _ = await invoke(*argv, "--dry-run")
    assert code == 0
    assert out.splitlines() == dry_run
    code, out, _ = await invoke(*argv, "--yes")
    assert code == 0
    assert _timeless(out.splitlines()) == _timeless(run)


async def test_the_docs_example_of_a_position_left_open_is_what_it_prints(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    [example] = _console_examples("flatten --market cfd.btc_usd --yes")
    stuck, _ = sim.add_positions(2)
    sim.add_orders(2)
    sim.faults = FaultPlan(scripts={stuck: [Fault.not_applied()] * 3})
    code, out, _ = await invoke("flatten", "--market", "cfd.btc_usd", "--yes")
    assert code == 1
    assert out.splitlines() == example


async def test_the_docs_json_example_has_the_keys_of_the_result(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    sim.add_positions(1)
    code, out, _ = await invoke("flatten", "--yes", "--json")
    assert code == 0
    document = json.loads(out)
    blocks = re.findall(r"```json\n(.*?)```", CLI_DOCS.read_text(), re.S)
    [shown] = [json.loads(b) for b in blocks if '"dry_run"' in b]
    assert list(shown) == list(document)
    [account] = document["accounts"].values()
    [shown_account] = shown["accounts"].values()
    assert list(shown_account) == list(account)
    assert list(shown_account["positions"]) == list(account["positions"])
