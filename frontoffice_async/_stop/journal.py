"""The journal of a run: one JSON object a line, written as the run goes.

For the person who must explain a run afterwards: what was open (`snapshot`), what was sent and
what the platform answered (`request`), what became of each id (`outcome`), each account's
rounds (`round`), and the result (`summary`), after the `run` event that says what was asked.
Each line is handed to the operating system as it is written (no buffer of ours), so a crash
or a SIGKILL of the process leaves every line before it whole and readable. Every line is
masked with the tokens the client has used: a token never reaches the file, in any form.

A journal that cannot be written (a full disk) never stops the run it records: the failure is
logged once, writing stops, and the run goes on (flatten's result says so in `journal_error`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Final

from .._http import answers
from .._http.attempt import Observer
from .._http.endpoints import Watch
from .._version import __version__
from ..bulk import CancelOutcome
from ..errors import FrontOfficeError

__all__ = ["Journal", "JournalTarget", "OnOutcome", "journaled"]

logger = logging.getLogger("frontoffice_async")

#: What `on_outcome=` takes.
OnOutcome = Callable[[CancelOutcome[Any]], object]

#: A path (appended to, created 0600) or a text file the caller opened.
JournalTarget = str | os.PathLike[str] | IO[str]

_API: Final = "/frontoffice/api"
#: Built once: `json.dumps` with options builds an encoder per call (a line per request).
_ENCODE: Final = json.JSONEncoder(default=str, ensure_ascii=False, separators=(",", ":")).encode


class Journal:
    """Writes the events of one run (see the module's docstring)."""

    __slots__ = ("_fd", "_file", "_secrets", "_seen", "error", "lines")

    def __init__(self, target: JournalTarget, secrets: Callable[[], Collection[str]]) -> None:
        self._secrets = secrets
        # Every token the run has used: a late answer may quote one the client forgot.
        self._seen: dict[str, None] = {}
        self._fd: int | None = None
        self._file: IO[str] | None = None
        if isinstance(target, str | os.PathLike):
            self._fd = _open(target)
        elif callable(getattr(target, "write", None)):
            self._file = target
        else:
            raise TypeError(f"journal must be a path or a text file, got {type(target).__name__}")
        self.lines = 0
        """Events written so far."""
        self.error: str | None = None
        """Why the journal stopped being written (None: every event was)."""

    def event(self, name: str, /, **fields: Any) -> None:
        """Write one event now: `{"event": name, "time": ..., **fields}`."""
        record = {"event": name, "time": _now(), **fields}
        line = _ENCODE(record)
        if self.error is not None:
            return
        seen = self._seen
        for secret in self._secrets():
            if secret not in seen:
                seen[secret] = None
                # As it stands in a JSON string: a token may hold `"` or `\`, escaped there.
                seen[json.dumps(secret, ensure_ascii=False)[1:-1]] = None
        line = answers.mask(line, seen) + "\n"
        if not line.isascii():
            # A lone surrogate (valid JSON: "\ud800") is written as its escape, which reads
            # back the same: one odd record must not end the journal.
            line = line.encode("utf-8", "backslashreplace").decode()

        try:
            if self._fd is not None:
                data = line.encode()
                while data:  # a short write is finished, not dropped
                    data = data[os.write(self._fd, data) :]
            else:
                assert self._file is not None
                self._file.write(line)
                self._file.flush()
        except Exception as exc:
            # The run matters more than its record: say so once, and let it go on.
            self.error = getattr(exc, "strerror", None) or type(exc).__name__
            logger.error(
                "the journal could not be written (%s): the run goes on without it", self.error
            )
            return
        self.lines += 1

    def outcome(self, account: str, kind: str, outcome: CancelOutcome[Any]) -> None:
        """An id's outcome (`kind`: order, stop_order or position)."""
        self.event(
            "outcome",
            account=account,
            kind=kind,
            id=outcome.order_id,
            category=outcome.category,
            attempts=outcome.attempts,
            error=None if outcome.error is None else outcome.error.as_dict(),
        )

    def snapshot(
        self, account: str, stream: str, shown: list[str], records: Collection[Any], key: str
    ) -> None:
        """What a snapshot showed: the ids its items showed open (`shown`, in the order they
        came: what was open when it began), how many its merged window still showed open at
        its end (`records`), and how many records had no readable id."""
        unreadable = sum(1 for r in records if not isinstance(r, Mapping) or not r.get(key))
        self.event(
            "snapshot",
            account=account,
            stream=stream,
            count=len(shown),
            ids=shown,
            still_open=len(records),
            unreadable=unreadable,
        )

    def observer(self, account: str, method: str, path: str, item_id: str | None) -> Observer:
        """What tells this journal of each attempt of one request (`path`: its template, e.g.
        `/v3/orders/{id}`)."""

        def observe(
            attempt: int, status: int | None, failure: str | None, took: float, body: bytes
        ) -> None:
            trace_id = None
            if status is not None and not 200 <= status < 300 and body:
                _, trace_id = answers.describe_body(body[:65536].decode("utf-8", "replace"))
            self.event(
                "request",
                account=account,
                method=method,
                path=_API + path,
                id=item_id,
                attempt=attempt,
                status=status,
                failure=failure,
                elapsed_ms=round(took * 1000, 3),
                trace_id=trace_id,
            )

        return observe

    def watch(self, account: str) -> Watch:
        """What makes the observer of each request on `account` (see `ViewCalls.canceller`)."""

        def watch(method: str, path: str, item_id: str | None) -> Observer:
            return self.observer(account, method, path, item_id)

        return watch

    def sink(self, account: str, kind: str, theirs: OnOutcome | None) -> OnOutcome:
        """An `on_outcome` that writes each outcome, then hands it to `theirs`."""

        def sink(outcome: CancelOutcome[Any]) -> None:
            self.outcome(account, kind, outcome)
            if theirs is not None:
                theirs(outcome)

        return sink

    def close(self) -> None:
        """Close the file this journal opened (never the caller's)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def journaled(
    target: JournalTarget | None,
    secrets: Callable[[], Collection[str]],
    fields: Mapping[str, Any] | None = None,
    **run: Any,
) -> Iterator[Journal | None]:
    """A journal of `target` for one call (None: none): its `run` event first (the caller's
    `fields` first in it), an `error` event if the call raises, the file closed after."""
    extra = dict(fields or {})
    clash = sorted(extra.keys() & {"event", "time", "version", "started", *run})
    if clash:  # checked before the file is opened: a bad argument leaves nothing behind
        raise ValueError(f"journal_fields may not name the run event's own fields: {clash}")
    if target is None:
        yield None
        return
    journal = Journal(target, secrets)
    try:
        journal.event("run", **extra, version=__version__, started=time.time(), **run)
        yield journal
    except BaseException as exc:
        error = (
            exc.as_dict() if isinstance(exc, FrontOfficeError) else {"type": type(exc).__name__}
        )
        journal.event("error", error=error)
        raise
    finally:
        journal.close()


def _now() -> str:
    """The time, to the millisecond, as ISO-8601 with `Z` (formatted once per millisecond: a
    busy run writes several lines in each)."""
    global _last  # noqa: PLW0603 -- a one-entry cache, one tuple: threads see a whole pair
    ms = time.time_ns() // 1_000_000
    last = _last
    if last[0] != ms:
        when = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        last = _last = (ms, when.replace("+00:00", "Z"))
    return last[1]


_last: tuple[int, str] = (-1, "")


def _open(path: str | os.PathLike[str]) -> int:
    """Open the journal file for appending, owner-only. Non-blocking: a FIFO nobody reads
    must not freeze the event loop's thread, neither here nor at a write (the run goes on
    without its journal instead, as after any failed write)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        return os.open(path, flags, 0o600)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            raise
        raise OSError(exc.errno, "the journal is a FIFO that nobody reads", path) from None
