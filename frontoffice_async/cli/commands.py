"""The `frontoffice` command line: its parser, and `cancel`, `cancel-all` and `accounts`.

`run_command` is `cli.run`. Every command calls the library's public API; cancel-all is
`cancel_all_orders`, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from frontoffice_async import __version__

from . import demo, guard, output
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OPTIONS,
    BulkRun,
    ReportedError,
    UsageError,
    add_options,
    check_options,
    confirm,
    error_document,
    exit_code,
    make_client,
    not_empty,
)
from .flatten import add_command as add_flatten
from .idfile import read_ids
from .process import EXIT_OUTPUT, OutputError, silence_stdout
from .progress import ProgressBar, progress_bar

if TYPE_CHECKING:
    from frontoffice_async import BulkCancelResult, FrontOfficeClient, Order

__all__ = ["make_parser", "run_command"]


async def run_command(argv: Sequence[str] | None = None) -> int:
    """Parse `argv`, do the work, return the exit code (see `cli.run`)."""
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or --version: argparse printed it
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except UsageError as exc:  # argparse printed the usage line
        return _failed(exc, EXIT_USAGE, json=_wants_json(argv))
    from frontoffice_async import FrontOfficeError  # noqa: PLC0415 - `--help` stays light

    try:
        if sys.stdout is None:  # `>&-`: refuse before doing anything that could not be told
            raise OutputError("stdout is closed")
        check_options(args)
        return int(await args.handler(args))
    except OutputError as exc:
        output.note(f"error: cannot write the output: {exc}")
        silence_stdout()
        return EXIT_OUTPUT
    except ReportedError as exc:  # the partial report is out: only the error line is left
        return _failed(exc.error, EXIT_FAILED, json=False)
    except (UsageError, ValueError) as exc:  # ValueError: input the client refused, unsent
        return _failed(exc, EXIT_USAGE, json=getattr(args, "json", False))
    except FrontOfficeError as exc:
        return _failed(exc, EXIT_FAILED, json=getattr(args, "json", False))


def _failed(error: Exception, code: int, *, json: bool) -> int:
    """One `error:` line on stderr and, with --json, `{"error": {...}}` on stdout: a script
    reading stdout always gets one JSON document."""
    if json:
        with contextlib.suppress(OutputError):  # the error line still says what went wrong
            output.print_json({"error": error_document(error)})
    output.note(f"error: {output.error_text(error)}")
    return code


def _wants_json(argv: Sequence[str] | None) -> bool:
    words = list(sys.argv[1:] if argv is None else argv)
    return "--json" in (words[: words.index("--")] if "--" in words else words)


# --- the parser ---------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is a UsageError (after the usage line), not an exit."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: {message}")


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of `frontoffice` and its subcommands."""
    parser = _Parser(
        prog="frontoffice",
        description="Cancel Front Office orders: by id, thousands at once, or all of them.",
        epilog="Exit codes: 0 nothing failed (cancel-all: and verified), 1 something failed or "
        "is still open, 2 usage or configuration error, 74 the output could not be written, "
        "130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 141 stdout closed early.",
    )
    add_options(parser, OPTIONS, accepted=False)  # global options may precede the command
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_cancel(commands)
    _add_cancel_all(commands)
    add_flatten(commands)
    accounts = commands.add_parser(
        "accounts",
        help="list the accounts the token can act on",
        description="List the trading accounts the token can act on (no account id needed).",
    )
    add_options(accounts, ("base_url", "token", "account_id", "timeout", "json"))
    accounts.set_defaults(handler=_cmd_accounts, command="accounts")
    demo.add_commands(commands)
    guard.add_command(commands)
    return parser


def _add_cancel(commands: Any) -> None:
    cancel = commands.add_parser(
        "cancel",
        help="cancel orders by id",
        description="Cancel the given orders. An unknown id (404) counts as not found and an "
        "order that is already final (400) as not active; neither is a failure.",
    )
    cancel.add_argument("ids", nargs="*", metavar="ID", help="order ids to cancel")
    cancel.add_argument(
        "--from-file",
        metavar="FILE",
        help="read ids from FILE, one a line (blank lines and # comments skipped; - = stdin)",
    )
    add_options(cancel, OPTIONS)
    cancel.set_defaults(handler=_cmd_cancel, command="cancel")


