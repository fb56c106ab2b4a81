"""What the `frontoffice` commands share: exit codes, usage errors, the client, signals, runs.

Only the public API is used, and only inside functions: importing this module (as
`frontoffice --help` does) loads neither the HTTP stack's extras, rich nor the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from frontoffice_async import (
        BulkCancelResult,
        CancelOutcome,
        FrontOfficeClient,
        Order,
        RetryPolicy,
    )

__all__ = [
    "ENV_ACCOUNT_ID",
    "ENV_BASE_URL",
    "ENV_TOKEN",
    "EXIT_BROKEN_PIPE",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "OPTIONS",
    "RETRY",
    "BulkRun",
    "UsageError",
    "add_options",
    "check_options",
    "divert_signals",
    "exit_code",
    "make_client",
    "run_main",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, as a shell reports Ctrl-C
EXIT_BROKEN_PIPE = 128 + 13  # 141, as a shell reports a process that SIGPIPE stopped

ENV_BASE_URL = "FRONTOFFICE_BASE_URL"
ENV_TOKEN = "FRONTOFFICE_TOKEN"  # noqa: S105 - the variable's name, not a secret
ENV_ACCOUNT_ID = "FRONTOFFICE_ACCOUNT_ID"

#: The retry policy of the commands that talk to a real API; None is the library's default.
#: A module attribute so that tests can make backoff instant.
RETRY: RetryPolicy | None = None


class UsageError(Exception):
    """A command line or configuration problem: one line on stderr, exit code 2."""


def exit_code(result: BulkCancelResult[Any], *, verify: bool) -> int:
    """0 when nothing failed (and, for cancel-all, a last snapshot showed nothing left)."""
    if result.failed or (verify and not result.verified):
        return EXIT_FAILED
    return EXIT_OK


def make_client(args: argparse.Namespace, *, need_account: bool) -> FrontOfficeClient:
    """The client the options (or the environment) describe; UsageError if incomplete."""
    from frontoffice_async import FrontOfficeClient  # noqa: PLC0415 - keeps `--help` light

    base_url = args.base_url or os.environ.get(ENV_BASE_URL)
    token = args.token or os.environ.get(ENV_TOKEN)
    account_id = args.account_id or os.environ.get(ENV_ACCOUNT_ID)
    missing = [
        f"{flag} (or {env})"
        for flag, env, value, needed in (
            ("--base-url", ENV_BASE_URL, base_url, True),
            ("--token", ENV_TOKEN, token, True),
            ("--account-id", ENV_ACCOUNT_ID, account_id, need_account),
        )
        if needed and not value
    ]
    if missing or base_url is None or token is None:
        raise UsageError("missing " + ", ".join(missing))
    options: dict[str, Any] = {} if RETRY is None else {"retry": RETRY}
    return FrontOfficeClient(
        base_url,
        token=token,
        account_id=account_id or None,
        timeout=args.timeout,
        concurrency=args.concurrency or 32,
        **options,
    )


# --- options every command may take ------------------------------------------------------------


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


#: The options any command may take, before or after its name: (flags, add_argument keywords).
_SPECS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "base_url": (
        ("--base-url",),
        {"metavar": "URL", "help": f"API root URL (env {ENV_BASE_URL})"},
    ),
    "token": (
        ("--token",),
        {"help": f"bearer token (env {ENV_TOKEN}; prefer the variable: flags show up in `ps`)"},
    ),
    "account_id": (
        ("--account-id",),
        {"metavar": "ID", "help": f"account to act on (env {ENV_ACCOUNT_ID})"},
    ),
    "concurrency": (
        ("--concurrency",),
        {"metavar": "N", "type": _positive_int, "help": "requests in flight at once (default 32)"},
    ),
    "timeout": (
        ("--timeout",),
        {"metavar": "S", "type": _positive_float, "help": "seconds per attempt (default 10)"},
    ),
    "json": (("--json",), {"action": "store_true", "help": "print one JSON document on stdout"}),
    "no_progress": (
        ("--no-progress",),
        {"action": "store_true", "help": "no progress bar (drawn only when stderr is a terminal)"},
    ),
}

#: Their values when not given.
OPTIONS: dict[str, Any] = {
    "base_url": None,
    "token": None,
    "account_id": None,
    "concurrency": None,
    "timeout": 10.0,
    "json": False,
    "no_progress": False,
}


def add_options(
    parser: argparse.ArgumentParser,
    names: Iterable[str],
    *,
    helps: Mapping[str, str] | None = None,
    accepted: bool = True,
) -> None:
    """Add the common options `names` to `parser` (a command accepts only these)."""
    names = tuple(names)
    group = parser.add_argument_group("common options")
    for name in names:
        flags, keywords = _SPECS[name]
        # SUPPRESS: an option given before the command survives the command's own parser;
        # `check_options` fills in the defaults afterwards.
        keywords = {**keywords, "default": argparse.SUPPRESS}
        if helps and name in helps:
            keywords["help"] = helps[name]
        group.add_argument(*flags, **keywords)
    if accepted:
        parser.set_defaults(accepted=frozenset(names))


def check_options(args: argparse.Namespace) -> None:
    """Refuse common options that mean nothing to the command; fill in the defaults."""
    for name, default in OPTIONS.items():
        if not hasattr(args, name):
            setattr(args, name, default)
        elif name not in args.accepted:
            flag = _SPECS[name][0][0]
            raise UsageError(f"{flag} does not apply to {args.command}")


# --- a bulk run as it happens -------------------------------------------------------------------


class BulkRun:
    """Outcomes as they arrive (`on_outcome=`): they move the progress bar, time each id, and
    make the partial result of a run that was interrupted. A finished run is reported from
    the library's own `BulkCancelResult`, never from these.

    Latency per id runs from the moment the pool takes the id from `feed()` (it sends at
    once) to its outcome, retries and backoff included; ids never sent have none.
    """

    def __init__(
        self,
        *,
        on_each: Callable[[CancelOutcome[Order]], object] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.latencies: list[float] = []
        self._on_each = on_each
        self._clock = clock
        self._started = clock()
        self._outcomes: dict[str, CancelOutcome[Order]] = {}
        self._position: dict[str, int] = {}
        self._sent_at: dict[str, float] = {}

    def feed(self, order_ids: Iterable[str]) -> Iterator[str]:
        """Yield the ids, noting when the pool takes each one (lazily, as it sends)."""
        for order_id in order_ids:
            # setdefault: the pool skips a duplicate id, which keeps its first values.
            self._sent_at.setdefault(order_id, self._clock())
            self._position.setdefault(order_id, len(self._position))
            yield order_id

    def on_outcome(self, outcome: CancelOutcome[Order]) -> None:
        """The `on_outcome=` callback of the library's bulk calls."""
        earlier = self._outcomes.get(outcome.order_id)
        # One per id, as the library's result keeps it: "cancelled" by any round wins.
        if earlier is None or earlier.order is None:
            self._outcomes[outcome.order_id] = outcome
        sent = self._sent_at.get(outcome.order_id)
        if sent is not None and outcome.attempts:
            self.latencies.append(self._clock() - sent)
        if self._on_each is not None:
            self._on_each(outcome)

    def done(self) -> set[str]:
        """Ids that have an outcome."""
        return set(self._outcomes)

    def partial(self, **fields: Any) -> BulkCancelResult[Order]:
        """What was done so far as a `BulkCancelResult` (in input order when fed)."""
        from frontoffice_async import BulkCancelResult  # noqa: PLC0415

        last = len(self._position)
        ordered = sorted(
            self._outcomes.values(), key=lambda o: self._position.get(o.order_id, last)
        )
        return BulkCancelResult(ordered, elapsed=self._clock() - self._started, **fields)


