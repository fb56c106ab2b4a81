"""Connecting until a snapshot arrives: the hub's settings, and the retry policy applied to
connections (attempts, full-jitter backoff, the client's retry budget, a time limit)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
import attrs
from yarl import URL

from .._http.middleware import announce
from .._http.tokens import Credential, TokenSource
from ..errors import APIStatusError, APITimeoutError, ClientClosedError, TokenProviderError
from ..retry import NO_RETRY_REFUND, RetryBudget, RetryEvent, RetryPolicy, decide
from .connection import Connection
from .protocol import OPEN_ORDERS, Failure, Late, StreamKind
from .transport import HubTransport

__all__ = [
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_SERVER_TIMEOUT",
    "Episode",
    "Hub",
    "first_item",
    "hub_url",
    "seconds",
]

T = TypeVar("T")

#: Seconds of silence after which the hub counts as dead (it pings every 15 s).
DEFAULT_SERVER_TIMEOUT: Final = 30.0
#: Seconds for the websocket upgrade and the SignalR handshake of one connection.
DEFAULT_HANDSHAKE_TIMEOUT: Final = 15.0
_HUB_PATH: Final = "frontoffice/ws/v4/account"


def hub_url(base_url: str) -> URL:
    """The account hub's URL for a REST base URL (ws or wss, keeping its path prefix)."""
    return URL(base_url).with_scheme("wss" if base_url.startswith("https") else "ws") / _HUB_PATH


class Hub:
    """Where and how a client reaches the account hub; shared by the client and its views.

    Holds the hub's own aiohttp session (see `HubTransport`); `aclose` ends every stream and
    snapshot in progress and closes that session. `server_timeout` and `handshake_timeout`
    apply to snapshots (a stream takes its own).
    """

    def __init__(
        self,
        *,
        session: Callable[[], aiohttp.ClientSession],
        url: URL,
        tokens: TokenSource,
        budget: RetryBudget | None = None,
        server_timeout: float | None = DEFAULT_SERVER_TIMEOUT,
        handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT,
        on_retry: Callable[[RetryEvent], object] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        rand: Callable[[], float] = random.random,
        own_connector: bool = False,
    ) -> None:
        self.url = url
        """The hub URL, without a query (the token is added to each upgrade only)."""
        self.tokens = tokens
        self.budget = budget if budget is not None else RetryBudget()
        self.server_timeout = seconds("server_timeout", server_timeout)
        self.handshake_timeout = seconds("handshake_timeout", handshake_timeout)
        self.on_retry = on_retry
        self.sleep = sleep
        self.rand = rand
        self.transport = HubTransport(session, own_connector=own_connector)

    async def aclose(self) -> None:
        """End the streams and snapshots in progress (ClientClosedError) and close the hub's
        session. Idempotent."""
        await self.transport.aclose()

    def __repr__(self) -> str:
        return f"<Hub {self.url}>"


async def first_item(
    hub: Hub,
    episode: Episode,
    *,
    account_id: str,
    headers: Mapping[str, str],
    server_timeout: float | None,
    handshake_timeout: float | None,
    kind: StreamKind = OPEN_ORDERS,
) -> tuple[Connection, list[Any]]:
    """Connect until a connection delivers its first item (the snapshot), as `episode` allows.

    The connection returned is the caller's to hang up.
    """
    while True:
        episode.attempts += 1
        connection = Connection(
            hub.transport,
            url=hub.url,
            account_id=account_id,
            headers=headers,
            server_timeout=server_timeout,
            handshake_timeout=handshake_timeout,
            attempt=episode.attempts,
            kind=kind,
        )
        try:
            # A `Credential`, not the header's text: frame locals must not show the token.
            await connection.open(await episode.credential(), episode.deadline)
            records = await connection.next_item(episode.deadline)
        except Failure as exc:
            failure = exc
        except Late:
            await connection.hang_up()
            raise episode.late(None) from None
        except BaseException:
            await connection.hang_up()
            raise
        else:
            episode.succeeded()
            return connection, records
        await connection.hang_up()
        await episode.again(failure, connection.credential)


