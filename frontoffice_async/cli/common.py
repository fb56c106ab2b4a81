"""What the `frontoffice` commands share: exit codes, usage errors, the client, runs.

Only the public API is used, and only inside functions: importing this module (as
`frontoffice --help` does) loads neither the HTTP stack's extras, rich nor the simulator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from . import output
from .process import in_thread

if TYPE_CHECKING:
    from frontoffice_async import (
        BulkCancelResult,
        CancelOutcome,
        FlattenResult,
        FrontOfficeClient,
        Order,
        RetryPolicy,
    )

__all__ = [
    "ENV_ACCOUNT_ID",
    "ENV_BASE_URL",
    "ENV_TOKEN",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "OPTIONS",
    "RETRY",
    "BulkRun",
    "ReportedError",
    "UsageError",
    "add_options",
    "check_options",
    "confirm",
    "error_document",
    "exit_code",
    "make_client",
    "non_negative_int",
    "not_empty",
    "port_number",
    "positive_int",
    "rate",
    "seconds",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C

ENV_BASE_URL = "FRONTOFFICE_BASE_URL"
ENV_TOKEN = "FRONTOFFICE_TOKEN"  # noqa: S105 - the variable's name, not a secret
ENV_ACCOUNT_ID = "FRONTOFFICE_ACCOUNT_ID"

#: The retry policy of the commands that talk to a real API; None is the library's default.
#: A module attribute so that tests can make backoff instant.
RETRY: RetryPolicy | None = None

T = TypeVar("T")


class UsageError(Exception):
    """A command line or configuration problem: one line on stderr, exit code 2."""


class ReportedError(Exception):
    """A call failed after the command printed what it had done: only `error:` is left to say.

    `error` is the library's exception (the message of this one is its message).
    """

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def error_document(error: BaseException) -> dict[str, Any]:
    """An error as JSON-ready data: the library's own `as_dict()`, the shape of an outcome's
    `error`; anything else (a usage error) in the same shape. Never a token."""
    from frontoffice_async import FrontOfficeError  # noqa: PLC0415 - keeps `--help` light

    if isinstance(error, FrontOfficeError):
        return error.as_dict()
    return {
        "type": type(error).__name__,
        "status": None,
        "message": " ".join(str(error).split()),
        "trace_id": None,
        "order_id": None,
    }


async def confirm(prompt: str, *, nothing: str = "nothing was cancelled") -> None:
    """Ask on stderr, read one line from stdin; only `y`/`yes` confirms, else UsageError
    (ending with `nothing`: what was not done).

    The line is read in a thread, so Ctrl-C and SIGTERM at the prompt end the command at once.
    """
    output.note(prompt, end="")
    try:
        line = await in_thread(sys.stdin.readline)
    except asyncio.CancelledError:
        output.note("")  # end the prompt's line
        raise
    except (AttributeError, OSError, ValueError):  # no, closed or unreadable stdin
        line = ""
    if not line:
        raise UsageError(f"not confirmed (no answer on stdin); {nothing}")
    if line.strip().lower() not in {"y", "yes"}:
        raise UsageError(f"not confirmed; {nothing}")


def not_empty(args: argparse.Namespace, *names: str) -> None:
    """UsageError for an option given as an empty (or blank) value: `--market "$M"` with `M`
    unset must not mean "no filter", nor fall back to an environment variable."""
    for name in names:
        value = getattr(args, name, None)
        if value is not None and not value.strip():
            flag = "--" + name.replace("_", "-")
            raise UsageError(f"{flag} must not be empty (leave the option out instead)")


def exit_code(result: BulkCancelResult[Any], *, verify: bool) -> int:
    """0 when nothing failed (and, for cancel-all, a last snapshot showed nothing left)."""
    if result.failed or (verify and not result.verified):
        return EXIT_FAILED
    return EXIT_OK


def flatten_exit_code(result: FlattenResult) -> int:
    """A flatten's exit code, `frontoffice flatten`'s and the guard's alike: 0 only when every
    account is verified flat (a dry run: every account could be read) and the journal asked
    for was written; else 1."""
    if result.journal_error is not None:
        return EXIT_FAILED
    if result.dry_run:
        return EXIT_FAILED if any(a.error for a in result.accounts.values()) else EXIT_OK
    return EXIT_OK if result.verified else EXIT_FAILED


def make_client(args: argparse.Namespace, *, need_account: bool) -> FrontOfficeClient:
    """The client the options (or the environment) describe; UsageError if incomplete."""
    from frontoffice_async import FrontOfficeClient  # noqa: PLC0415 - keeps `--help` light

    not_empty(args, "base_url", "token", "account_id")
    base_url = _setting(args.base_url, ENV_BASE_URL)
    token = _setting(args.token, ENV_TOKEN)
    account_id = _setting(args.account_id, ENV_ACCOUNT_ID)
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
    try:
        client = FrontOfficeClient(
            base_url,
            token=token,
            account_id=account_id or None,
            timeout=args.timeout,
            concurrency=args.concurrency or 32,
            **options,
        )
    except ValueError as exc:  # the client refused a setting: name the option it came from
        message = " ".join(str(exc).split())
        if message.startswith("base_url"):
            raise _base_url_refused(message, base_url, token) from None
        if "token" in message:
            raise UsageError(f"--token (or {ENV_TOKEN}): {message}") from None
        raise
    if _is_url(token):  # the base URL was fine: the token itself is a URL
        raise UsageError(f"--token (or {ENV_TOKEN}) holds a URL, not a token")
    return client


def _base_url_refused(message: str, base_url: str, token: str) -> UsageError:
    """The client's refusal of the base URL, naming the option, never showing the value.

    The value is often the token itself (the variables swapped): the library does not show
    it, and should a message ever quote part of it, the reason is left out.
    """
    reason = message.removeprefix("base_url").strip()
    if _shows_part_of(reason, base_url):
        reason = "is not a usable URL (the value is not shown: it may hold a secret)"
    hint = ""
    if _is_url(token):
        hint = f"; {ENV_TOKEN} (or --token) holds a URL: are the two swapped?"
    return UsageError(f"--base-url (or {ENV_BASE_URL}) {reason}{hint}")


def _is_url(value: str) -> bool:
    return value.strip().lower().startswith(("http://", "https://"))


def _shows_part_of(text: str, value: str, size: int = 8) -> bool:
    """Whether `text` holds `size` characters of `value` in a row, in any case."""
    text, value = text.casefold(), value.strip().casefold()
    size = min(size, len(value))
    return any(value[i : i + size] in text for i in range(len(value) - size + 1))


def _setting(flag: str | None, env: str) -> str | None:
    """The flag's value if it was given (even empty: `not_empty` refused that), else the
    environment's."""
    return flag if flag is not None else os.environ.get(env)


