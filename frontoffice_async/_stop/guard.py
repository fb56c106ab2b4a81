"""The guard, library side: start `frontoffice guard` in a session of its own, hand it the job
over a pipe, send heartbeats, and disarm it on the way out.

A dead-man's switch must outlive the bot, so the guard is another process (this Python, as
`python -m frontoffice_async guard --pipe`) in another session: a Ctrl-C at the bot's terminal
or a kill of the bot's process group does not reach it. What it needs goes over its stdin, one
JSON object a line, never in argv or the environment (`ps` and /proc show both): the hello
(settings and the token), a heartbeat every `timeout / 4` seconds carrying the client's
current token, and last either a disarm or the pipe's end without one. Its stdout answers:
ready (or the error that stopped it), then, if it acts, what and how it ended. The process
side is `cli/guard.py`; docs/guard.md describes the protocol for contributors.

Only the heartbeat lives in the bot's event loop: a loop that blocks stops the heartbeats,
which is one of the two things the guard watches for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import sys
from collections.abc import Collection, Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Literal, Self

import attrs

from .._http import answers
from .._http.tokens import Credential, TokenSource
from ..errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    FrontOfficeError,
    GuardError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TokenProviderError,
    TokenProviderTimeoutError,
)
from ..retry import RetryPolicy

__all__ = [
    "PROTOCOL",
    "Guard",
    "OnError",
    "OnStop",
    "guard_environment",
    "guard_hello",
]

logger = logging.getLogger("frontoffice_async")

#: The pipe protocol's version, sent in the hello (docs/guard.md).
PROTOCOL: Final = 1
#: How long `__aenter__` waits for the guard to be ready: a Python starting, importing the
#: library and checking the token (bounded by the retry policy's deadline, 30 s by default).
READY_TIMEOUT: Final = 60.0
#: How long a disarmed guard may take to exit before it is killed (it exits at once).
DISARM_WAIT: Final = 10.0
#: Lines the guard sends are short; the hello it reads may hold many stop-order ids.
_LINE_LIMIT: Final = 1 << 20
#: The variable the CLI reads a token from: never handed down to the guard.
_TOKEN_VARIABLE: Final = "FRONTOFFICE_TOKEN"  # noqa: S105 - a variable's name

OnError = Literal["flatten", "disarm"]
OnStop = Literal["disarm", "flatten"]


class Guard:
    """A dead-man's switch in a process of its own: `async with client.guard(...) as guard`.

    Entering starts `frontoffice guard`, hands it the job and the token over a pipe, and
    returns once it is ready (its HTTP session open, the token checked). It flattens the
    account when the pipe closes without a disarm (the bot died) or when no heartbeat came
    for `timeout` seconds (the bot's event loop is blocked). Leaving disarms it, or has it
    flatten (an `Exception` unless `on_error="disarm"`; `KeyboardInterrupt`, `SystemExit` or
    cancellation only with `on_stop="flatten"`), and waits for it to exit: at once when
    disarmed, after the whole flatten otherwise. See the docs' "Guard" page.

    Not built directly: `FrontOfficeClient.guard()` makes it from the client's settings.
    """

    def __init__(
        self,
        hello: Mapping[str, Any],
        tokens: TokenSource,
        *,
        on_error: OnError,
        on_stop: OnStop,
        command: Sequence[str] | None = None,
        ready_timeout: float = READY_TIMEOUT,
    ) -> None:
        if on_error not in ("flatten", "disarm"):
            raise ValueError(f'on_error must be "flatten" or "disarm", got {on_error!r}')
        if on_stop not in ("disarm", "flatten"):
            raise ValueError(f'on_stop must be "disarm" or "flatten", got {on_stop!r}')
        self._hello = dict(hello)
        self._tokens = tokens
        self._timeout: float = hello["timeout"]
        self._on_error = on_error
        self._on_stop = on_stop
        self._command = tuple(command or (sys.executable, "-m", "frontoffice_async", "guard"))
        self._ready_timeout = ready_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._beating: asyncio.Task[None] | None = None
        self._watching: asyncio.Task[None] | None = None
        self._refreshing: asyncio.Future[Credential] | None = None
        self._leaving = False
        self._returncode: int | None = None
        self._trigger: str | None = None
        self._acting = False

    @property
    def pid(self) -> int | None:
        """The guard process's id (None until `async with` has started it)."""
        return None if self._process is None else self._process.pid

    @property
    def alive(self) -> bool:
        """True while the guard runs and watches. It turns False, with a warning logged, when
        the guard dies, and when it acts on its own (it then flattens and exits: `trigger`
        says why); after the `async with`, it is False."""
        return (
            self._process is not None
            and self._returncode is None
            and self._trigger is None
            and not self._leaving
        )

    @property
    def trigger(self) -> str | None:
        """Why the guard acted (`"pipe closed"`, `"heartbeat missed"`), or None if it has not."""
        return self._trigger

    @property
    def returncode(self) -> int | None:
        """The guard's exit code once it has exited: 0 disarmed or flattened and verified, 1
        something may still be open (see its journal); a negative number: killed by that
        signal. None while it runs."""
        return self._returncode

    def __repr__(self) -> str:
        state = (
            "not started"
            if self._process is None
            else "alive"
            if self.alive
            else f"exited {self._returncode}"
        )
        return f"<Guard pid={self.pid} timeout={self._timeout} {state}>"

    # --- entering ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._process is not None:
            raise RuntimeError("a Guard is entered once: call client.guard() again")
        if os.name != "posix":
            raise GuardError("the guard needs a POSIX system (a session of its own, pipes)")
        if not self._command[0]:
            raise GuardError("sys.executable is unknown: the guard cannot be started")
        # The token first: the guard's environment is the bot's less every variable that
        # holds it, and a provider may only now fetch it (within the policy's deadline).
        credential = await self._credential()
        process = self._process = await asyncio.create_subprocess_exec(
            *self._command,
            "--pipe",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            # Its own session: not in the bot's process group, no controlling terminal.
            start_new_session=True,
            env=guard_environment(self._tokens.secrets),
            limit=_LINE_LIMIT,
        )
        try:
            await self._handshake(process, credential)
        except BaseException:
            if process.stdin is not None:
                process.stdin.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            self._returncode = process.returncode
            raise
        self._beating = asyncio.ensure_future(self._beat())
        self._watching = asyncio.ensure_future(self._watch(process))
        return self

    async def _credential(self) -> Credential:
        deadline = self._hello["client"]["retry"]["deadline"]
        try:
            async with asyncio.timeout(deadline):
                return await self._tokens.credential()
        except TimeoutError:
            raise answers.deadline_error(
                deadline,
                "the token provider (the guard was not started)",
                method="GET",
                url=f"{self._hello['base_url']}/v3/accounts",
                attempts=0,
                kind=TokenProviderTimeoutError,
            ) from None

    async def _handshake(
        self, process: asyncio.subprocess.Process, credential: Credential
    ) -> None:
        """Send the hello; wait for `ready`, or raise what stopped the guard."""
        assert process.stdin is not None
        assert process.stdout is not None
        # Encoded by a helper: the token is never a str of this frame.
        process.stdin.write(_hello_line(self._hello, credential))
        with contextlib.suppress(ConnectionError):  # it died: its answer (or code) says why
            await process.stdin.drain()
        try:
            raw = await asyncio.wait_for(process.stdout.readline(), self._ready_timeout)
        except TimeoutError:
            raise GuardError(
                f"the guard did not get ready within {self._ready_timeout:g} s"
            ) from None
        message = _read(raw)
        if message.get("type") == "ready":
            return
        if message.get("type") == "error":
            raise _rebuilt(message.get("error"), self._tokens.secrets)
        code = await process.wait()
        raise GuardError(
            f"the guard exited before it was ready ({_how(code)}); its stderr says why"
        )

    # --- while the bot runs --------------------------------------------------------------------

    async def _beat(self) -> None:
        """A heartbeat every `timeout / 4` seconds, with the client's current token."""
        process = self._process
        assert process is not None
        assert process.stdin is not None
        stdin = process.stdin
        while not stdin.is_closing():
            await asyncio.sleep(self._timeout / 4)
            if stdin.is_closing():
                return
            stdin.write(self._heartbeat())
            try:
                await stdin.drain()
            except ConnectionError:
                return  # the guard is gone: the watcher says so

    def _heartbeat(self) -> bytes:
        credential = self._tokens.cached_credential()
        if credential is None:
            # About to expire: refreshed in the background (a slow provider must not delay
            # the heartbeat, or the guard would take the bot for hung); the next one has it.
            self._refresh_soon()
            return _line({"type": "heartbeat"})
        return _line_with_token({"type": "heartbeat"}, credential)

    def _refresh_soon(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._tokens.credential())
            self._refreshing.add_done_callback(_retrieve)

    async def _watch(self, process: asyncio.subprocess.Process) -> None:
        """Read what the guard says until it exits; warn when it dies or acts on its own."""
        assert process.stdout is not None
        with contextlib.suppress(ValueError, ConnectionError):  # a line too long, a reset
            while raw := await process.stdout.readline():
                message = _read(raw)
                if message.get("type") == "acting":
                    self._acting = True  # also while leaving: a disarm may have come too late
                if message.get("type") == "acting" and not self._leaving:
                    self._trigger = str(message.get("trigger"))
                    logger.warning(
                        "frontoffice guard (pid %s) is flattening the account: %s",
                        process.pid,
                        self._trigger,
                    )
        self._returncode = await process.wait()
        if self._beating is not None:
            self._beating.cancel()
        if self._leaving:
            return
        if self._trigger is not None:
            logger.warning(
                "frontoffice guard (pid %s) flattened the account (%s) and exited (%s); "
                "the account is no longer guarded",
                process.pid,
                self._trigger,
                _how(self._returncode),
            )
        else:
            logger.warning(
                "frontoffice guard (pid %s) died (%s): the account is no longer guarded",
                process.pid,
                _how(self._returncode),
            )

    # --- leaving -------------------------------------------------------------------------------

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None or self._leaving:
            return
        flatten = self._flattens_on(exc)
        armed = self.alive
        acting = self._trigger is not None and self._returncode is None
        self._leaving = True
        # No heartbeat after the last word: the disarm (or the end) is the last message.
        await _stopped(self._beating)
        if self._refreshing is not None:
            self._refreshing.cancel()
        stdin = process.stdin
        if armed and stdin is not None and not stdin.is_closing():
            last = {"type": "bye", "cause": _cause(exc)} if flatten else {"type": "disarm"}
            stdin.write(_line(last))
            with contextlib.suppress(ConnectionError):
                await stdin.drain()
            stdin.close()  # the end of the pipe: after a bye, the guard acts on it
        elif flatten and not acting:
            logger.error(
                "frontoffice guard is not running: nothing flattens the account on the way "
                "out (%s)",
                _cause(exc),
            )
        try:
            await self._wait_for_exit(process, flatten or acting)
        finally:
            # Also when the bot is cancelled meanwhile: no task of ours outlives the block
            # (the guard itself goes on with its flatten: it is its own process).
            await _stopped(self._refreshing)
            await _stopped(self._watching, cancel=process.returncode is None)
        self._returncode = process.returncode
        if flatten and armed:
            self._say_how_it_ended(exc)

    async def _wait_for_exit(self, process: asyncio.subprocess.Process, whole: bool) -> None:
        """Wait for the guard to exit: for its `whole` flatten, never cut short; else (it was
        disarmed) `DISARM_WAIT` at most, then kill it."""
        try:
            if whole:
                await process.wait()
            else:
                await asyncio.wait_for(process.wait(), DISARM_WAIT)
        except TimeoutError:
            if self._acting:
                # It began to flatten before the disarm reached it (the bot's loop stalled
                # past the timeout just before it left): never cut a flatten short.
                logger.warning(
                    "frontoffice guard (pid %s) was already flattening when the block was left: "
                    "waiting for its flatten",
                    self.pid,
                )
                await process.wait()
                return
            logger.warning(
                "frontoffice guard (pid %s) did not exit when disarmed: killed", self.pid
            )
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def _flattens_on(self, exc: BaseException | None) -> bool:
        if exc is None:
            return False
        if isinstance(exc, Exception) or _stray(exc):
            return self._on_error == "flatten"  # the bot's code failed
        return self._on_stop == "flatten"  # KeyboardInterrupt, SystemExit, cancellation

    def _say_how_it_ended(self, exc: BaseException | None) -> None:
        if self._returncode == 0:
            logger.warning(
                "frontoffice guard flattened the account on the way out (%s): verified",
                _cause(exc),
            )
        else:
            logger.error(
                "frontoffice guard flattened the account on the way out (%s), NOT verified "
                "(%s): something may still be open, see its journal",
                _cause(exc),
                _how(self._returncode),
            )


def guard_hello(
    *,
    timeout: object,
    base_url: str,
    account_id: str | None,
    accounts: str | list[str] | None,
    market_id: str | None,
    close_positions: bool,
    stop_order_ids: Mapping[str, Sequence[str]],
    rounds: int,
    journal: object,
    concurrency: int,
    request_timeout: float | None,
    retry: RetryPolicy,
    rate_limit: float | None,
    snapshot_settle: float | None,
    headers: Mapping[str, str],
) -> dict[str, Any]:
    """The hello's settings (all but the token), checked: the job, and the client's settings
    the guard's own client repeats (the same policy, limits and headers)."""
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, got {timeout!r}")
    if not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be a finite number of seconds > 0, got {timeout!r}")
    if journal is not None and not isinstance(journal, str | os.PathLike):
        # Another process writes it: a file object of this one cannot go there.
        raise TypeError(f"journal must be a path or None, got {type(journal).__name__}")
    policy = {
        name: sorted(value) if isinstance(value, frozenset) else value
        for name, value in attrs.asdict(retry).items()
    }
    return {
        "timeout": float(timeout),
        "base_url": base_url,
        "account_id": account_id,
        "accounts": accounts,
        "market_id": market_id,
        "close_positions": bool(close_positions),
        "stop_order_ids": {a: list(ids) for a, ids in stop_order_ids.items() if ids},
        "rounds": rounds,
        "journal": None if journal is None else os.path.abspath(os.fspath(journal)),
        "client": {
            "concurrency": concurrency,
            "timeout": request_timeout,
            "retry": policy,
            "rate_limit": rate_limit,
            "snapshot_settle": snapshot_settle,
            "headers": dict(headers),
        },
    }


def guard_environment(
    secrets: Collection[str], environ: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The bot's environment for the guard, less any variable that holds a token: the guard
    gets its token over the pipe, and /proc/PID/environ must not show one."""
    return {
        name: value
        for name, value in environ.items()
        if name != _TOKEN_VARIABLE and not any(s and s in value for s in secrets)
    }


# --- the lines ----------------------------------------------------------------------------------


def _line(message: Mapping[str, Any]) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode()


def _line_with_token(message: Mapping[str, Any], credential: Credential) -> bytes:
    """`message` with the token, as bytes: the token lives in this frame only."""
    return _line({**message, "token": credential.value.removeprefix("Bearer ")})


def _hello_line(hello: Mapping[str, Any], credential: Credential) -> bytes:
    return _line_with_token({"type": "hello", "version": PROTOCOL, **hello}, credential)


def _read(raw: bytes) -> dict[str, Any]:
    """One line of the guard's, or {} for anything that is not a JSON object."""
    try:
        message = json.loads(raw)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


_STATUS_ERRORS: Final[Mapping[str, type[APIStatusError]]] = {
    cls.__name__: cls
    for cls in (
        APIStatusError,
        BadRequestError,
        AuthenticationError,
        PermissionDeniedError,
        RateLimitError,
        ServerError,
    )
}


def _rebuilt(document: object, secrets: Collection[str]) -> FrontOfficeError:
    """The error the guard reported (its `as_dict()`, with method and url), as its own type
    when it is the platform's answer to the start check."""
    doc = document if isinstance(document, dict) else {}
    message = answers.mask(str(doc.get("message") or "no reason given"), secrets)
    kind, status = doc.get("type"), doc.get("status")
    method, url = str(doc.get("method") or "GET"), str(doc.get("url") or "")
    trace_id = doc.get("trace_id") if isinstance(doc.get("trace_id"), str) else None
    if isinstance(kind, str) and kind in _STATUS_ERRORS and isinstance(status, int):
        return _STATUS_ERRORS[kind](
            message, status=status, method=method, url=url, trace_id=trace_id
        )
    if kind == "APITimeoutError":
        return APITimeoutError(message, method=method, url=url)
    if kind == "APIConnectionError":
        return APIConnectionError(message, method=method, url=url)
    if kind == "TokenProviderError":
        return TokenProviderError(message)
    return GuardError(f"the guard could not start: {message}")


def _cause(exc: BaseException | None) -> str:
    """What made the bot leave, for the guard's journal: the type only (a message may hold
    anything)."""
    return "clean exit" if exc is None else type(exc).__name__


def _how(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


async def _stopped(task: asyncio.Future[Any] | None, *, cancel: bool = True) -> None:
    """`task` cancelled (unless `cancel` is False) and finished, without raising its end."""
    if task is None:
        return
    if cancel:
        task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: a failure here was already logged by its owner


def _retrieve(future: asyncio.Future[Any]) -> None:
    # A background refresh that failed: the next heartbeat goes without a token, as this one.
    if not future.cancelled():
        future.exception()


def _stray(exc: BaseException) -> bool:
    """A `CancelledError` nobody asked for (the task is not being cancelled): a failure of the
    code that raised it, not a request to stop."""
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is None or task.cancelling() == 0
