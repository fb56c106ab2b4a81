"""What `frontoffice guard` acts with: the job, the token it holds, its session opened and
checked before it watches (`Armed`), and the flatten itself (`act`).

The token is held by `Token` alone (its repr hides it) and never printed. The journal is the
library's flatten journal, whose `run` event gains why the guard acted (`trigger`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from . import output
from .common import EXIT_FAILED, UsageError, flatten_exit_code
from .process import divert_signals

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    import aiohttp

    from frontoffice_async import FlattenResult, FrontOfficeClient

__all__ = [
    "NOTE",
    "PROTOCOL",
    "TOKEN_COMMAND_TIMEOUT",
    "Armed",
    "Job",
    "Token",
    "act",
    "answer",
    "job_from_hello",
]

#: The pipe protocol this guard speaks (the hello's `version`).
PROTOCOL: Final = 1
#: Seconds `--token-command` may take.
TOKEN_COMMAND_TIMEOUT: Final = 30.0
#: How the guard's lines on stderr start.
NOTE: Final = "frontoffice guard: "


@dataclass(frozen=True)
class Job:
    """What the guard flattens, and the settings of the client it does it with."""

    timeout: float
    base_url: str
    account_id: str | None
    accounts: str | list[str] | None
    market_id: str | None
    close_positions: bool
    stop_order_ids: dict[str, list[str]]
    rounds: int
    journal: str | None
    #: `FrontOfficeClient` keywords: concurrency, timeout, retry, rate_limit, ...
    client: dict[str, Any]

    @property
    def named(self) -> list[str]:
        """The accounts asked by id (none for "all")."""
        if self.accounts is None:
            return [] if self.account_id is None else [self.account_id]
        return [] if self.accounts == "all" else list(self.accounts)

    def describe(self) -> str:
        """What is flattened, in words."""
        if self.accounts == "all":
            return "every account of the token"
        named = self.named
        return ("account " if len(named) == 1 else "accounts ") + ", ".join(named)


def job_from_hello(hello: Mapping[str, Any]) -> Job:
    """The hello's job, checked: a UsageError names what is wrong (never the token)."""
    from frontoffice_async import RetryPolicy  # noqa: PLC0415 - `--help` stays light

    if hello.get("type") != "hello" or hello.get("version") != PROTOCOL:
        raise UsageError(f"the first line is not a hello of protocol version {PROTOCOL}")
    settings = hello.get("client")
    timeout, accounts = hello.get("timeout"), hello.get("accounts")
    stops = hello.get("stop_order_ids")
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise UsageError("the hello's timeout is not a number of seconds > 0")
    if not (accounts is None or accounts == "all" or _strs(accounts)):
        raise UsageError('the hello\'s accounts are not null, "all" or a list of ids')
    if not isinstance(stops, dict) or not all(_strs(ids) for ids in stops.values()):
        raise UsageError("the hello's stop_order_ids are not a mapping of account to ids")
    if not isinstance(settings, dict) or not isinstance(hello.get("base_url"), str):
        raise UsageError("the hello has no base_url or client settings")
    client = {
        name: settings.get(name)
        for name in ("concurrency", "timeout", "rate_limit", "snapshot_settle")
    }
    try:
        client["retry"] = RetryPolicy(**settings.get("retry") or {})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the hello's retry policy: {exc}") from None
    client["default_headers"] = settings.get("headers") or None
    return Job(
        timeout=float(timeout),
        base_url=hello["base_url"],
        account_id=hello.get("account_id"),
        accounts=accounts,
        market_id=hello.get("market_id"),
        close_positions=hello.get("close_positions") is not False,
        stop_order_ids=stops,
        rounds=hello.get("rounds") or 3,
        journal=hello.get("journal"),
        client=client,
    )


