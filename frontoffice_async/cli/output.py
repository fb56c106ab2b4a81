"""How the CLI shows things: results, tables, JSON (the bar: `progress`). It renders.

rich (the `cli` extra) draws the tables, imported only when something is drawn;
without it the output is plain text. Text from the server is escaped before it is shown.
A stdout that cannot be written (closed, full) raises `OutputError`; a closed pipe stays a
`BrokenPipeError` (exit 141).
"""

from __future__ import annotations

import errno
import functools
import importlib.util
import json
import math
import os
import re
import select
import sys
import textwrap
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TextIO, TypeVar

from .process import OutputError, tell

if TYPE_CHECKING:
    from rich.console import Console

    from frontoffice_async import Account, BulkCancelResult, OpenOrder, OpenPosition

__all__ = [
    "DEFAULT_WIDTH",
    "HAVE_RICH",
    "Drop",
    "Shrink",
    "describe_selection",
    "error_text",
    "fitted",
    "have_rich",
    "is_terminal",
    "line_width",
    "note",
    "paragraph",
    "percentile",
    "print_accounts",
    "print_json",
    "print_orders",
    "print_positions",
    "print_result",
    "print_summary",
    "print_table",
    "printable",
    "say",
    "short_error",
    "verdict",
]

#: Whether rich can be used; None looks it up on first use (tests set it to False).
HAVE_RICH: bool | None = None