def _add_cancel_all(commands: Any) -> None:
    cancel_all = commands.add_parser(
        "cancel-all",
        help="cancel every open order of the account (optionally one market/side), verified",
        description="Cancel the account's open orders (optionally one market and/or side) "
        "with the library's cancel_all_orders: snapshot, cancel, snapshot again and cancel "
        "what is still open, up to 3 rounds; exit 0 only when a last snapshot shows none "
        "left. Without --yes, show the count and ask first.",
    )
    cancel_all.add_argument("--market", metavar="M", help="only orders of market M")
    cancel_all.add_argument("--side", metavar="S", help="only buy or sell orders (any case)")
    cancel_all.add_argument(
        "--dry-run",
        action="store_true",
        help="list the orders that would be cancelled; cancel none",
    )
    cancel_all.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    add_options(cancel_all, OPTIONS)
    cancel_all.set_defaults(handler=_cmd_cancel_all, command="cancel-all")


# --- commands -----------------------------------------------------------------------------------


async def _cmd_cancel(args: argparse.Namespace) -> int:
    not_empty(args, "from_file")
    if args.ids and args.from_file is not None:
        raise UsageError("give ids as arguments or with --from-file, not both")
    bar = progress_bar(args)
    bulk = BulkRun(on_each=bar.advance if bar else None)
    ids: list[str] = list(args.ids)
    async with make_client(args, need_account=True) as client:
        with _reporting_partial(bulk, args, bar, ids=ids):
            result = await _cancel(client, args, bulk, bar, ids)
        # Reported before the client closes: a Ctrl-C during the close cannot lose it.
        if args.json:
            output.print_json(result.as_dict())
        else:
            output.print_result(result, verify=False, latencies=bulk.latencies)
    return exit_code(result, verify=False)


async def _cancel(
    client: FrontOfficeClient,
    args: argparse.Namespace,
    bulk: BulkRun,
    bar: ProgressBar | None,
    ids: list[str],
) -> BulkCancelResult[Order]:
    """Read the ids of --from-file into `ids` (the caller's list), then cancel them."""
    if args.from_file is not None:
        ids += await read_ids(args.from_file)
    if not ids:
        raise UsageError("no order ids: pass them as arguments or with --from-file")
    if bar:
        bar.start(len(dict.fromkeys(ids)))
    bulk.sending = True
    return await client.cancel_orders(
        bulk.feed(ids), concurrency=args.concurrency, on_outcome=bulk.on_outcome
    )


async def _cmd_cancel_all(args: argparse.Namespace) -> int:
    not_empty(args, "market", "side")
    if not (args.yes or args.dry_run) and not output.is_terminal(sys.stdin):
        # Refuse before touching the network: there is no one to answer the question.
        raise UsageError("cancel-all needs confirmation: stdin is not a terminal; pass --yes")
    bar = progress_bar(args)
    bulk = BulkRun(on_each=bar.advance if bar else None)
    async with make_client(args, need_account=True) as client:
        with _reporting_partial(bulk, args, bar, ids=None):
            result = await _cancel_all(client, args, bulk, bar)
        _report_cancel_all(result, args, _account_of(client))
    return EXIT_OK if args.dry_run else exit_code(result, verify=True)


async def _cancel_all(
    client: FrontOfficeClient,
    args: argparse.Namespace,
    bulk: BulkRun,
    bar: ProgressBar | None,
) -> BulkCancelResult[Order]:
    """The dry run (for --dry-run, and for the count the prompt shows), then the real call."""
    filters: dict[str, Any] = {"market_id": args.market, "side": args.side}
    total = None
    if args.dry_run or not args.yes:
        preview = await client.cancel_all_orders(**filters, dry_run=True)
        if args.dry_run or not preview.remaining:
            return preview  # nothing to ask about; verified unless records were unreadable
        what = _what(len(preview.remaining), client, args)
        await confirm(f"cancel {what}? [y/N] ")
        total = len(preview.remaining)
    if bar:
        bar.start(total)
    bulk.sending = True
    return await client.cancel_all_orders(
        **filters, concurrency=args.concurrency, on_outcome=bulk.on_outcome
    )


