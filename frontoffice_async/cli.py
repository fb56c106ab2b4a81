"""The `frontoffice` command: cancel orders by id or all at once, list accounts, run a demo.

`main` is the console script; `run` is the same command as a coroutine, for tests and embedding.
Every command calls the library's public API; cancel-all is `cancel_all_orders`, nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from frontoffice_async import __version__

from . import _cli_output as output
from . import _demo
from ._cli_common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    OPTIONS,
    BulkRun,
    UsageError,
    add_options,
    check_options,
    exit_code,
    make_client,
    run_main,
)

if TYPE_CHECKING:
    from frontoffice_async import BulkCancelResult, FrontOfficeClient, Order

__all__ = ["main", "make_parser", "run"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`) and return the exit code.

    Exit codes: 0 nothing failed (and cancel-all verified), 1 something failed or is still
    open, 2 usage or configuration error, 130 Ctrl-C, 143 SIGTERM, 141 stdout closed early.
    """
    code = run_main(lambda: run(argv))
    if argv is None:
        # The process is about to exit: a late Ctrl-C must not print a traceback now.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    return code


async def run(argv: Sequence[str] | None = None) -> int:
    """The command as a coroutine: parse `argv`, do the work, return the exit code.

    Cancelling it (Ctrl-C under `main`) makes a bulk command report what was done so far
    (`"interrupted": true` with --json) before `CancelledError` propagates.
    """
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error; argparse printed it
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    from frontoffice_async import FrontOfficeError  # noqa: PLC0415 - `--help` stays light

    try:
        check_options(args)
        return int(await args.handler(args))
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ValueError as exc:  # bad input the client refused before any request
        _error(str(exc))
        return EXIT_USAGE
    except FrontOfficeError as exc:
        _error(str(exc))
        return EXIT_FAILED


# --- the parser ---------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of `frontoffice` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="frontoffice",
        description="Cancel Front Office orders: by id, thousands at once, or all of them.",
        epilog="Exit codes: 0 nothing failed (cancel-all: and verified), 1 something failed or "
        "is still open, 2 usage or configuration error, 130 interrupted (Ctrl-C), 143 "
        "terminated (SIGTERM), 141 stdout closed early.",
    )
    add_options(parser, OPTIONS, accepted=False)  # global options may precede the command
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _add_cancel(commands)
    _add_cancel_all(commands)
    accounts = commands.add_parser(
        "accounts",
        help="list the accounts the token can act on",
        description="List the trading accounts the token can act on (no account id needed).",
    )
    add_options(accounts, ("base_url", "token", "account_id", "timeout", "json"))
    accounts.set_defaults(handler=_cmd_accounts, command="accounts")
    _demo.add_commands(commands)
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
    if args.ids and args.from_file:
        raise UsageError("give ids as arguments or with --from-file, not both")
    ids = list(args.ids) if args.ids else _read_ids(args.from_file) if args.from_file else []
    if not ids:
        raise UsageError("no order ids: pass them as arguments or with --from-file")
    bar = output.progress_bar(args)
    bulk = BulkRun(on_each=bar.advance if bar else None)
    async with make_client(args, need_account=True) as client:
        if bar:
            bar.start(len(dict.fromkeys(ids)))
        try:
            result = await client.cancel_orders(
                bulk.feed(ids), concurrency=args.concurrency, on_outcome=bulk.on_outcome
            )
        except asyncio.CancelledError:
            _stop(bar)
            done = bulk.done()
            unfinished = [i for i in dict.fromkeys(ids) if i not in done]
            _report_interrupted(bulk.partial(), args, unfinished=unfinished)
            raise
        finally:
            _stop(bar)
        # Reported before the client closes: a Ctrl-C during the close cannot lose it.
        if args.json:
            output.print_json(result.as_dict())
        else:
            output.print_result(result, verify=False, latencies=bulk.latencies)
    return exit_code(result, verify=False)


async def _cmd_cancel_all(args: argparse.Namespace) -> int:
    if not (args.yes or args.dry_run) and not sys.stdin.isatty():
        # Refuse before touching the network: there is no one to answer the question.
        raise UsageError("cancel-all needs confirmation: stdin is not a terminal; pass --yes")
    bar = output.progress_bar(args)
    bulk = BulkRun(on_each=bar.advance if bar else None)
    async with make_client(args, need_account=True) as client:
        try:
            result = await _cancel_all(client, args, bulk, bar)
        except asyncio.CancelledError:
            _stop(bar)
            # Rounds are not known from outcomes alone: null, not a guess.
            _report_interrupted(bulk.partial(), args, rounds=None)
            raise
        finally:
            _stop(bar)
        if result is None:
            return EXIT_USAGE  # not confirmed
        _report_cancel_all(result, args, _account_of(client))
    return EXIT_OK if args.dry_run else exit_code(result, verify=True)