def _strs(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


class Token:
    """The token the guard acts with: from the hello and the heartbeats, from the flag or the
    environment, or from `--token-command`. Its own repr hides it; nothing prints it."""

    __slots__ = ("_command", "_fresh", "_value", "known")

    def __init__(self, command: list[str] | None = None) -> None:
        self._command = command
        self._value: str | None = None
        self._fresh = False
        self.known: list[str] = []
        """Tokens held so far, newest last: masked in what the guard prints."""

    def set(self, value: object) -> bool:
        """Hold `value` if it can be a bearer token; whether it could."""
        if not isinstance(value, str):
            return False
        value = value.strip()
        if not value or not (value.isascii() and value.isprintable()) or " " in value:
            return False
        self._value = value
        if value not in self.known:
            self.known = [*self.known[-7:], value]
        return True

    async def fetch(self) -> None:
        """Run the token command and hold its token (RuntimeError, never showing output)."""
        assert self._command is not None
        process = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE
        )
        try:
            out, _ = await asyncio.wait_for(process.communicate(), TOKEN_COMMAND_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(
                f"the token command did not finish within {TOKEN_COMMAND_TIMEOUT:g} s"
            ) from None
        if process.returncode != 0:
            raise RuntimeError(f"the token command exited with {process.returncode}")
        if not self.set(out.decode("utf-8", "replace")):
            raise RuntimeError("the token command printed no usable token")
        self._fresh = True

    async def refresh(self) -> str | None:
        """With `--token-command`, a fresh token for acting; if the command fails, the token
        held is used (the reason is returned, to be told). Without a command, nothing."""
        if self._command is None:
            return None
        try:
            await self.fetch()
        except (OSError, RuntimeError) as exc:
            self._fresh = True  # the next request goes with the token held
            return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return None

    async def __call__(self) -> str:
        """The client's token provider: the token held, or (with a command, on a refresh
        after a 401) a new one from the command."""
        if self._command is not None and not self._fresh:
            await self.fetch()
        self._fresh = False
        if self._value is None:
            raise RuntimeError("no token")
        return self._value

    def mask(self, text: str) -> str:
        for token in self.known:
            text = text.replace(token, "[hidden]")
        return text

    def __repr__(self) -> str:
        return "<token hidden>"


# --- armed: the session open, the token checked ------------------------------------------------


class Armed:
    """The guard's HTTP session, opened and checked (and its journal's place) before it
    watches. The journal is opened when the guard acts (by flatten): a guard that is disarmed
    leaves no file behind."""

    def __init__(self, job: Job, token: Token) -> None:
        self.job = job
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        import aiohttp  # noqa: PLC0415 - `--help` stays light

        if self.job.journal is not None and not _can_write(self.job.journal):
            raise UsageError(f"cannot write the journal {self.job.journal}")
        self._session = aiohttp.ClientSession()
        try:
            await self._check()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def client(self) -> FrontOfficeClient:
        """A client on the guard's session, with the token it holds now."""
        from frontoffice_async import FrontOfficeClient  # noqa: PLC0415

        # None is "the library's default", except for `timeout`, where it is "no limit".
        settings = {k: v for k, v in self.job.client.items() if v is not None or k == "timeout"}
        return FrontOfficeClient(
            self.job.base_url,
            token=self.token,
            account_id=self.job.account_id,
            session=self._session,
            **settings,
        )

    async def _check(self) -> None:
        """The token works and may act on every account asked (and every account named in
        the stop orders)."""
        from frontoffice_async import GuardError  # noqa: PLC0415

        async with self.client() as client:
            listed = {account.account_id for account in await client.list_accounts()}
        asked = [*self.job.named, *self.job.stop_order_ids]
        missing = list(dict.fromkeys(a for a in asked if a not in listed))
        if missing:
            raise GuardError(
                "the token cannot act on " + ", ".join(missing) + " (not among its accounts)"
            )

    async def flatten(self, trigger: str, **why: Any) -> FlattenResult:
        """The library's flatten of the job, journaled with why it runs."""
        job = self.job
        fields = {k: v for k, v in {"trigger": trigger, **why}.items() if v is not None}
        async with self.client() as client:
            run = functools.partial(
                client.flatten,
                job.accounts,
                market_id=job.market_id,
                close_positions=job.close_positions,
                stop_order_ids=job.stop_order_ids,
                rounds=job.rounds,
                journal_fields=fields,
            )
            if job.journal is None:
                return await run()
            from frontoffice_async import FrontOfficeError  # noqa: PLC0415

            try:
                return await run(journal=job.journal)
            except OSError as exc:
                if isinstance(exc, FrontOfficeError):  # a timeout is an OSError too
                    raise
                # The journal could be written when the guard armed, and now cannot: it is
                # opened before anything is sent, so the run starts again without it.
                output.note(f"{NOTE}cannot open the journal: {exc.strerror}; going on without")
            return await run()


def _can_write(path: str) -> bool:
    """Whether the journal can be appended to (or created) now, without creating it."""
    if os.path.exists(path):
        return os.path.isfile(path) and os.access(path, os.W_OK)
    return os.access(os.path.dirname(os.path.abspath(path)), os.W_OK | os.X_OK)


# --- acting -------------------------------------------------------------------------------------


async def act(
    armed: Armed, trigger: str, why: str, *, tell_bot: bool, **journal: Any
) -> tuple[int, FlattenResult | None]:
    """Flatten now; the exit code (0 verified, 1 anything else) and the result. A signal no
    longer stops the guard: the flatten finishes first."""
    from frontoffice_async import FrontOfficeError  # noqa: PLC0415

    with divert_signals(lambda: output.note(NOTE + "finishing the flatten first")):
        if tell_bot:
            answer({"type": "acting", "trigger": trigger})
        output.note(f"{NOTE}{why}: flattening {armed.job.describe()}")
        failed = await armed.token.refresh()
        if failed is not None:
            output.note(f"{NOTE}--token-command: {failed}; acting with the token it had")
        result: FlattenResult | None = None
        try:
            result = await armed.flatten(trigger, **journal)
        except (FrontOfficeError, ValueError, TypeError) as exc:
            output.note(f"{NOTE}flatten failed: {armed.token.mask(output.error_text(exc))}")
            code = EXIT_FAILED
        else:
            code = flatten_exit_code(result)
            for line in _summary(result):
                output.note(NOTE + line)
        if tell_bot:
            verified = result is not None and result.verified
            answer({"type": "done", "code": code, "verified": verified})
    return code, result


def _summary(result: FlattenResult) -> list[str]:
    verdict = "verified" if result.verified else "NOT verified: something may still be open"
    lines = [f"flattened in {result.elapsed:.2f} s, {verdict}"]
    for account, flat in result.accounts.items():
        done = (
            f"{len(flat.orders.cancelled)} orders and {len(flat.stop_orders.cancelled)} stop "
            f"orders cancelled, {len(flat.positions.accepted)} positions closed"
        )
        left = "" if flat.verified else ", NOT verified"
        error = "" if flat.error is None else f" ({output.error_text(flat.error)})"
        lines.append(f"  {account}: {done}{left}{error}")
    return lines


def answer(message: Mapping[str, Any]) -> None:
    """One line to the bot on stdout; a bot that is gone is not an error."""
    data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
    with contextlib.suppress(OSError):
        while data:
            data = data[os.write(1, data) :]
