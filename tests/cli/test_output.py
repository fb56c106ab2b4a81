"""How the CLI writes: every byte or an error (short writes), and tables that fit the width."""

from __future__ import annotations

import errno
import io
import json
import os
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from frontoffice_async import Account, AccountType, APIStatusError
from frontoffice_async.cli import output
from frontoffice_async.cli.process import OutputError
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator

from ..support import Run

CONFLICT = Fault.response(409, b'{"title":"Conflict","status":409}')

DOCUMENT = {"outcomes": [{"order_id": f"01K2PF9XS29WN4JZRHMCT{i:05d}"} for i in range(200)]}


class ShortWrites(io.RawIOBase):
    """A raw stdout (`python -u`) that takes at most `chunk` bytes a write, then, after
    `limit` bytes, raises `error`, or takes nothing (`error` None)."""

    def __init__(
        self,
        chunk: int = 7,
        limit: int | None = None,
        error: OSError | None = None,
        fd: int | None = None,
    ) -> None:
        self.data = bytearray()
        self.chunk = chunk
        self.limit = limit
        self.error = error
        self.fd = fd
        self.would_block = 0

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, "no descriptor")
        return self.fd

    def write(self, b: object) -> int | None:
        data = bytes(memoryview(b))  # type: ignore[arg-type]
        if self.would_block:
            self.would_block -= 1
            return None
        if self.limit is not None and len(self.data) >= self.limit:
            if self.error is not None:
                raise self.error
            return 0
        taken = data[: self.chunk]
        self.data += taken
        return len(taken)


def text_stream(raw: io.RawIOBase) -> io.TextIOWrapper:
    """stdout as Python makes it under PYTHONUNBUFFERED: a text layer on the raw file."""
    return io.TextIOWrapper(raw, encoding="utf-8", write_through=True)  # type: ignore[arg-type]


@pytest.fixture
def pipe_fd() -> Iterator[int]:
    """The write end of an empty pipe: a descriptor that `select` finds writable at once."""
    read_end, write_end = os.pipe()
    yield write_end
    os.close(read_end)
    os.close(write_end)


def test_a_short_write_is_carried_on_until_the_document_is_whole() -> None:
    raw = ShortWrites(chunk=7)
    output.print_json(DOCUMENT, out=text_stream(raw))
    assert json.loads(raw.data) == DOCUMENT


def test_a_stdout_that_would_block_is_waited_for(pipe_fd: int) -> None:
    raw = ShortWrites(chunk=4096, fd=pipe_fd)
    raw.would_block = 3
    output.print_json(DOCUMENT, out=text_stream(raw))
    assert json.loads(raw.data) == DOCUMENT


def test_a_reader_gone_after_a_short_write_is_a_broken_pipe() -> None:
    raw = ShortWrites(chunk=10, limit=10, error=BrokenPipeError(errno.EPIPE, "Broken pipe"))
    with pytest.raises(BrokenPipeError):  # exit 141, as for plain output
        output.print_json(DOCUMENT, out=text_stream(raw))


def test_a_failed_write_after_a_short_one_is_an_output_error() -> None:
    raw = ShortWrites(limit=10, error=OSError(errno.ENOSPC, "No space left on device"))
    with pytest.raises(OutputError, match="No space left on device"):  # exit 74
        output.print_json(DOCUMENT, out=text_stream(raw))


def test_a_stdout_that_takes_nothing_is_an_output_error() -> None:
    raw = ShortWrites(limit=10, error=None)
    with pytest.raises(OutputError, match="took none"):
        output.print_json(DOCUMENT, out=text_stream(raw))


def test_text_tables_are_written_whole_too() -> None:
    raw = ShortWrites(chunk=3)
    accounts = [f"{i:024x}" for i in range(50)]
    output.say("\n".join(accounts), out=text_stream(raw))
    assert raw.data.decode().split() == accounts


# --- what a trader reads ----------------------------------------------------------------------


@pytest.fixture
def columns_80(monkeypatch: pytest.MonkeyPatch) -> None:
    """An 80-column terminal, for plain text and for rich alike."""
    monkeypatch.setenv("COLUMNS", "80")


def _order_lines(out: str, ids: list[str]) -> list[str]:
    """The lines that hold an order id; each id on exactly one of them."""
    for order_id in ids:
        assert sum(order_id in line for line in out.splitlines()) == 1, order_id
    return [line for line in out.splitlines() if any(i in line for i in ids)]


def _assert_fits(out: str, width: int = 80) -> None:
    too_wide = [line for line in out.splitlines() if len(line) > width]
    assert not too_wide, "\n".join(too_wide)


def _make_wide(sim: FrontOfficeSimulator, count: int) -> list[str]:
    """Orders whose rows are as wide as real ones get: a long market name, big amounts."""
    ids = sim.add_orders(count, market_id="cfd.xau_usd_perpetual_quarterly", status="Working")
    for order_id in ids:
        sim.update_order(
            order_id,
            remaining_amount=Decimal("12345678.12345678"),
            requested_price=Decimal("98765432.87654321"),
        )
    return ids


@pytest.mark.parametrize("rich", [False, True], ids=["plain", "rich"])
async def test_a_dry_run_fits_80_columns_one_line_an_order(
    sim: FrontOfficeSimulator,
    invoke: Run,
    monkeypatch: pytest.MonkeyPatch,
    columns_80: None,
    rich: bool,
) -> None:
    monkeypatch.setattr(output, "_use_rich", lambda out: rich)
    ids = [*sim.add_orders(3), *_make_wide(sim, 3)]
    code, out, _ = await invoke("cancel-all", "--dry-run")
    assert code == 0
    _assert_fits(out)
    rows = _order_lines(out, ids)
    assert len(rows) == len(ids)  # listed once, and no row folded onto a second line
    if rich:
        assert sum(line.startswith("│") for line in out.splitlines()) == len(ids)
    for row in rows:  # what a trader needs is on the row: id, market (maybe cut), side
        assert "Buy" in row or "Sell" in row
    assert "still open" not in out  # a dry run lists what it would cancel, once