# --- signals ------------------------------------------------------------------------------------

_INTERRUPTS: contextvars.ContextVar[_Interrupts | None] = contextvars.ContextVar(
    "frontoffice_cli_interrupts", default=None
)


def run_main(command: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run `command()` in a new event loop and return its exit code, signals and pipes included.

    The first SIGINT (Ctrl-C) or SIGTERM cancels the command, which reports what it did and
    ends with 128 + the signal's number (130, 143); later ones only say it is stopping, so
    the report is never cut. A closed stdout (`| head`) ends quietly with 141.
    """
    interrupts = _Interrupts()
    try:
        return asyncio.run(interrupts.run(command))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 128 + (interrupts.signum or signal.SIGINT)
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE


@contextlib.contextmanager
def divert_signals(callback: Callable[[], object]) -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM calls `callback` instead of cancelling the
    command (`simulate` uses it to stop serving and close cleanly). Does nothing unless the
    command runs under `run_main`."""
    interrupts = _INTERRUPTS.get()
    if interrupts is None:
        yield
        return
    interrupts.divert = callback
    try:
        yield
    finally:
        interrupts.divert = None


class _Interrupts:
    """SIGINT and SIGTERM, handled in the event loop: never in the middle of a write."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.divert: Callable[[], object] | None = None
        self._task: asyncio.Task[Any] | None = None
        self._told = False

    async def run(self, command: Callable[[], Coroutine[Any, Any, int]]) -> int:
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                # Not on Windows' loop, nor outside the main thread: the defaults remain.
                loop.add_signal_handler(signum, self._on_signal, signum)
        _INTERRUPTS.set(self)
        return await command()

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
            if self.divert is not None:
                self.divert()
            elif self._task is not None:
                self._task.cancel()
        elif not self._told:
            self._told = True
            sys.stderr.write("\nstopping: finishing the report\n")
            sys.stderr.flush()


def _silence_stdout() -> None:
    # The recipe of the Python docs (signal module, "Note on SIGPIPE"): point stdout at
    # devnull, so the interpreter's last flush at exit does not fail a second time.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