def _report_cancel_all(
    result: BulkCancelResult[Order], args: argparse.Namespace, account: str
) -> None:
    nothing_selected = result.rounds == 0 and not result.remaining
    filtered = args.market is not None or args.side is not None
    if nothing_selected and filtered and result.filtered_out:
        # A mistyped market matches nothing and leaves nothing open: say what does exist.
        markets = ", ".join(f"{m} ({n})" for m, n in sorted(result.filtered_out.items()))
        output.note(
            f"warning: no open order on account {account} matches the filter; the account "
            f"has open orders on: {markets}"
        )
    if nothing_selected and result.verified:
        # The snapshot showed nothing to cancel (and nothing unreadable): one line says it,
        # not a table of zeros. With --json it is for the human, on stderr.
        nothing = "dry run: " if args.dry_run else ""
        nothing += "nothing to cancel: " + output.describe_selection(
            0, account, args.market, args.side
        )
        if not args.json:
            output.say(nothing)
            return
        output.note(nothing)
    if args.json:
        output.print_json(result.as_dict())
    elif args.dry_run:
        what = output.describe_selection(len(result.remaining), account, args.market, args.side)
        output.print_orders(result.remaining, title=f"dry run: would cancel {what}")
        output.print_problems(result, remaining=False)  # listed above: only the unreadable
    else:
        output.print_result(result, verify=True)


async def _cmd_accounts(args: argparse.Namespace) -> int:
    async with make_client(args, need_account=False) as client:
        accounts = await client.list_accounts()
    if args.json:
        import attrs  # noqa: PLC0415 - only this command needs it; `--help` stays light

        output.print_json([attrs.asdict(a) for a in accounts])
    else:
        output.print_accounts(accounts)
    return EXIT_OK


# --- a bulk call cut short ----------------------------------------------------------------------


@contextlib.contextmanager
def _reporting_partial(
    bulk: BulkRun, args: argparse.Namespace, bar: ProgressBar | None, *, ids: list[str] | None
) -> Iterator[None]:
    """Around a bulk command: when Ctrl-C or SIGTERM interrupts it, or the library fails
    after some outcomes came in, report those first. `ids`: the ids of `cancel` (its
    `unfinished` are those without an outcome); None for cancel-all."""
    from frontoffice_async import FrontOfficeError  # noqa: PLC0415

    try:
        yield
    except asyncio.CancelledError:
        _stop(bar)
        _report_partial(bulk, args, ids=ids, error=None)
        raise
    except FrontOfficeError as exc:
        _stop(bar)
        if not bulk.done():
            raise  # nothing done: the error alone says it all
        _report_partial(bulk, args, ids=ids, error=exc)
        raise ReportedError(exc) from exc
    finally:
        _stop(bar)


def _report_partial(
    bulk: BulkRun, args: argparse.Namespace, *, ids: list[str] | None, error: Exception | None
) -> None:
    """What was done so far: the summary (or `--json` document) and a note on stderr."""
    end = {"interrupted": True} if error is None else {"error": error_document(error)}
    done = bulk.done()
    unfinished = None if ids is None else [i for i in dict.fromkeys(ids) if i not in done]
    if args.json:
        extra = {} if unfinished is None else {"unfinished": unfinished}
        output.print_json({**bulk.document(snapshots=ids is None), **extra, **end})
    elif bulk.sending:
        partial = bulk.partial()
        output.print_summary({"": partial}, verify=False)
        output.print_problems(partial)
    what = "interrupted" if error is None else "stopped by an error"
    if not bulk.sending:
        output.note(f"{what} before any cancel was sent: nothing was cancelled")
        return
    if unfinished is None:
        output.note(
            f"{what}: {len(done)} orders dealt with, NOT verified (orders may still be open: "
            "`frontoffice cancel-all --dry-run` lists them)"
        )
        return
    output.note(
        f"{what}: {len(done)} ids dealt with, {len(unfinished)} not (an id without an outcome "
        "was not sent, or sent with no answer yet: check it before trusting its state)"
    )


# --- pieces -------------------------------------------------------------------------------------


def _stop(bar: ProgressBar | None) -> None:
    if bar:
        bar.stop()


def _account_of(client: FrontOfficeClient) -> str:
    assert client.account_id is not None, "make_client(need_account=True) checked it"
    return client.account_id


def _what(count: int, client: FrontOfficeClient, args: argparse.Namespace) -> str:
    return output.describe_selection(count, _account_of(client), args.market, args.side)
