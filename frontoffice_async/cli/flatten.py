"""The `flatten` command: stop accounts (orders, the stop orders given, positions), verified.

It calls the library's `FrontOfficeClient.flatten` and nothing else: a dry run for
`--dry-run` and for the counts the prompt shows, then the real run. What it prints is read
from the `FlattenResult` (`flatreport`); `--json` is exactly its `as_dict()`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from . import flatreport, output
from .common import (
    OPTIONS,
    BulkRun,
    ReportedError,
    UsageError,
    add_options,
    confirm,
    error_document,
    flatten_exit_code,
    make_client,
    not_empty,
    positive_int,
)
from .idfile import read_entries
from .progress import ProgressBar, progress_bar

if TYPE_CHECKING:
    from frontoffice_async import FlattenResult, FrontOfficeClient

__all__ = ["add_command"]

#: What `accounts=` of `flatten` is given: None (the configured account), "all", or ids.
Selection = str | list[str] | None


class JournalError(Exception):
    """The journal could not be written (`--journal`): the run stopped there."""


def add_command(commands: Any) -> None:
    """Register `flatten` on the CLI's subparsers (`commands`)."""
    flatten = commands.add_parser(
        "flatten",
        help="stop accounts: cancel open orders and the stop orders given, close positions",
        description="Flatten accounts with the library's flatten: per account, cancel the "
        "open orders, cancel the stop orders given (no endpoint lists them: keep their ids), "
        "close the open positions, and check with fresh snapshots, up to --rounds rounds; "
        "exit 0 only when every account is verified flat. Without --yes, show what would be "
        "done and ask first.",
    )
    arg = flatten.add_argument
    which = flatten.add_mutually_exclusive_group()
    which.add_argument(
        "--all-accounts", action="store_true", help="every account the token can act on"
    )
    which.add_argument(
        "--account",
        metavar="ID",
        action="append",
        dest="accounts",
        help="an account to flatten (repeat for several; default: --account-id)",
    )
    arg("--market", metavar="M", help="only market M: its orders and positions")
    arg("--keep-positions", action="store_true", help="leave positions open (orders only)")
    arg(
        "--stop-orders",
        metavar="FILE",
        help="stop-order ids to cancel, one a line: `ID`, or `ACCOUNT_ID ID` with several "
        "accounts (blank lines and # comments skipped; - = stdin)",
    )
    arg(
        "--rounds",
        metavar="N",
        type=positive_int,
        default=3,
        help="rounds that act, at most (default: %(default)s)",
    )
    arg("--dry-run", action="store_true", help="show what would be done; send nothing")
    arg("--journal", metavar="FILE", help="append a JSON Lines record of the run to FILE")
    arg("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_options(flatten, OPTIONS)
    flatten.set_defaults(handler=_cmd_flatten, command="flatten")


async def _cmd_flatten(args: argparse.Namespace) -> int:
    not_empty(args, "market", "stop_orders", "journal")
    selection = _selection(args)
    if not (args.yes or args.dry_run):
        if args.stop_orders == "-":
            raise UsageError("--stop-orders - reads stdin, so no answer can: pass --yes")
        if not output.is_terminal(sys.stdin):
            # Refuse before touching the network: there is no one to answer the question.
            raise UsageError("flatten needs confirmation: stdin is not a terminal; pass --yes")
    if args.journal is not None:
        _check_journal(args.journal)
    bar = progress_bar(args)
    run = BulkRun(on_each=bar.advance if bar else None)
    async with make_client(args, need_account=selection is None) as client:
        with _reporting_partial(run, args, bar):
            stops = await _stop_orders(args, selection, client.account_id)
            result = await _flatten(client, args, run, bar, selection, stops)
        # Reported before the client closes: a Ctrl-C during the close cannot lose it.
        _report(result, args, stops)
    if result.journal_error is not None:
        # The run went on without its record: what was asked (--journal) was not done.
        output.note(f"error: cannot write the journal {args.journal}: {result.journal_error}")
    return flatten_exit_code(result)


def _selection(args: argparse.Namespace) -> Selection:
    if args.all_accounts:
        return "all"
    if args.accounts is None:
        return None
    for account in args.accounts:
        if not account.strip():
            raise UsageError("--account must not be empty (leave the option out instead)")
    return list(dict.fromkeys(args.accounts))


def _check_journal(path: str) -> None:
    """Open the journal as the library will (appended, created 0600), so that a path that
    cannot be written is a usage error before anything is sent."""
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        os.close(os.open(path, flags, 0o600))
    except OSError as exc:
        raise UsageError(f"cannot write the journal {path}: {exc.strerror or exc}") from None


async def _flatten(
    client: FrontOfficeClient,
    args: argparse.Namespace,
    run: BulkRun,
    bar: ProgressBar | None,
    selection: Selection,
    stops: dict[str, list[str]],
) -> FlattenResult:
    """The dry run (for --dry-run, and for what the prompt shows), then the real run."""
    asked: dict[str, Any] = {
        "accounts": selection,
        "market_id": args.market,
        "close_positions": not args.keep_positions,
        "stop_order_ids": stops,
        "rounds": args.rounds,
        "concurrency": args.concurrency,
    }
    total = None
    if args.dry_run or not args.yes:
        # The prompt's dry run is journaled too: what was open when the person said yes.
        preview = await _call(client, args, asked, dry_run=True)
        plans = flatreport.plan_of(preview, stops)
        if args.dry_run or flatreport.is_flat(plans):
            return preview  # nothing to ask about: the snapshots showed nothing to do
        lines, question = flatreport.question(plans)
        for line in lines:  # one note a line: a note escapes a line break
            output.note(line)
        await confirm(question, nothing="nothing was cancelled or closed")
        total = sum(p.orders + p.stops for p in plans.values())
        if args.market is not None:  # positions are then closed one by one, with outcomes
            total += sum(p.positions for p in plans.values())
    if bar:
        bar.start(total, "flattening")
    run.sending = True
    return await _call(client, args, asked, on_outcome=run.on_outcome)


async def _call(
    client: FrontOfficeClient, args: argparse.Namespace, asked: dict[str, Any], **more: Any
) -> FlattenResult:
    try:
        return await client.flatten(**asked, journal=args.journal, **more)
    except OSError as exc:  # only the journal writes to a file: the network's errors are typed
        if args.journal is None:
            raise
        reason = exc.strerror or str(exc)
        raise JournalError(f"cannot write the journal {args.journal}: {reason}") from None


# --- the stop orders given ----------------------------------------------------------------------


async def _stop_orders(
    args: argparse.Namespace, selection: Selection, default: str | None
) -> dict[str, list[str]]:
    """The stop-order ids of --stop-orders, per account (see `stop_orders_by_account`)."""
    if args.stop_orders is None:
        return {}
    entries = await read_entries(args.stop_orders, kind="stop-order")
    what = "stdin" if args.stop_orders == "-" else args.stop_orders
    if not entries:
        output.note(f"warning: --stop-orders {what} holds no stop-order id")
    return stop_orders_by_account(entries, selection, default, what=what)


def stop_orders_by_account(
    entries: Sequence[tuple[int, str]], selection: Selection, default: str | None, *, what: str
) -> dict[str, list[str]]:
    """Lines of `ID` (the one account flattened) or of `ACCOUNT_ID ID` (any account
    flattened), never both in one file; UsageError for anything else (docs/cli.md)."""
    single = selection is None or (isinstance(selection, list) and len(selection) == 1)
    asked = [default] if selection is None else selection if isinstance(selection, list) else []
    by_account: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    forms: dict[int, int] = {}  # fields per line -> first line with that many
    for number, entry in entries:
        fields = entry.split()
        if len(fields) > 2:
            raise _bad(what, number, f"{len(fields)} fields; expected `ID` or `ACCOUNT_ID ID`")
        forms.setdefault(len(fields), number)
        if len(forms) > 1:
            raise _bad(
                what,
                number,
                f"mixes the two forms (line {forms[1]} is `ID`, line {forms[2]} "
                "`ACCOUNT_ID ID`): give every line the same form",
            )
        if len(fields) == 1:
            if not single:
                raise _bad(
                    what,
                    number,
                    "gives an id without its account, and several accounts are flattened: "
                    "write `ACCOUNT_ID ID`",
                )
            account, stop_id = str(asked[0]), fields[0]
        else:
            account, stop_id = fields
            if asked and account not in asked:
                raise _bad(what, number, f"names account {account}, which is not flattened")
        if owner.setdefault(stop_id, account) != account:
            raise _bad(what, number, f"gives stop order {stop_id} to a second account")
        ids = by_account.setdefault(account, [])
        if stop_id not in ids:
            ids.append(stop_id)
    return by_account


def _bad(what: str, number: int, reason: str) -> UsageError:
    return UsageError(f"--stop-orders {what}: line {number} {reason}")


# --- reporting ----------------------------------------------------------------------------------


def _report(result: FlattenResult, args: argparse.Namespace, stops: dict[str, list[str]]) -> None:
    nothing = _nothing_done(result, stops, args)
    if nothing is not None:
        # Nothing was open: one line says so, not a table of zeros. With --json it is for
        # the person, on stderr.
        if not args.json:
            output.say(nothing)
            return
        output.note(nothing)
    if args.json:
        output.print_json(result.as_dict())
    elif result.dry_run:
        flatreport.print_dry_run(result, stops, args.market)
    else:
        flatreport.print_flatten(result, args.market)


def _nothing_done(
    result: FlattenResult, stops: dict[str, list[str]], args: argparse.Namespace
) -> str | None:
    """The one line for a run (or the prompt's dry run) that found nothing to do anywhere."""
    if result.dry_run:
        plans = flatreport.plan_of(result, stops)
        flat = flatreport.is_flat(plans)
    else:
        flat = result.verified and not any(
            len(a.orders) or len(a.stop_orders) or a.positions.accepted
            for a in result.accounts.values()
        )
    if not flat:
        return None
    return flatreport.nothing_line(result, args.market, dry_run=args.dry_run)


@contextlib.contextmanager
def _reporting_partial(
    run: BulkRun, args: argparse.Namespace, bar: ProgressBar | None
) -> Iterator[None]:
    """When Ctrl-C or SIGTERM interrupts the run, or it fails after some outcomes came in
    (or its journal cannot be written), report what was done first."""
    from frontoffice_async import FrontOfficeError  # noqa: PLC0415 - `--help` stays light

    try:
        yield
    except asyncio.CancelledError:
        _stop(bar)
        _report_partial(run, args, error=None)
        raise
    except (FrontOfficeError, JournalError) as exc:
        _stop(bar)
        if not run.done() and isinstance(exc, FrontOfficeError):
            raise  # nothing done: the error alone says it all
        _report_partial(run, args, error=exc)
        raise ReportedError(exc) from exc
    finally:
        _stop(bar)


def _report_partial(run: BulkRun, args: argparse.Namespace, *, error: Exception | None) -> None:
    """What was done so far: the `--json` document, or counts, and a note on stderr."""
    end = {"interrupted": True} if error is None else {"error": error_document(error)}
    document = run.flatten_document()
    if args.json:
        output.print_json({**document, **end})
    what = "interrupted" if error is None else "stopped by an error"
    if not run.sending:
        output.note(f"{what} before anything was sent: nothing was cancelled or closed")
        return
    counts = ", ".join(f"{n} {c.replace('_', ' ')}" for c, n in document["counts"].items())
    journal = f"; the journal {args.journal} has every request" if args.journal else ""
    output.note(
        f"{what}: {len(document['outcomes'])} cancels and closes answered ({counts}); NOT "
        f"verified: orders and positions may still be open (`frontoffice flatten --dry-run` "
        f"lists them){journal}"
    )


def _stop(bar: ProgressBar | None) -> None:
    if bar:
        bar.stop()