async def _cancel_all(
    client: FrontOfficeClient,
    args: argparse.Namespace,
    bulk: BulkRun,
    bar: output.ProgressBar | None,
) -> BulkCancelResult[Order] | None:
    """The dry run (for --dry-run, and for the count the prompt shows), then the real call."""
    filters: dict[str, Any] = {"market_id": args.market, "side": args.side}
    total = None
    if args.dry_run or not args.yes:
        preview = await client.cancel_all_orders(**filters, dry_run=True)
        if args.dry_run:
            return preview
        if not preview.remaining:
            return preview  # nothing to ask about; verified unless records were unreadable
        what = _what(len(preview.remaining), client, args)
        if not _confirm(f"cancel {what}? [y/N] "):
            return None
        total = len(preview.remaining)
    if bar:
        bar.start(total)
    return await client.cancel_all_orders(
        **filters, concurrency=args.concurrency, on_outcome=bulk.on_outcome
    )


def _report_cancel_all(
    result: BulkCancelResult[Order], args: argparse.Namespace, account: str
) -> None:
    nothing_selected = result.rounds == 0 and not result.remaining
    if nothing_selected and (args.market or args.side) and result.filtered_out:
        # A mistyped market matches nothing and leaves nothing open: say what does exist.
        markets = ", ".join(f"{m} ({n})" for m, n in sorted(result.filtered_out.items()))
        output.note(
            f"warning: no open order on account {account} matches the filter; the account "
            f"has open orders on: {markets}"
        )
    if nothing_selected and not args.dry_run:
        selection = output.describe_selection(0, account, args.market, args.side)
        output.note(f"nothing to do: {selection}")
    if args.json:
        output.print_json(result.as_dict())
    elif args.dry_run:
        what = output.describe_selection(len(result.remaining), account, args.market, args.side)
        output.print_orders(result.remaining, title=f"dry run: {what} would be cancelled")
        output.print_problems(result)  # unreadable records, if any
    else:
        output.print_result(result, verify=True)


def _report_interrupted(
    partial: BulkCancelResult[Order], args: argparse.Namespace, **extra: Any
) -> None:
    """What an interrupted bulk command did, before its CancelledError propagates."""
    rounds = extra.pop("rounds", partial.rounds)
    if args.json:
        document = {**partial.as_dict(), "rounds": rounds, "interrupted": True, **extra}
        output.print_json(document)
    else:
        output.print_summary({"": partial}, verify=False)
        output.print_problems(partial)
    unfinished = extra.get("unfinished")
    left = "" if unfinished is None else f", {len(unfinished)} not"
    output.note(
        f"interrupted: {len(partial)} ids dealt with{left} (ids without an outcome were not "
        "sent, or sent with no answer yet: check them before trusting their state)"
    )


async def _cmd_accounts(args: argparse.Namespace) -> int:
    async with make_client(args, need_account=False) as client:
        accounts = await client.list_accounts()
    if args.json:
        import attrs  # noqa: PLC0415 - only this command needs it; `--help` stays light

        output.print_json([attrs.asdict(a) for a in accounts])
    else:
        output.print_accounts(accounts)
    return EXIT_OK


# --- pieces -------------------------------------------------------------------------------------


def _stop(bar: output.ProgressBar | None) -> None:
    if bar:
        bar.stop()


def _account_of(client: FrontOfficeClient) -> str:
    assert client.account_id is not None, "make_client(need_account=True) checked it"
    return client.account_id


def _what(count: int, client: FrontOfficeClient, args: argparse.Namespace) -> str:
    return output.describe_selection(count, _account_of(client), args.market, args.side)


def _read_ids(path: str) -> list[str]:
    """Ids from a file (or stdin for `-`), one a line; blank lines and `#` comments skipped."""
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as file:
                text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        what = "stdin" if path == "-" else path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read ids from {what}: {reason}") from None
    ids = []
    for line in text.splitlines():
        order_id = line.split("#", 1)[0].strip()
        if order_id:
            ids.append(order_id)
    return ids


def _confirm(prompt: str) -> bool:
    """Ask on stderr, read one line from stdin; only `y`/`yes` confirms."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    try:
        with _interruptible():
            line = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        raise asyncio.CancelledError from None
    except (OSError, ValueError):  # closed or unreadable stdin
        line = ""
    if not line:
        _error("not confirmed (no answer on stdin); nothing was cancelled")
        return False
    if line.strip().lower() not in {"y", "yes"}:
        output.note("not confirmed; nothing was cancelled")
        return False
    return True


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Let Ctrl-C interrupt a blocking read on the loop's thread.

    The loop's signal handler only runs between callbacks, which cannot happen while the
    thread blocks in `readline`; the default handler raises KeyboardInterrupt there.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _error(message: str) -> None:
    output.note(f"error: {' '.join(message.split())}")
