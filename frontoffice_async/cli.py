"""The `frontoffice` command: cancel orders by id or all at once, list accounts, run a demo.

`main` is the console script; `run` is the same command as a coroutine, for tests and embedding.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from . import _cli_output as output
from ._version import __version__
from .client import FrontOfficeClient
from .errors import FrontOfficeError
from .models import OpenOrder, OrderSide
from .retry import RetryPolicy

__all__ = ["main", "run"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_ENV_BASE_URL = "FRONTOFFICE_BASE_URL"
_ENV_TOKEN = "FRONTOFFICE_TOKEN"  # noqa: S105 - the variable's name, not a secret
_ENV_ACCOUNT_ID = "FRONTOFFICE_ACCOUNT_ID"
#: The library's default policy; a module attribute so tests can make backoff instant.
_RETRY = RetryPolicy()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`) and return the exit code."""
    try:
        return asyncio.run(run(argv))
    except (KeyboardInterrupt, asyncio.CancelledError):
        # `run` has already reported what was done before the interrupt.
        return EXIT_INTERRUPTED


async def run(argv: Sequence[str] | None = None) -> int:
    """The command as a coroutine: parse `argv`, do the work, return the exit code.

    Exit codes: 0 nothing failed, 1 some ids (or the call) failed, 2 usage or configuration
    error. Ctrl-C cancels the task: the partial summary is printed and `CancelledError`
    propagates (`main` turns it into 130).
    """
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a usage error; argparse printed it
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _fill_defaults(args)
    try:
        return int(await args.handler(args))
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except ValueError as exc:  # bad input caught by the client, before any request
        _error(str(exc))
        return EXIT_USAGE
    except FrontOfficeError as exc:
        _error(str(exc))
        return EXIT_FAILED


class UsageError(Exception):
    """A command line or configuration problem: one line on stderr, exit code 2."""


