"""`frontoffice guard`: the dead-man's switch that flattens the account when the bot dies or hangs.

Two ways to run it (docs/guard.md):

- `--pipe` is what `FrontOfficeClient.guard()` starts, in a session of its own. The job and the
  token arrive on stdin, one JSON object a line: the hello, heartbeats (each with the bot's
  current token), and last a disarm. It answers on stdout (ready, or the error that stopped
  it). It flattens at once when stdin ends without a disarm (the bot died), and after
  `timeout` seconds without a heartbeat (the bot's event loop is blocked).
- `--heartbeat-file PATH`, on its own, for a bot in any language: configured like the other
  commands (flags or FRONTOFFICE_*, or `--token-command`), it flattens once the file's mtime
  has not changed for `--timeout` seconds.

Either way it is ready before it watches: its HTTP session open, the token checked (the
accounts asked must be among `list_accounts()`). When it acts it runs the library's `flatten`,
with a journal whose `run` event says why (`trigger`), and exits with flatten's code: 0
verified, 1 something may still be open. SIGINT or SIGTERM before that stops it without acting
(a deliberate stop); once it acts, it finishes the flatten first. The token is never printed,
and masked in the journal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import sys
from typing import Any, Final

from . import common, output
from .armed import NOTE, PROTOCOL, Armed, Job, Token, act, answer, job_from_hello
from .common import (
    ENV_ACCOUNT_ID,
    ENV_BASE_URL,
    ENV_TOKEN,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_options,
    error_document,
    non_negative_int,
    not_empty,
    seconds,
)
from .process import in_thread

__all__ = ["FILE_STALE", "HEARTBEAT_MISSED", "PIPE_CLOSED", "add_command"]

#: Why the guard acts: the `trigger` of its journal's `run` event.
PIPE_CLOSED: Final = "pipe closed"
HEARTBEAT_MISSED: Final = "heartbeat missed"
FILE_STALE: Final = "heartbeat file stale"

#: A hello may list many stop-order ids; a longer line is not a message of ours.
_LINE_LIMIT: Final = 16 << 20
#: Bytes of a `--stop-orders` file read at most.
_MAX_STOP_ORDERS_BYTES: Final = 16 << 20


def add_command(commands: Any) -> None:
    """Register `guard` on the CLI's subparsers (`commands`)."""
    guard = commands.add_parser(
        "guard",
        help="flatten the account when the bot dies or hangs (a dead-man's switch)",
        description="Watch a heartbeat and flatten (cancel open orders and the given stop "
        "orders, close positions, verify) when it stops: with --heartbeat-file, once the "
        "file's mtime has not changed for --timeout seconds. Checks the token first. Exit "
        "codes: 0 flattened and verified, 1 something may still be open (or the token was "
        "refused), 2 usage error, 130/143 stopped by SIGINT/SIGTERM before acting.",
    )
    arg = guard.add_argument
    mode = guard.add_mutually_exclusive_group()
    mode.add_argument(
        "--heartbeat-file",
        metavar="PATH",
        help="the heartbeat is this file's mtime: the bot touches it (any language can)",
    )
    mode.add_argument(
        "--pipe",
        action="store_true",
        help="read the job, the token and heartbeats from stdin: what "
        "FrontOfficeClient.guard() runs (docs/guard.md)",
    )
    arg(
        "--timeout",
        dest="heartbeat_timeout",
        metavar="S",
        type=_positive_seconds,
        help="seconds without a heartbeat before it flattens (default 30)",
    )
    arg(
        "--token-command",
        metavar="CMD",
        help="run CMD (split as a shell would, no shell) for the token, at start and again "
        "when it acts; its output is never shown. Instead of --token/FRONTOFFICE_TOKEN",
    )
    arg(
        "--request-timeout",
        metavar="S",
        type=_positive_seconds,
        help="seconds per request attempt (default 10)",
    )
    job = guard.add_argument_group("what it flattens")
    job.add_argument(
        "--account",
        dest="accounts",
        action="append",
        metavar="ID",
        help="an account to flatten (repeatable; default: --account-id)",
    )
    job.add_argument(
        "--all-accounts", action="store_true", help="every account of the token, when it acts"
    )
    job.add_argument("--market", metavar="M", help="only orders and positions of market M")
    job.add_argument("--keep-positions", action="store_true", help="leave positions open")
    job.add_argument(
        "--stop-orders",
        metavar="FILE",
        help="stop-order ids to cancel, one a line (# comments; - = stdin): none can be listed",
    )
    job.add_argument(
        "--rounds", metavar="N", type=_positive_int, help="rounds that act, at most (default 3)"
    )
    job.add_argument(
        "--journal", metavar="FILE", help="append the JSON Lines journal of the flatten here"
    )
    add_options(guard, ("base_url", "token", "account_id", "concurrency", "json"))
    guard.set_defaults(handler=_cmd_guard, command="guard")