def printable(text: object) -> str:
    """`text` with control and format characters escaped (`\\x1b`, `\\r`, `\\u202e`), so that
    an order id, a market name or an error message from the server cannot move the cursor,
    recolour the terminal or forge a line."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == " " else _escape(c) for c in text)


_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(char: str) -> str:
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


def note(message: str, *, end: str = "\n") -> None:
    """A line for the human on stderr (stdout may hold a JSON document); never fails."""
    tell(printable(message), end=end)


P = ParamSpec("P")
R = TypeVar("R")


def _writes(function: Callable[P, R]) -> Callable[P, R]:
    """Make a failed write of `function` an `OutputError` (a closed pipe stays what it is)."""

    @functools.wraps(function)
    def writing(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise OutputError(exc.strerror or str(exc)) from None

    return writing


def _stream(out: TextIO | None) -> TextIO:
    """`out`, or stdout; OutputError if there is none (the command ran with `>&-`)."""
    out = out if out is not None else sys.stdout
    if out is None:
        raise OutputError("stdout is closed")
    return out


def _write(out: TextIO, text: str) -> None:
    """Write all of `text` to `out`, or raise: a short write is carried on, never dropped.

    Under `python -u` or PYTHONUNBUFFERED (many container images set it) stdout's text layer
    writes straight to the raw file and ignores a short write: when the reader goes away
    mid-document (`--json | head -c 10`) the rest was lost and the command exited 0. So the
    bytes go to the binary layer here, until every one is written; the write after a short
    one fails (a closed pipe: `BrokenPipeError`, exit 141; anything else: exit 74).
    """
    binary = getattr(out, "buffer", None)
    if binary is None:  # a text-only stream (StringIO): it takes everything or raises
        out.write(text)
        out.flush()
        return
    out.flush()  # whatever the text layer holds goes first
    # backslashreplace: a character the terminal's encoding lacks must not end the report.
    data = memoryview(text.encode(out.encoding or "utf-8", "backslashreplace"))
    while data:
        try:
            written = binary.write(data)
        except BlockingIOError as exc:  # a non-blocking stdout, full for now
            data = data[exc.characters_written :]
            _wait_writable(binary)
            continue
        if written is None:  # the same, from the raw file itself
            _wait_writable(binary)
            continue
        if written == 0:  # nothing refused, nothing taken: never loop on it
            raise OSError(errno.EIO, "the output took none of the bytes written")
        data = data[written:]
    binary.flush()


def _wait_writable(binary: Any) -> None:
    """Until the descriptor under `binary` can take more (or a moment, if it has none)."""
    try:
        select.select([], [binary.fileno()], [])
    except (AttributeError, OSError, ValueError):  # no descriptor, or not selectable
        time.sleep(0.01)


@_writes
def say(line: str, *, out: TextIO | None = None) -> None:
    """One line on stdout, flushed (the caller escapes what came from the server)."""
    _write(_stream(out), line + "\n")


@_writes
def paragraph(text: str, *, indent: int = 0, out: TextIO | None = None) -> None:
    """`text` on stdout, in lines that fit the width (cut between words), each line after
    `indent` spaces."""
    out = _stream(out)
    lines = _wrap(text, max(line_width(out) - indent, _LEAST_TEXT))
    _write(out, "\n".join(" " * indent + line for line in lines) + "\n")


@_writes
def print_json(document: object, *, out: TextIO | None = None) -> None:
    """The one JSON document `--json` promises on stdout (already safe: JSON escapes)."""
    _write(_stream(out), json.dumps(document, indent=2, default=_json_value) + "\n")


def _json_value(value: object) -> object:
    # Decimals stay exact as strings; timestamps are ISO 8601.
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --- results ------------------------------------------------------------------------------------


@_writes
def print_result(
    result: BulkCancelResult[Any],
    *,
    verify: bool,
    latencies: Sequence[float] | None = None,
    out: TextIO | None = None,
) -> None:
    """The human report of one bulk call: the summary, what needs attention, the verdict."""
    out = _stream(out)
    print_summary({"": result}, verify=verify, latencies=latencies, out=out)
    print_problems(result, out=out)
    if verify:
        _write(out, verdict(result) + "\n")


@_writes
def print_summary(
    results: Mapping[str, BulkCancelResult[Any]],
    *,
    verify: bool,
    latencies: Sequence[float] | None = None,
    rounds_known: bool = True,
    title: str = "summary",
    out: TextIO | None = None,
) -> None:
    """A table of counts, one column per result (named by the keys: accounts in the demo)."""
    out = _stream(out)
    rows = [(name, [value(r) for r in results.values()]) for name, value in _ROWS]
    if latencies is not None:
        rows[6:6] = [
            ("latency p50", [_ms(percentile(latencies, 0.50))]),
            ("latency p99", [_ms(percentile(latencies, 0.99))]),
        ]
    if verify:
        rows[-2:-2] = [
            ("rounds", [str(r.rounds) if rounds_known else "?" for r in results.values()]),
            ("verified", ["yes" if r.verified else "NO" for r in results.values()]),
        ]
    header = [printable(name) for name in results] if len(results) > 1 else None
    _print_table(title, header, [(name, *values) for name, values in rows], out, key_column=True)


def _retries(result: BulkCancelResult[Any]) -> str:
    return str(sum(max(o.attempts - 1, 0) for o in result))


def _requests(result: BulkCancelResult[Any]) -> str:
    rate = result.attempts / result.elapsed if result.elapsed > 0 else 0.0
    return f"{result.attempts} ({rate:,.0f} req/s)"


def _wall_time(result: BulkCancelResult[Any]) -> str:
    return f"{result.elapsed:.2f} s" if result.elapsed >= 1 else _ms(result.elapsed)


_ROWS = (
    ("ids", lambda r: str(len(r))),
    ("cancelled", lambda r: str(len(r.cancelled))),
    ("not found", lambda r: str(len(r.not_found))),
    ("not active", lambda r: str(len(r.not_active))),
    ("failed", lambda r: str(len(r.failed))),
    ("retries", _retries),
    ("wall time", _wall_time),
    ("requests", _requests),
)


@_writes
def print_problems(
    result: BulkCancelResult[Any],
    *,
    remaining: bool = True,
    kind: str = "orders",
    out: TextIO | None = None,
) -> None:
    """Failed ids, orders still open (unless not `remaining`: a dry run listed them already)
    and unreadable records: what a trader must look at. A line is clipped to the width; the
    whole text is in `--json`. `kind` names what the ids are ("stop orders")."""
    out = _stream(out)
    width, mark = line_width(out), _ellipsis(out)
    if result.failed:
        lines = [f"failed ids ({len(result.failed)}); these {kind} may still be open:"]
        for outcome in result.failed:
            order_id = printable(outcome.order_id)
            room = max(width - 4 - _width_of(order_id), _LEAST_TEXT)
            lines.append(f"  {order_id}  {_clip(short_error(outcome.error), room, mark)}")
        _write(out, "\n".join(lines) + "\n")
    if remaining and result.remaining:
        title = f"{kind} still open ({len(result.remaining)})"
        print_orders(result.remaining, title=title, out=out)
    if result.unreadable:
        lines = [f"unreadable records in the last snapshot ({len(result.unreadable)}):"]
        room = max(width - 2, _LEAST_TEXT)
        lines += [f"  {_clip(printable(raw), room, mark)}" for raw in result.unreadable]
        _write(out, "\n".join(lines) + "\n")


#: Cells of text a clipped line keeps at least, however narrow the terminal.
_LEAST_TEXT = 24


def fitted(line: str, *, indent: int = 0, out: TextIO | None = None) -> str:
    """`line` (escaped here) clipped to the width of `out` (stdout) less `indent`, ending in
    `…` when cut: for a line whose tail may go (an error message; the whole is in `--json`)."""
    out = _stream(out)
    room = max(line_width(out) - indent, _LEAST_TEXT)
    return _clip(printable(line), room, _ellipsis(out))


def error_text(error: BaseException) -> str:
    """The `error:` line's text: the library's own, with the HTTP status said once.

    A server's message often starts with its status (aiohttp's "404: Not Found"), which the
    library's text puts after the status it names itself: `404 404: Not Found`.
    """
    text = " ".join(str(error).split())
    status, message = getattr(error, "status", None), getattr(error, "message", None)
    if isinstance(status, int) and isinstance(message, str):
        message = " ".join(message.split())
        said = f"{status} {message}".rstrip()
        if text.startswith(said):
            text = f"{status} {_without_status(message, status)}".rstrip() + text[len(said) :]
    return printable(text)


def short_error(error: BaseException | None) -> str:
    """An outcome's error in a few words: its type, then status and message (no URL: the
    id is on the line), e.g. `ConflictError: 409 Conflict`."""
    if error is None:
        return ""
    status, message = getattr(error, "status", None), getattr(error, "message", None)
    if not isinstance(message, str) or not message:
        first = error.args[0] if error.args else None
        message = first if isinstance(first, str) else str(error)
    message = " ".join(message.split())
    if isinstance(status, int):
        message = f"{status} {_without_status(message, status)}".rstrip()
    return printable(f"{type(error).__name__}: {message}")


def _without_status(message: str, status: int) -> str:
    """`message` without a leading copy of `status` ("404: Not Found" -> "Not Found"); the
    status's reason phrase when nothing else is left."""
    found = re.match(rf"(?:HTTP(?:/[\d.]+)?\s+)?{status}(?!\d)[\s:.,;-]*", message, re.I)
    rest = message[found.end() :] if found else message
    if rest:
        return rest
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # not a status Python knows: the number says it all
        return ""