# --- options every command may take ------------------------------------------------------------


def positive_int(text: str) -> int:
    """An int >= 1."""
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = _number(float, text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def port_number(text: str) -> int:
    """A TCP port: 0 to 65535 (0: any free one)."""
    value = _number(int, text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {value}")
    return value


def non_negative_int(text: str) -> int:
    """An int >= 0."""
    value = _number(int, text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def rate(text: str) -> float:
    """A probability: 0 to 1."""
    value = _number(float, text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def seconds(text: str) -> float:
    """A finite number of seconds >= 0."""
    value = _number(float, text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value


def _number(kind: Callable[[str], T], text: str) -> T:
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None


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
        {"metavar": "N", "type": positive_int, "help": "requests in flight at once (default 32)"},
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
    `sending` is set by the command when it calls the library: before that, nothing was sent.
    """

    def __init__(
        self,
        *,
        on_each: Callable[[CancelOutcome[Order]], object] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.latencies: list[float] = []
        self.sending = False
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

    def flatten_document(self) -> dict[str, Any]:
        """What was done so far as `flatten --json` shows a run cut short: the keys of
        `FlattenResult.as_dict()` with `verified` false and `accounts` null (the library
        returned no result, and an outcome does not say its account: the journal does), plus
        the outcomes received: `counts`, `attempts`, `outcomes` (orders, stop orders and
        positions closed one by one, in the order their outcomes came)."""
        received = self.partial()
        counts = dict.fromkeys(("cancelled", "not_found", "not_active", "failed"), 0)
        for outcome in received:
            counts[outcome.category] += 1
        return {
            "verified": False,
            "dry_run": False,
            "elapsed": round(received.elapsed, 6),
            "accounts": None,
            "counts": counts,
            "attempts": received.attempts,
            "outcomes": [_outcome_document(o) for o in received],
        }

    def document(self, *, snapshots: bool) -> dict[str, Any]:
        """What was done so far as `--json` shows a run cut short: `as_dict()` with `verified`
        false and, for cancel-all (`snapshots`), null for what only its snapshots could tell:
        `rounds`, `remaining`, `unreadable` and `filtered_out` (not known, not empty)."""
        unknown = dict.fromkeys(("rounds", "remaining", "unreadable", "filtered_out"))
        return {**self.partial().as_dict(), "verified": False, **(unknown if snapshots else {})}


def _outcome_document(outcome: CancelOutcome[Any]) -> dict[str, Any]:
    """`outcome.as_dict()`; a position closed one by one has its id for `order` (a str, which
    `as_dict()` cannot render), so its `order` is null: the id is its `order_id`."""
    if isinstance(outcome.order, str):
        import attrs  # noqa: PLC0415 - keeps `--help` light

        return attrs.evolve(outcome, order=None).as_dict()
    return outcome.as_dict()