def _positive_seconds(text: str) -> float:
    value = seconds(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


async def _cmd_guard(args: argparse.Namespace) -> int:
    if args.pipe:
        return await _pipe_mode(args)
    if args.heartbeat_file is None:
        raise UsageError(
            "give --heartbeat-file PATH (the guard on its own), or --pipe (what "
            "FrontOfficeClient.guard() runs)"
        )
    return await _file_mode(args)


# --- the pipe -----------------------------------------------------------------------------------


async def _pipe_mode(args: argparse.Namespace) -> int:
    given = _options_given(args)
    if given:
        raise UsageError(f"with --pipe the settings come from the pipe: not {', '.join(given)}")
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        raise UsageError("--pipe reads its job from a pipe (FrontOfficeClient.guard() runs it)")
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_LINE_LIMIT)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), stdin
    )
    try:
        return await _guard_the_pipe(reader)
    finally:
        transport.close()


async def _guard_the_pipe(reader: asyncio.StreamReader) -> int:
    """Read the hello, get ready (or say why not), watch, act: the exit code."""
    from frontoffice_async import FrontOfficeError  # noqa: PLC0415

    token = Token()
    try:
        job = await _hello(reader, token)
    except UsageError as exc:
        answer({"type": "error", "error": _error_document(exc)})
        return EXIT_USAGE
    async with contextlib.AsyncExitStack() as stack:
        try:
            armed = await stack.enter_async_context(Armed(job, token))
        except (FrontOfficeError, UsageError, ValueError, TypeError) as exc:
            answer({"type": "error", "error": _error_document(exc)})
            return EXIT_FAILED if isinstance(exc, FrontOfficeError) else EXIT_USAGE
        answer({"type": "ready", "version": PROTOCOL, "pid": os.getpid()})
        trigger, cause, silent = await _watch_pipe(reader, job.timeout, token)
        if trigger is None:
            return EXIT_OK  # disarmed
        why = (
            "the bot's pipe closed without a disarm"
            if trigger == PIPE_CLOSED
            else f"no heartbeat for {job.timeout:g} s"
        )
        journal = {"cause": cause, "since_heartbeat": round(silent, 3)}
        code, _ = await act(armed, trigger, why, tell_bot=True, **journal)
        return code


async def _hello(reader: asyncio.StreamReader, token: Token) -> Job:
    """The job of the first line; its token goes to `token`, its only keeper."""
    hello = _message(await reader.readline())
    job = job_from_hello(hello)
    if not token.set(hello.get("token")):
        raise UsageError("the hello holds no usable token")
    return job


async def _watch_pipe(
    reader: asyncio.StreamReader, timeout: float, token: Token
) -> tuple[str | None, str | None, float]:
    """Read the bot's lines until it disarms (None) or why the guard must act; the cause the
    bot gave, if any, and the seconds since the last heartbeat."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    cause: str | None = None
    while True:
        try:
            raw = await asyncio.wait_for(reader.readline(), max(last + timeout - loop.time(), 0))
        except TimeoutError:
            return HEARTBEAT_MISSED, cause, loop.time() - last
        except ValueError:  # a line over the limit (dropped): not a heartbeat
            continue
        if not raw.endswith(b"\n"):  # the end of the pipe; a cut last line: died mid-write
            return PIPE_CLOSED, cause, loop.time() - last
        message = _message(raw)
        kind = message.get("type")
        if kind == "disarm":
            return None, None, 0.0
        if kind == "heartbeat":
            last = loop.time()
            token.set(message.get("token"))  # an unusable one is ignored: the last one stays
        elif kind == "bye":
            cause = str(message.get("cause"))[:100]


def _message(raw: bytes) -> dict[str, Any]:
    try:
        message = json.loads(raw)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _error_document(error: BaseException) -> dict[str, Any]:
    """`error_document`, with the request's method and url for the bot to rebuild it."""
    document = error_document(error)
    for name in ("method", "url"):
        value = getattr(error, name, None)
        if isinstance(value, str):
            document[name] = value
    return document


def _options_given(args: argparse.Namespace) -> list[str]:
    flags = {
        "heartbeat_timeout": "--timeout",
        "token_command": "--token-command",
        "request_timeout": "--request-timeout",
        "accounts": "--account",
        "all_accounts": "--all-accounts",
        "market": "--market",
        "keep_positions": "--keep-positions",
        "stop_orders": "--stop-orders",
        "rounds": "--rounds",
        "journal": "--journal",
        "base_url": "--base-url",
        "token": "--token",
        "account_id": "--account-id",
        "concurrency": "--concurrency",
        "json": "--json",
    }
    return [flag for name, flag in flags.items() if getattr(args, name, None) not in (None, False)]


# --- the heartbeat file --------------------------------------------------------------------------


