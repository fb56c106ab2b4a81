"""What the CLI shows of bulk work: the run with its progress bar and per-id latency, the summary.

rich (the `cli` extra) draws the bar and the tables; without it the output is plain text.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

from .bulk import CancelOutcome
from .errors import APIStatusError
from .models import Account, OpenOrder

if TYPE_CHECKING:
    from .client import FrontOfficeClient

try:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.table import Table
except ImportError:  # pragma: no cover - exercised by flipping HAVE_RICH in tests
    HAVE_RICH = False
else:
    HAVE_RICH = True

__all__ = [
    "HAVE_RICH",
    "BulkTracker",
    "note",
    "print_accounts",
    "print_json",
    "print_orders",
    "print_summary",
    "report",
    "run_bulk",
    "show_progress",
    "summary_json",
]


# --- the bulk run -------------------------------------------------------------------------------


async def run_bulk(
    client: FrontOfficeClient,
    batches: Sequence[tuple[str, Sequence[str]]],
    args: argparse.Namespace,
) -> BulkTracker:
    """Cancel each (account, ids) batch at once through `client`, with the progress bar.

    On Ctrl-C the summary of what was done so far is printed before `CancelledError`
    propagates: outcomes are collected as they arrive, so none is lost.
    """
    tracker = BulkTracker(progress=show_progress(args))
    tracker.start(sum(len(ids) for _, ids in batches))
    try:
        async with asyncio.TaskGroup() as group:
            for account, ids in batches:
                group.create_task(
                    client.cancel_orders(
                        tracker.feed(ids),
                        account_id=account,
                        concurrency=args.concurrency,
                        on_outcome=tracker.on_outcome,
                    )
                )
    except asyncio.CancelledError:
        tracker.stop()
        report(tracker, batches, args, interrupted=True)
        raise
    except BaseExceptionGroup as group_error:
        # Per-id errors are outcomes; only a bug or bad arguments get here.
        raise group_error.exceptions[0] from None
    finally:
        tracker.stop()
    return tracker


def report(
    tracker: BulkTracker,
    batches: Sequence[tuple[str, Sequence[str]]],
    args: argparse.Namespace,
    *,
    interrupted: bool = False,
    **extra: Any,
) -> bool:
    """Print the summary (or the JSON document); True if some id failed."""
    outcomes = tracker.outcomes
    done = {o.order_id for o in outcomes}
    unfinished = [i for _, ids in batches for i in dict.fromkeys(ids) if i not in done]
    if args.json:
        if interrupted:
            extra = {**extra, "interrupted": True, "unfinished": unfinished}
        print_json(summary_json(outcomes, tracker.elapsed, **extra))
    else:
        print_summary(outcomes, tracker.latencies, tracker.elapsed)
    if interrupted:
        note(
            f"interrupted: {len(outcomes)} ids dealt with, {len(unfinished)} not "
            "(not sent, or sent with no answer yet: check them before trusting their state)"
        )
    return any(o.error is not None and not o.not_found for o in outcomes)


def show_progress(args: argparse.Namespace) -> bool:
    """Draw a progress bar: only on a terminal, never with --json or --no-progress."""
    return not args.json and not args.no_progress and sys.stderr.isatty()


def note(message: str) -> None:
    """A line for the human on stderr (stdout may be a JSON document)."""
    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


class BulkTracker:
    """Collects the outcomes of bulk cancels as they arrive and drives the progress bar.

    Latency per id is measured from the moment the worker pool takes the id from `feed()`
    (it sends the request right away) to the moment its outcome reaches `on_outcome`, so it
    includes retries and backoff sleeps: what a trader waits for each order to be dealt with.
    Ids rejected before sending (0 attempts) have no latency.
    """

    def __init__(self, *, progress: bool, clock: Callable[[], float] = time.perf_counter) -> None:
        self.latencies: list[float] = []
        self._received: list[CancelOutcome] = []
        self._clock = clock
        self._sent_at: dict[str, float] = {}
        self._position: dict[str, int] = {}
        self._started = clock()
        self._bar = _ProgressBar() if progress and HAVE_RICH else None

    def feed(self, order_ids: Iterable[str]) -> Iterator[str]:
        """Yield the ids, noting when the pool takes each one (lazily, as it sends)."""
        for order_id in order_ids:
            # setdefault: a duplicate id is skipped by the pool and keeps its first values.
            self._sent_at.setdefault(order_id, self._clock())
            self._position.setdefault(order_id, len(self._position))
            yield order_id

    def on_outcome(self, outcome: CancelOutcome) -> None:
        """The `on_outcome=` callback of `cancel_orders`."""
        self._received.append(outcome)
        sent = self._sent_at.get(outcome.order_id)
        if sent is not None and outcome.attempts:
            self.latencies.append(self._clock() - sent)
        if self._bar is not None:
            self._bar.advance(failed=outcome.error is not None and not outcome.not_found)

    @property
    def outcomes(self) -> list[CancelOutcome]:
        """The outcomes received so far, in input order (they arrive in completion order)."""
        last = len(self._position)
        return sorted(self._received, key=lambda o: self._position.get(o.order_id, last))

    def start(self, total: int, description: str = "cancelling") -> None:
        """Show the progress bar (if enabled) for `total` ids and restart the wall clock."""
        self._started = self._clock()
        if self._bar is not None:
            self._bar.start(total, description)

    def stop(self) -> None:
        """Stop drawing the bar (it stays on screen at its last state); safe to call twice."""
        if self._bar is not None:
            self._bar.stop()

    @property
    def elapsed(self) -> float:
        """Seconds since `start()`."""
        return self._clock() - self._started


class _ProgressBar:
    """A rich progress bar on stderr."""

    def __init__(self) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
        )
        self._task: TaskID | None = None
        self._failed = 0
        self._running = False

    def start(self, total: int, description: str) -> None:
        self._progress.start()
        self._running = True
        self._task = self._progress.add_task(description, total=total, failed=0)

    def advance(self, *, failed: bool) -> None:
        if self._task is None:
            return
        self._failed += failed
        self._progress.update(self._task, advance=1, failed=self._failed)

    def stop(self) -> None:
        if self._running:
            self._running = False
            self._progress.stop()


# --- summaries ----------------------------------------------------------------------------------


def summary_json(
    outcomes: Sequence[CancelOutcome], elapsed: float, **extra: Any
) -> dict[str, Any]:
    """The `--json` document of a bulk cancel."""
    failed = [o for o in outcomes if o.error is not None and not o.not_found]
    return {
        "cancelled": [o.order_id for o in outcomes if o.ok],
        "not_found": [o.order_id for o in outcomes if o.not_found],
        "failed": [
            {
                "order_id": o.order_id,
                "error": type(o.error).__name__,
                "message": str(o.error),
                "status": o.error.status if isinstance(o.error, APIStatusError) else None,
            }
            for o in failed
        ],
        "attempts": sum(o.attempts for o in outcomes),
        "elapsed": round(elapsed, 6),
        **extra,
    }


def print_summary(
    outcomes: Sequence[CancelOutcome],
    latencies: Sequence[float],
    elapsed: float,
    *,
    title: str = "summary",
    out: TextIO | None = None,
) -> None:
    """The human summary: counts, retries, latency percentiles, wall time, request rate."""
    out = out or sys.stdout
    attempts = sum(o.attempts for o in outcomes)
    failed = [o for o in outcomes if o.error is not None and not o.not_found]
    rate = attempts / elapsed if elapsed > 0 else 0.0
    rows = [
        ("ids", str(len(outcomes))),
        ("cancelled", str(sum(o.ok for o in outcomes))),
        ("not found", str(sum(o.not_found for o in outcomes))),
        ("failed", str(len(failed))),
        ("retries", str(sum(max(o.attempts - 1, 0) for o in outcomes))),
        ("latency p50", _ms(percentile(latencies, 0.50))),
        ("latency p99", _ms(percentile(latencies, 0.99))),
        ("wall time", f"{elapsed:.2f} s" if elapsed >= 1 else _ms(elapsed)),
        ("requests", f"{attempts} ({rate:,.0f} req/s)"),
    ]
    if _use_rich(out):
        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(justify="right")
        for name, value in rows:
            table.add_row(name, value, style="red" if name == "failed" and failed else None)
        _console(out).print(table)
    else:
        out.write(f"{title}\n")
        width = max(len(name) for name, _ in rows)
        for name, value in rows:
            out.write(f"  {name:<{width}}  {value}\n")
    if failed:
        out.write(f"failed ids ({len(failed)}); these orders may still be open:\n")
        for o in failed:
            out.write(f"  {o.order_id}  {type(o.error).__name__}: {o.error}\n")
    out.flush()


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank `q` percentile (0 < q <= 1) of `values`, or None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


# --- listings -----------------------------------------------------------------------------------


def print_orders(orders: Sequence[OpenOrder], *, title: str, out: TextIO | None = None) -> None:
    """A table of open orders (for `cancel-all --dry-run` and the confirmation prompt)."""
    out = out or sys.stdout
    header = ("order id", "market", "side", "type", "status", "remaining", "price")
    rows = [
        (
            o.order_id,
            o.market_id,
            str(o.side),
            str(o.order_type),
            str(o.status),
            str(o.remaining_amount),
            "" if o.requested_price is None else str(o.requested_price),
        )
        for o in orders
    ]
    _print_table(title, header, rows, out, right={"remaining", "price"})


def print_accounts(accounts: Sequence[Account], *, out: TextIO | None = None) -> None:
    """A table of the accounts the token can act on."""
    out = out or sys.stdout
    header = ("account id", "name", "type", "balance (RAT)", "copy trading")
    rows = [
        (
            a.account_id,
            a.account_name,
            str(a.account_type),
            str(a.total_balance_in_rat),
            "yes" if a.is_copy_trading_account else "no",
        )
        for a in accounts
    ]
    _print_table(f"{len(accounts)} accounts", header, rows, out, right={"balance (RAT)"})


def print_json(document: object, *, out: TextIO | None = None) -> None:
    """The one JSON document `--json` promises on stdout."""
    out = out or sys.stdout
    json.dump(document, out, indent=2, default=_json_value)
    out.write("\n")
    out.flush()


def _json_value(value: object) -> object:
    # Decimals stay exact as strings; timestamps are ISO 8601.
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _print_table(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    out: TextIO,
    *,
    right: set[str],
) -> None:
    if _use_rich(out):
        table = Table(title=title, title_justify="left")
        for index, name in enumerate(header):
            # The first column holds ids: never cut or fold one; narrow the others instead.
            widest = max([len(name), *(len(row[0]) for row in rows)]) if index == 0 else None
            table.add_column(
                name,
                justify="right" if name in right else "left",
                no_wrap=index == 0,
                min_width=widest,
                overflow="fold",
            )
        for row in rows:
            table.add_row(*row)
        _console(out).print(table)
        return
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    out.write(f"{title}\n")
    for line in (header, *rows):
        cells = [
            f"{c:>{w}}" if h in right else f"{c:<{w}}"
            for c, w, h in zip(line, widths, header, strict=True)
        ]
        out.write("  " + "  ".join(cells).rstrip() + "\n")
    out.flush()


def _use_rich(out: TextIO) -> bool:
    # Piped output stays plain text, one record a line, for grep and awk.
    return HAVE_RICH and out.isatty()


def _console(out: TextIO) -> Console:
    # Never read markup out of server-supplied text.
    return Console(file=out, markup=False, highlight=False)