def verdict(result: BulkCancelResult[Any]) -> str:
    """One line: was cancel-all verified by a fresh snapshot, and in how many rounds."""
    rounds = f"{result.rounds} round" + ("" if result.rounds == 1 else "s")
    if result.verified:
        return f"verified: a fresh snapshot shows no matching open order ({rounds})"
    left = [f"{len(result.remaining)} still open"]
    if result.unreadable:
        left.append(f"{len(result.unreadable)} unreadable")
    return f"NOT verified after {rounds}: {', '.join(left)}"


def describe_selection(count: int, account: str, market: str | None, side: str | None) -> str:
    """E.g. `3 open orders (market spot.eth_usdt, buy) on account 685a...`; `no open order
    on account 685a...` for none."""
    orders = {0: "no open order", 1: "1 open order"}.get(count, f"{count} open orders")
    filters = [f"market {market}"] if market is not None else []
    filters += [side] if side is not None else []
    where = f" ({', '.join(filters)})" if filters else ""
    return printable(f"{orders}{where} on account {account}")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0 < q <= 1) of `values`, or None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


# --- listings -----------------------------------------------------------------------------------


@_writes
def print_orders(orders: Sequence[OpenOrder], *, title: str, out: TextIO | None = None) -> None:
    """A table of open orders (`cancel-all --dry-run`, orders still open); only the title
    when there are none (a header over nothing says nothing)."""
    out = _stream(out)
    header = ["order id", "market", "side", "type", "status", "remaining", "price"]
    rows = [
        (
            o.order_id,
            o.market_id,
            o.side,
            o.order_type,
            o.status,
            o.remaining_amount,
            "" if o.requested_price is None else o.requested_price,
        )
        for o in orders
    ]
    # What may go to fit the line, least needed first: the id, the side and the amounts
    # identify an order for a trader; a long market name is abbreviated before an amount
    # goes, and an amount is dropped, never cut (a cut number is another number).
    steps = (
        Drop("type"),
        Drop("status"),
        Shrink("market", 16),
        Drop("price"),
        Drop("remaining"),
        Shrink("market", 8),
    )
    _print_table(title, header, rows, out, right={"remaining", "price"}, steps=steps)


@_writes
def print_positions(
    positions: Sequence[OpenPosition], *, title: str, out: TextIO | None = None
) -> None:
    """A table of open positions (`flatten --dry-run`, positions still open); only the title
    when there are none."""
    out = _stream(out)
    header = ["position id", "market", "side", "lots", "open price", "pnl (RAT)"]
    rows = [
        (
            p.position_id,
            p.market_id,
            p.side,
            p.position_lot_amount,
            p.open_price,
            "" if p.unrealized_pnl_total_in_rat is None else p.unrealized_pnl_total_in_rat,
        )
        for p in positions
    ]
    # As for orders: the id, the side and the lots identify a position for a trader; a
    # number is dropped whole, never cut.
    steps = (
        Drop("open price"),
        Shrink("market", 16),
        Drop("pnl (RAT)"),
        Drop("lots"),
        Shrink("market", 8),
    )
    right = {"lots", "open price", "pnl (RAT)"}
    _print_table(title, header, rows, out, right=right, steps=steps)