async def _file_mode(args: argparse.Namespace) -> int:
    not_empty(args, "base_url", "token", "account_id", "market", "heartbeat_file")
    not_empty(args, "token_command", "stop_orders", "journal")
    job, token = await _file_job(args)
    path = args.heartbeat_file
    async with Armed(job, token) as armed:
        output.note(
            f"{NOTE}armed (pid {os.getpid()}): flattens {job.describe()} when {path} has not "
            f"changed for {job.timeout:g} s"
        )
        silent = await _watch_file(path, job.timeout)
        why = f"{path} has not changed for {job.timeout:g} s"
        code, result = await act(
            armed, FILE_STALE, why, tell_bot=False, since_heartbeat=round(silent, 3)
        )
    if args.json and result is not None:
        output.print_json({"trigger": FILE_STALE, **result.as_dict()})
    return code


async def _watch_file(path: str, timeout: float) -> float:
    """Return once `path` has not changed for `timeout` seconds (the guard's start counts as
    a change): the seconds since it last changed. Changes are seen on the monotonic clock,
    so a step of the wall clock does not matter; a missing file does not change."""
    loop = asyncio.get_running_loop()
    interval = min(0.5, max(0.01, timeout / 20))
    seen, last = _stamp(path), loop.time()
    while True:
        await asyncio.sleep(interval)
        stamp, now = _stamp(path), loop.time()
        if stamp is not None and stamp != seen:
            last = now
        seen = stamp
        if now - last >= timeout:
            return now - last


def _stamp(path: str) -> tuple[int, int] | None:
    """The file's mtime and inode (a file replaced by a rename changes too), or None."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_ino


async def _file_job(args: argparse.Namespace) -> tuple[Job, Token]:
    """The job and the token of a guard on its own: flags, the environment, the command."""
    base_url = _setting(args.base_url, ENV_BASE_URL)
    account_id = _setting(args.account_id, ENV_ACCOUNT_ID) or None
    if not base_url:
        raise UsageError(f"missing --base-url (or {ENV_BASE_URL})")
    token = await _file_token(args)
    if args.all_accounts and args.accounts:
        raise UsageError("give --account or --all-accounts, not both")
    accounts: str | list[str] | None = "all" if args.all_accounts else args.accounts
    if accounts is None and account_id is None:
        raise UsageError(
            f"missing --account-id (or {ENV_ACCOUNT_ID}), --account or --all-accounts"
        )
    stops: dict[str, list[str]] = {}
    if args.stop_orders is not None:
        named = [account_id] if accounts is None else accounts
        if named == "all" or len(named) != 1 or named[0] is None:
            raise UsageError("--stop-orders needs exactly one account (--account-id or --account)")
        stops = {named[0]: await _read_stop_orders(args.stop_orders)}
    client: dict[str, Any] = {
        "concurrency": args.concurrency,
        "timeout": args.request_timeout or 10.0,
        "retry": common.RETRY,
    }
    job = Job(
        timeout=args.heartbeat_timeout or 30.0,
        base_url=base_url,
        account_id=account_id,
        accounts=accounts,
        market_id=args.market,
        close_positions=not args.keep_positions,
        stop_order_ids=stops,
        rounds=args.rounds or 3,
        journal=args.journal,
        client=client,
    )
    return job, token


async def _file_token(args: argparse.Namespace) -> Token:
    if args.token_command is None:
        token = Token()
        value = _setting(args.token, ENV_TOKEN)
        if value is None:
            raise UsageError(f"missing --token (or {ENV_TOKEN}), or --token-command")
        if not token.set(value):
            raise UsageError(f"--token (or {ENV_TOKEN}) is not a usable token")
        return token
    if args.token is not None:
        raise UsageError("give --token or --token-command, not both")
    try:
        command = shlex.split(args.token_command)
    except ValueError as exc:
        raise UsageError(f"--token-command: {exc}") from None
    if not command:
        raise UsageError("--token-command must not be empty")
    token = Token(command)
    try:
        await token.fetch()
    except (OSError, RuntimeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"--token-command: {reason}") from None
    return token


def _setting(flag: str | None, env: str) -> str | None:
    return flag if flag is not None else os.environ.get(env)


async def _read_stop_orders(path: str) -> list[str]:
    """Stop-order ids, one a line (blank lines and # comments skipped; `-` is stdin)."""

    def read() -> str:
        if path == "-":
            return sys.stdin.read(_MAX_STOP_ORDERS_BYTES + 1)
        with open(path, encoding="utf-8-sig") as file:
            return file.read(_MAX_STOP_ORDERS_BYTES + 1)

    try:
        text = await in_thread(read)
    except (OSError, UnicodeDecodeError, AttributeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read --stop-orders {path}: {reason}") from None
    if len(text) > _MAX_STOP_ORDERS_BYTES:
        raise UsageError(f"cannot read --stop-orders {path}: more than 16 MiB")
    ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return list(dict.fromkeys(i for i in ids if i))