class Episode:
    """One run of connections until a snapshot arrives: the retry policy's attempts, backoff
    and budget, and a time limit over every wait (token provider, upgrade, items, sleeps)."""

    def __init__(
        self,
        hub: Hub,
        policy: RetryPolicy | None,
        *,
        limit: float | None,
        target: str = OPEN_ORDERS.target,
    ) -> None:
        policy = policy if policy is not None else RetryPolicy()
        self._hub = hub
        self._target = target
        # `decide` gets no deadline: the time left is checked here, against `limit`.
        self._policy = attrs.evolve(policy, deadline=None)
        # The hub ending a stream and allowing a new one (a deploy, a Close with
        # `allowReconnect`) is not a connection error: reconnect even when the policy does not
        # resend after those.
        self._invited_policy = attrs.evolve(self._policy, retry_connection_errors=True)
        self._loop = asyncio.get_running_loop()
        self.limit = limit
        self.started = self._loop.time()
        self.deadline = None if limit is None else self.started + limit
        """Loop time by which a snapshot must have arrived (None: no limit)."""
        self.attempts = 0
        """Connections tried so far (the current one included)."""
        self._refreshed = False
        self._spent = 0

    async def credential(self) -> Credential:
        """The credential for the next upgrade (the provider asked if need be)."""
        tokens = self._hub.tokens
        cached = tokens.cached_credential()
        if cached is not None:
            return cached
        return await self._within(tokens.credential(), sent=self.attempts - 1)

    async def again(self, failure: Failure, used: Credential | None) -> None:
        """Get ready for the next connection (refresh the token after a 401, or back off), or
        raise the error that ends the run."""
        hub = self._hub
        if failure.status == 401:
            tokens = hub.tokens
            if self._refreshed:
                tokens.refused(used)
            elif (
                self.attempts < self._policy.max_attempts
                and tokens.should_refresh(used)
                and not self._past()
            ):
                # One more attempt of this run: same time limit, no budget tokens, no sleep.
                self._refreshed = True
                await self._within(tokens.refresh(stale=used), sent=self.attempts)
                return
            raise failure.error
        if not failure.retry:
            raise failure.error
        decision = decide(
            self._invited_policy if failure.invited else self._policy,
            method="GET",
            attempt=self.attempts,
            status=failure.status,
            timed_out=failure.timed_out,
            retry_after=failure.retry_after,
            elapsed=self._loop.time() - self.started,
            budget_left=hub.budget.available,
            rand=hub.rand(),
        )
        if not decision.retry:
            raise failure.error
        if self.deadline is not None and self._loop.time() + decision.delay >= self.deadline:
            raise self.late(failure)
        hub.budget.acquire(decision.cost)
        self._spent += decision.cost
        self._announce(failure, decision.delay)
        await hub.sleep(decision.delay)
        if hub.transport.closed:
            raise ClientClosedError(
                f"the client was closed while the {self._target} hub reconnected"
            )

    def succeeded(self) -> None:
        """A snapshot arrived: give the retry budget back what this run took (or 1 token)."""
        self._hub.budget.release(self._spent or NO_RETRY_REFUND)

    def late(self, failure: Failure | None) -> APITimeoutError:
        """The error for a run whose time limit passed (`failure`: the last connection's)."""
        last = "" if failure is None else f"; the last connection: {_reason(failure)}"
        return APITimeoutError(
            f"no {self._target} snapshot within {self.limit:g}s{last}",
            method="GET",
            url=str(self._hub.url),
            attempts=self.attempts,
        )

    def _past(self) -> bool:
        return self.deadline is not None and self._loop.time() >= self.deadline

    async def _within(self, awaitable: Awaitable[T], *, sent: int) -> T:
        """Await the token provider within the run's time limit (`sent`: upgrades sent)."""
        scope = asyncio.timeout_at(self.deadline)
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if not scope.expired():
                raise
            raise APITimeoutError(
                f"no {self._target} snapshot within {self.limit:g}s: still waiting for the token "
                "provider",
                method="GET",
                url=str(self._hub.url),
                attempts=sent,
            ) from None
        except TokenProviderError as exc:
            # The provider's failure is shared by every caller of its episode: give this run
            # its own error (the requests it sent, the provider's exception as the cause).
            own = TokenProviderError(str(exc), attempts=sent)
            raise own from exc.__cause__

    def _announce(self, failure: Failure, delay: float) -> None:
        url = str(self._hub.url)
        event = RetryEvent("GET", url, self.attempts, delay, failure.cause, failure.status)
        # "%.0s": the line does not show the method (always GET).
        line = "reconnecting to %.0s%s after connection %d (%s) in %.3fs"
        announce(event, self._hub.on_retry, line)


def _reason(failure: Failure) -> str:
    error = failure.error
    if isinstance(error, APIStatusError):
        return f"{error.status} {error.message}"
    return str(error.args[0]) if error.args else type(error).__name__


def seconds(name: str, value: float | None) -> float | None:
    if value is not None and (isinstance(value, bool) or not value > 0):
        raise ValueError(f"{name} must be > 0 seconds or None, got {value!r}")
    return value