@pytest.mark.parametrize("rich", [False, True], ids=["plain", "rich"])
async def test_what_is_left_after_cancel_all_fits_80_columns(
    sim: FrontOfficeSimulator,
    invoke: Run,
    monkeypatch: pytest.MonkeyPatch,
    columns_80: None,
    rich: bool,
) -> None:
    monkeypatch.setattr(output, "_use_rich", lambda out: rich)
    stuck = _make_wide(sim, 2)
    sim.faults = FaultPlan(scripts={i: [CONFLICT] * 10 for i in stuck})
    code, out, _ = await invoke("cancel-all", "--yes")
    assert code == 1
    _assert_fits(out)
    assert "still open (2)" in out
    assert "ConflictError: 409 Conflict" in out  # the failed ids, one line each
    code, out, _ = await invoke("accounts")
    assert code == 0
    _assert_fits(out)


@pytest.mark.parametrize("rich", [False, True], ids=["plain", "rich"])
async def test_the_demo_fits_80_columns(
    invoke: Run, monkeypatch: pytest.MonkeyPatch, columns_80: None, rich: bool
) -> None:
    monkeypatch.setattr(output, "_use_rich", lambda out: rich)
    code, out, _ = await invoke("demo", "--orders", "40", "--fault-rate", "0")
    assert code == 0
    _assert_fits(out)


def test_a_table_drops_and_abbreviates_columns_never_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    accounts = [
        Account(
            account_id="685a7eaa360f9e7416221a61",
            account_name="Quantitative strategies desk, London (copy trading master)",
            account_type=AccountType.HEDGING,
            total_balance_in_rat=Decimal("123456789012.5"),
            is_copy_trading_account=True,
        )
    ]
    out = io.StringIO()
    output.print_accounts(accounts, out=out)
    _assert_fits(out.getvalue(), 60)
    # The name abbreviated, "copy trading" and the type dropped; the id and the balance
    # whole (a number is shown whole or not at all: a cut number is another number).
    assert out.getvalue().splitlines()[-2:] == [
        "  account id                name               balance (RAT)",
        "  685a7eaa360f9e7416221a61  Quantitative st…  123456789012.5",
    ]


async def test_an_empty_dry_run_is_one_line(sim: FrontOfficeSimulator, invoke: Run) -> None:
    code, out, err = await invoke("cancel-all", "--dry-run")
    assert code == 0
    assert out == f"dry run: nothing to cancel: no open order on account {sim.account_ids[0]}\n"
    assert err == ""


async def test_nothing_to_cancel_is_one_line(sim: FrontOfficeSimulator, invoke: Run) -> None:
    sim.add_orders(2, account_id=sim.account_ids[1])  # another account's: not ours to cancel
    code, out, err = await invoke("cancel-all", "--yes", "--side", "buy")
    assert code == 0
    assert out == (f"nothing to cancel: no open order (buy) on account {sim.account_ids[0]}\n")
    assert err == ""


async def test_a_status_error_says_its_status_once(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTOFFICE_BASE_URL", sim.url + "/wrong-prefix")
    code, out, err = await invoke("accounts")
    assert code == 1
    assert err == (
        f"error: 404 Not Found (GET {sim.url}/wrong-prefix/frontoffice/api/v3/accounts, "
        "1 attempt)\n"
    )
    code, out, _ = await invoke("cancel", "X1")
    assert code == 1
    assert "  X1  APIStatusError: 404 Not Found\n" in out


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        ("404: Not Found", "404 Not Found"),
        ("404", "404 Not Found"),
        ("", "404 Not Found"),
        ("HTTP/1.1 404 Not Found", "404 Not Found"),
        ("Not Found", "404 Not Found"),
        ("4040 reasons", "404 4040 reasons"),
    ],
)
def test_error_text_says_the_status_once(message: str, shown: str) -> None:
    error = APIStatusError(message, status=404, method="GET", url="http://x/a")
    assert output.error_text(error) == f"{shown} (GET http://x/a, 1 attempt)"
    assert output.short_error(error) == f"APIStatusError: {shown}"


# --- the docs show what the command prints -----------------------------------------------------

CLI_DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _console_examples(command: str) -> list[list[str]]:
    """The output lines of each `$ frontoffice <command>` example in docs/cli.md."""
    examples: list[list[str]] = []
    current: list[str] | None = None
    indent = 0
    for raw in CLI_DOCS.read_text().splitlines():
        text = raw.strip()
        if current is None:
            if text == f"$ frontoffice {command}":
                current, indent = [], len(raw) - len(raw.lstrip())
        elif text.startswith(("```", "$ ")):
            examples.append(current)
            current = None
        else:
            current.append(raw[indent:])
    return examples


async def test_the_dry_run_example_of_the_docs_is_what_it_prints(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    [example] = _console_examples("cancel-all --dry-run")
    monkeypatch.delenv("COLUMNS", raising=False)
    sim.add_orders(2)  # the same ids and prices in every fresh simulator (its default seed)
    code, out, _ = await invoke("cancel-all", "--dry-run")
    assert code == 0
    assert out.splitlines() == example


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero")
async def test_the_from_file_example_of_the_docs_is_what_it_prints(
    sim: FrontOfficeSimulator, invoke: Run
) -> None:
    [example] = _console_examples("cancel --from-file /dev/zero")
    code, _, err = await invoke("cancel", "--from-file", "/dev/zero")
    assert code == 2
    assert err.splitlines() == example