@_writes
def print_table(
    title: str,
    header: Sequence[str] | None,
    rows: Sequence[Sequence[object]],
    *,
    right: set[str] | None = None,
    key_column: bool = False,
    steps: Sequence[Step] = (),
    out: TextIO | None = None,
) -> None:
    """A table fitted to the line, as the listings above are (see `_print_table`)."""
    out = _stream(out)
    _print_table(title, header, rows, out, right=right, key_column=key_column, steps=steps)


@_writes
def print_accounts(accounts: Sequence[Account], *, out: TextIO | None = None) -> None:
    """A table of the accounts the token can act on."""
    out = _stream(out)
    header = ["account id", "name", "type", "balance (RAT)", "copy trading"]
    rows = [
        (
            a.account_id,
            a.account_name,
            a.account_type,
            a.total_balance_in_rat,
            "yes" if a.is_copy_trading_account else "no",
        )
        for a in accounts
    ]
    steps = (
        Shrink("name", 24),
        Drop("copy trading"),
        Drop("type"),
        Shrink("name", 8),
    )
    _print_table(
        f"{len(accounts)} accounts", header, rows, out, right={"balance (RAT)"}, steps=steps
    )


def _print_table(
    title: str,
    header: Sequence[str] | None,
    rows: Sequence[Sequence[object]],
    out: TextIO,
    *,
    right: set[str] | None = None,
    key_column: bool = False,
    steps: Sequence[Step] = (),
) -> None:
    """Rows of cells (escaped here) under a title, fitted to the line (`_layout`);
    `key_column`: a summary, names left and values right. No rows: the title alone."""
    width, mark = line_width(out), _ellipsis(out)
    lines = _wrap(title, width)
    if not rows:
        _write(out, "\n".join(lines) + "\n")
        return
    cells = [[printable(cell) for cell in row] for row in rows]
    count = max(len(row) for row in cells)
    names = list(header or ()) if not key_column else ["", *(header or [""] * (count - 1))]
    aligned_right = [
        (index > 0) if key_column else (name in (right or ())) for index, name in enumerate(names)
    ]
    rich = _use_rich(out)

    # A row's cells besides its content: rich draws `│ a │ b │`, plain text `  a  b`.
    def overhead(columns: int) -> int:
        return 3 * columns + 1 if rich else 2 * columns

    shown, widths = _layout(names, cells, width=width, overhead=overhead, steps=steps)
    fitted_names = [_clip(names[i], widths[i], mark) for i in shown]
    fitted = [[_clip(row[i], widths[i], mark) for i in shown] for row in cells]
    fitted_right = [aligned_right[i] for i in shown]
    fitted_widths = [widths[i] for i in shown]
    if rich:
        lines.append(
            _rich_table(
                fitted_names,
                fitted,
                fitted_right,
                fitted_widths,
                out,
                # What every step could not save (a table with nothing left to drop) is
                # drawn wider than the line, never squeezed: rich would cut a number.
                width=max(width, sum(fitted_widths) + overhead(len(shown))),
                show_header=header is not None,
            )
        )
    else:
        for line in ([fitted_names] if header is not None else []) + fitted:
            padded = [
                _pad(c, w, right=r)
                for c, w, r in zip(line, fitted_widths, fitted_right, strict=True)
            ]
            lines.append("  " + "  ".join(padded).rstrip())
    _write(out, "\n".join(line.rstrip("\n") for line in lines) + "\n")


def _rich_table(
    names: Sequence[str],
    cells: Sequence[Sequence[str]],
    aligned_right: Sequence[bool],
    widths: Sequence[int],
    out: TextIO,
    *,
    width: int,
    show_header: bool,
) -> str:
    """The table drawn by rich, as text for `out` (colours if it is a terminal)."""
    from rich.table import Table  # noqa: PLC0415 - rich loads only when a table is drawn

    table = Table(show_header=show_header)
    for name, right, cells_wide in zip(names, aligned_right, widths, strict=True):
        # Fitted already: a cell never folds onto a second line.
        table.add_column(
            name,
            justify="right" if right else "left",
            width=cells_wide,
            no_wrap=True,
            overflow="ellipsis",
        )
    for row in cells:
        table.add_row(*row)
    console = _console(out, width)
    with console.capture() as captured:  # rendered as for `out`, written in full by the caller
        console.print(table)
    return captured.get()