# --- the parser ---------------------------------------------------------------------------------


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of `frontoffice` and its subcommands."""
    # SUPPRESS lets the options go before or after the subcommand; `_fill_defaults` sets them.
    connection = argparse.ArgumentParser(add_help=False)
    group = connection.add_argument_group("connection")
    group.add_argument(
        "--base-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help=f"API root URL (env {_ENV_BASE_URL})",
    )
    group.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help=f"bearer token (env {_ENV_TOKEN}; prefer the variable: flags show up in `ps`)",
    )
    group.add_argument(
        "--account-id",
        metavar="ID",
        default=argparse.SUPPRESS,
        help=f"account to act on (env {_ENV_ACCOUNT_ID})",
    )
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("requests and output")
    group.add_argument(
        "--concurrency",
        metavar="N",
        type=_positive_int,
        default=argparse.SUPPRESS,
        help="requests in flight at once for bulk work (default 32; demo 64)",
    )
    group.add_argument(
        "--timeout",
        metavar="S",
        type=_positive_float,
        default=argparse.SUPPRESS,
        help="seconds per attempt (default 10)",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON document on stdout and nothing else there",
    )
    group.add_argument(
        "--no-progress",
        action="store_true",
        default=argparse.SUPPRESS,
        help="no progress bar (it is only drawn when stderr is a terminal)",
    )

    parser = argparse.ArgumentParser(
        prog="frontoffice",
        description="Cancel Front Office orders: by id, thousands at once, or all of them.",
        epilog="Exit codes: 0 nothing failed, 1 some ids failed, 2 usage or configuration "
        "error, 130 interrupted (Ctrl-C).",
        parents=[connection, common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    cancel = commands.add_parser(
        "cancel",
        parents=[connection, common],
        help="cancel orders by id",
        description="Cancel the given orders. An unknown id (404) counts as not found, "
        "not as a failure.",
    )
    cancel.add_argument("ids", nargs="*", metavar="ID", help="order ids to cancel")
    cancel.add_argument(
        "--from-file",
        metavar="FILE",
        help="read ids from FILE, one a line (blank lines and # comments skipped; - = stdin)",
    )
    cancel.set_defaults(handler=_cmd_cancel)

    cancel_all = commands.add_parser(
        "cancel-all",
        parents=[connection, common],
        help="cancel every open order of the account (optionally one market/side)",
        description="Take a snapshot of the account's open orders, filter it, show how many "
        "would be cancelled, ask for confirmation, then cancel them.",
    )
    cancel_all.add_argument("--market", metavar="M", help="only orders of market M")
    cancel_all.add_argument("--side", choices=("buy", "sell"), help="only buy or sell orders")
    cancel_all.add_argument(
        "--dry-run",
        action="store_true",
        help="list the orders that would be cancelled; cancel none",
    )
    cancel_all.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    cancel_all.set_defaults(handler=_cmd_cancel_all)

    accounts = commands.add_parser(
        "accounts",
        parents=[connection, common],
        help="list the accounts the token can act on",
        description="List the trading accounts the token can act on (no account id needed).",
    )
    accounts.set_defaults(handler=_cmd_accounts)

    from . import _demo  # noqa: PLC0415 - the simulator is only loaded for its commands

    _demo.add_commands(commands, common)
    return parser


def _fill_defaults(args: argparse.Namespace) -> None:
    defaults: dict[str, Any] = {
        "base_url": None,
        "token": None,
        "account_id": None,
        "concurrency": None,
        "timeout": 10.0,
        "json": False,
        "no_progress": False,
    }
    for name, value in defaults.items():
        if not hasattr(args, name):
            setattr(args, name, value)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


# --- commands -----------------------------------------------------------------------------------


async def _cmd_cancel(args: argparse.Namespace) -> int:
    if args.ids and args.from_file:
        raise UsageError("give ids as arguments or with --from-file, not both")
    ids = list(args.ids) if args.ids else _read_ids(args.from_file) if args.from_file else []
    if not ids:
        raise UsageError("no order ids: pass them as arguments or with --from-file")
    async with make_client(args, need_account=True) as client:
        account = _account_of(client)
        return await cancel_in_bulk(client, [(account, ids)], args)


async def _cmd_cancel_all(args: argparse.Namespace) -> int:
    if not (args.yes or args.dry_run) and not sys.stdin.isatty():
        # Refuse before touching the network: there is no one to answer the question.
        raise UsageError("cancel-all needs confirmation: stdin is not a terminal; pass --yes")
    async with make_client(args, need_account=True) as client:
        account = _account_of(client)
        orders = await client.open_orders(account_id=account)
        side = None if args.side is None else OrderSide(args.side.capitalize())
        selected = [
            o
            for o in orders
            if (args.market is None or o.market_id == args.market)
            and (side is None or o.side == side)
        ]
        what = _describe_selection(len(selected), account, args.market, args.side)
        if args.dry_run:
            if args.json:
                output.print_json(
                    {"dry_run": True, "account_id": account, "orders": _orders_json(selected)}
                )
            else:
                output.print_orders(selected, title=f"dry run: {what} would be cancelled")
            return EXIT_OK
        if not selected:
            output.note(f"nothing to do: {what}")
            if args.json:
                output.print_json(output.summary_json([], 0.0))
            return EXIT_OK
        if not args.yes:
            answer = _ask(f"cancel {what}? [y/N] ")
            if answer is None:
                _error("not confirmed (no answer on stdin); nothing was cancelled")
                return EXIT_USAGE
            if answer.strip().lower() not in {"y", "yes"}:
                output.note("not confirmed; nothing was cancelled")
                return EXIT_USAGE
        if not args.json:
            output.note(f"cancelling {what}")
        ids = [o.order_id for o in selected]
        return await cancel_in_bulk(client, [(account, ids)], args)


async def _cmd_accounts(args: argparse.Namespace) -> int:
    async with make_client(args, need_account=False) as client:
        accounts = await client.list_accounts()
    if args.json:
        output.print_json([attrs.asdict(a) for a in accounts])
    else:
        output.print_accounts(accounts)
    return EXIT_OK


# --- shared pieces ------------------------------------------------------------------------------


def make_client(args: argparse.Namespace, *, need_account: bool) -> FrontOfficeClient:
    """The client the global options (or the environment) describe; UsageError if incomplete."""
    base_url = args.base_url or os.environ.get(_ENV_BASE_URL)
    token = args.token or os.environ.get(_ENV_TOKEN)
    account_id = args.account_id or os.environ.get(_ENV_ACCOUNT_ID)
    missing = [
        f"{flag} (or {env})"
        for flag, env, value, needed in (
            ("--base-url", _ENV_BASE_URL, base_url, True),
            ("--token", _ENV_TOKEN, token, True),
            ("--account-id", _ENV_ACCOUNT_ID, account_id, need_account),
        )
        if needed and not value
    ]
    if missing or base_url is None or token is None:
        raise UsageError("missing " + ", ".join(missing))
    return FrontOfficeClient(
        base_url,
        token=token,
        account_id=account_id or None,
        retry=_RETRY,
        timeout=args.timeout,
        concurrency=args.concurrency or 32,
    )


async def cancel_in_bulk(
    client: FrontOfficeClient,
    batches: Sequence[tuple[str, Sequence[str]]],
    args: argparse.Namespace,
) -> int:
    """Cancel each (account, ids) batch through `client`, print the summary, return the code."""
    tracker = await output.run_bulk(client, batches, args)
    return EXIT_FAILED if output.report(tracker, batches, args) else EXIT_OK


def _account_of(client: FrontOfficeClient) -> str:
    assert client.account_id is not None, "make_client(need_account=True) checked it"
    return client.account_id


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


def _describe_selection(count: int, account: str, market: str | None, side: str | None) -> str:
    noun = "open order" if count == 1 else "open orders"
    filters = [f for f in (f"market {market}" if market else "", side or "") if f]
    where = f" ({', '.join(filters)})" if filters else ""
    return f"{count} {noun}{where} on account {account}"


def _orders_json(orders: Sequence[OpenOrder]) -> list[dict[str, Any]]:
    return [attrs.asdict(o) for o in orders]


def _ask(prompt: str) -> str | None:
    """Ask on stderr, read one line from stdin; None on EOF or when nothing can be read."""
    sys.stderr.write(prompt)
    sys.stderr.flush()
    try:
        with _interruptible():
            line = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        raise asyncio.CancelledError from None
    except (OSError, ValueError):  # closed or unreadable stdin
        return None
    return line if line else None


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Let Ctrl-C interrupt a blocking read on the loop's thread.

    asyncio.run's own SIGINT handler only cancels the main task, which cannot happen while
    the thread blocks in `readline`; the default handler raises KeyboardInterrupt there.
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
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.stderr.flush()