def _ellipsis(out: TextIO) -> str:
    """The mark of an abbreviated cell: `…` where the output can encode it, else `~`."""
    try:
        "…".encode(getattr(out, "encoding", None) or "utf-8")
    except (LookupError, UnicodeEncodeError):
        return "~"
    return "…"


def have_rich() -> bool:
    """Whether rich (the `cli` extra) is installed, unless a test decided."""
    return _rich_installed() if HAVE_RICH is None else HAVE_RICH


@functools.cache
def _rich_installed() -> bool:
    return importlib.util.find_spec("rich") is not None


def _use_rich(out: TextIO) -> bool:
    # Piped output stays plain text, one record a line, for grep and awk.
    return have_rich() and is_terminal(out)


def is_terminal(stream: TextIO | None) -> bool:
    """Whether `stream` is a terminal (False if there is none, or it is closed)."""
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError):  # closed
        return False


def _console(out: TextIO, width: int) -> Console:
    from rich.console import Console  # noqa: PLC0415

    # Never read markup out of server-supplied text. The width is the one the table was
    # fitted to (`line_width`), so rich has no reason to fold a cell.
    return Console(file=out, width=width, markup=False, highlight=False)


# --- fitting the line ---------------------------------------------------------------------------
# A trader reads `cancel-all --dry-run` in whatever terminal is at hand, often 80 columns: a row
# folded onto three lines makes thousands of orders unreadable. Each table says which columns
# may go, or be abbreviated, and in what order (`Drop`, `Shrink`); `_layout` applies those
# steps until a row fits. Plain text and rich draw the same layout, so both fit.

#: The width of a line when the output is not a terminal (a pipe, a file) and `COLUMNS` is
#: not set: what a terminal has by default, so that `| less` or a saved report fits too.
DEFAULT_WIDTH = 80


class Drop(NamedTuple):
    """Leave the column out."""

    column: str


class Shrink(NamedTuple):
    """Abbreviate the column's cells (`…` at the end), down to `least` cells at most."""

    column: str
    least: int


Step = Drop | Shrink


def line_width(out: TextIO) -> int:
    """Columns a line may take: `COLUMNS` if set, else the terminal's, else `DEFAULT_WIDTH`."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if out.isatty():
            return os.get_terminal_size(out.fileno()).columns or DEFAULT_WIDTH
    except (AttributeError, OSError, ValueError):  # no descriptor, closed, not a terminal
        pass
    return DEFAULT_WIDTH


def _width_of(text: str) -> int:
    """Terminal cells `text` takes: wide (East Asian) characters take two, combining none."""
    if text.isascii():
        return len(text)
    return sum(_cell(c) for c in text)


def _cell(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in {"W", "F"} else 1


def _clip(text: str, width: int, mark: str = "…") -> str:
    """`text` in at most `width` cells, ending in `mark` when cut."""
    if _width_of(text) <= width:
        return text
    room = max(width - _width_of(mark), 0)
    kept: list[str] = []
    used = 0
    for char in text:
        used += _cell(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept) + mark


def _pad(text: str, width: int, *, right: bool) -> str:
    """`text` padded with spaces to `width` cells, on the left when `right`-aligned."""
    spaces = " " * max(width - _width_of(text), 0)
    return spaces + text if right else text + spaces


def _wrap(text: str, width: int) -> list[str]:
    """`text` (a title, a sentence) in lines of at most `width` cells, cut between words."""
    if _width_of(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def _layout(
    names: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    overhead: Callable[[int], int],
    steps: Sequence[Step] = (),
) -> tuple[list[int], list[int]]:
    """The columns to show (indexes) and every column's width, so that a row fits `width`.

    `overhead(n)`: the cells a row of `n` columns takes besides their content (indent,
    gaps, borders). `steps` are applied in order, each only while a row is still too wide;
    a `Shrink` takes only what is needed. When every step is spent, the row is as narrow as
    the table allows (an id is never cut).
    """
    widths = [
        max([_width_of(n), *(_width_of(row[i]) for row in rows)]) for i, n in enumerate(names)
    ]
    shown = list(range(len(names)))

    def excess() -> int:
        return sum(widths[i] for i in shown) + overhead(len(shown)) - width

    for step in steps:
        if excess() <= 0:
            break
        index = names.index(step.column)
        if index not in shown:
            continue
        if isinstance(step, Drop):
            shown.remove(index)
        else:
            widths[index] = min(widths[index], max(step.least, widths[index] - excess()))
    return shown, widths
