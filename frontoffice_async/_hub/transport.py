"""The hub's own aiohttp session, and the scope of a public hub call.

The upgrade goes through a session of the hub's own: it follows no redirect, resends nothing
behind the retry policy's back, and has no trace configs (the upgrade URL carries the token in
its query, and tracers record full URLs). When the client made its own session, the hub has a
connector of its own too: a websocket holds its connection for as long as it is open, and the
snapshots of a flatten over many accounts must not starve the REST requests of the client's
pool; a borrowed session's connector (its TLS settings) is shared. `aclose` ends every hub
wait and connection of the client. Also: what a refused or dropped upgrade means, and stopping
a helper task (`reap`). Token masking is `answers.mask`, shared with REST.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final, Protocol

import aiohttp
from multidict import CIMultiDict

from .._http import answers
from .._http.session import USER_AGENT
from ..errors import APIStatusError, ClientClosedError, FrontOfficeError, HubError
from .protocol import Failure

__all__ = ["Answer", "Dropped", "Guard", "HubTransport", "detach", "reap"]

#: Websockets open at once on the hub's own connector (the snapshots of 128 accounts).
HUB_CONNECTIONS: Final = 256
# Bytes (and seconds) of a refused upgrade's body read for the error message.
_ANSWER_BODY: Final = 64 * 1024
_ANSWER_BODY_WAIT: Final = 1.0


async def reap(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait until it is done, even when the caller is cancelled meanwhile
    (then the caller's cancellation is raised after, as a TaskGroup does). The task's outcome
    is dropped: whoever stops a helper task no longer wants what it would have given."""
    task.cancel()
    cancelled = False
    while not task.done():
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            cancelled = True
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not report it
    if cancelled:
        raise asyncio.CancelledError


class _Connection(Protocol):
    async def hang_up(self) -> None: ...


class HubTransport:
    """The hub's aiohttp session (made lazily, on the client's connector), the connections
    open on it, and the waits in progress, all of which `aclose` ends."""

    def __init__(
        self, session: Callable[[], aiohttp.ClientSession], *, own_connector: bool = False
    ) -> None:
        self._base = session
        self._own_connector = own_connector
        self._session: aiohttp.ClientSession | None = None
        self._connections: set[_Connection] = set()
        self._waiting: set[asyncio.Task[Any]] = set()
        self._interrupted: set[asyncio.Task[Any]] = set()
        self.closed = False
        """True once `aclose` began: no connection is opened any more."""

    def session(self) -> aiohttp.ClientSession:
        """The hub's session, created on first use; ClientClosedError once closed."""
        if self.closed:
            raise ClientClosedError("this FrontOfficeClient is closed; create a new one")
        base = self._base()  # ClientClosedError after close, RuntimeError in another loop
        session = self._session
        if session is None:
            connector = base.connector
            if base.closed or connector is None:
                raise ClientClosedError("the aiohttp session passed as session= is closed")
            if self._own_connector:
                connector = aiohttp.TCPConnector(limit=HUB_CONNECTIONS)
            # A borrowed session's pool and TLS settings, nothing else: no trace configs (the
            # URL holds the token), no middlewares or cookies of a borrowed session.
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                connector_owner=self._own_connector,
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=None),
                middlewares=(_upgrade_only,),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=base.trust_env,
            )
        if session.closed:
            raise ClientClosedError("the aiohttp session passed as session= is closed")
        return session

    def track(self, connection: _Connection) -> None:
        """A connection opened: `aclose` hangs it up."""
        self._connections.add(connection)

    def forget(self, connection: _Connection) -> None:
        """A connection was hung up."""
        self._connections.discard(connection)

    def guard(self, what: str) -> Guard:
        """A scope for a public hub call: `aclose` interrupts it with ClientClosedError, and
        the errors leaving it are detached from every exception behind them."""
        return Guard(self, what)

    async def aclose(self) -> None:
        """End every wait and connection (their callers get ClientClosedError), then close
        the session (and the hub's own connector; never a borrowed session's)."""
        if self.closed:
            return
        self.closed = True
        for task in self._waiting:
            self._interrupted.add(task)
            task.cancel()
        connections = list(self._connections)
        if connections:
            await asyncio.gather(*(connection.hang_up() for connection in connections))
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class Guard:
    """See `HubTransport.guard`."""

    __slots__ = ("_cancelling", "_task", "_transport", "_what")

    def __init__(self, transport: HubTransport, what: str) -> None:
        self._transport = transport
        self._what = what
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0

    async def __aenter__(self) -> None:
        transport = self._transport
        if transport.closed:
            raise ClientClosedError("this FrontOfficeClient is closed; create a new one")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("the OpenOrders hub needs a running task")
        self._task, self._cancelling = task, task.cancelling()
        transport._waiting.add(task)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        transport, task = self._transport, self._task
        assert task is not None
        transport._waiting.discard(task)
        if task in transport._interrupted:
            transport._interrupted.discard(task)
            if task.uncancel() <= self._cancelling and isinstance(exc, asyncio.CancelledError):
                raise ClientClosedError(f"the client was closed during {self._what}") from None
        if isinstance(exc, FrontOfficeError):
            detach(exc)


def detach(error: BaseException) -> None:
    """Cut `error` from the exceptions it was raised during.

    aiohttp's errors keep the request URL, which holds the token in its query; `raise ... from
    None` only hides them from printed tracebacks, `__context__` still reaches them.
    """
    error.__context__ = None
    error.__suppress_context__ = True
    if isinstance(error.__cause__, aiohttp.ClientError):
        error.__cause__ = None


class Answer(Exception):
    """The hub answered the upgrade with a status other than 101."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.body = body

    def failure(self, *, url: str, attempts: int, token: str) -> Failure:
        """How the connection failed (`url`: the hub URL without its query, `token`: the one
        the upgrade carried, hidden in what the answer echoes)."""
        status = self.status
        headers = CIMultiDict(
            (name, answers.HIDDEN if answers.mask(value, (token,)) != value else value)
            for name, value in self.headers
        )
        if 300 <= status < 400:
            # Not followed: the token in the query must not leave for another host.
            error: FrontOfficeError = APIStatusError(
                "the hub answered the upgrade with a redirect, which is not followed",
                status=status,
                method="GET",
                url=url,
                headers=headers,
                attempts=attempts,
            )
            return Failure(error, cause=str(status), retry=False, status=status)
        if status < 300:
            error = HubError(f"the hub answered the upgrade with HTTP {status}, not a websocket")
            return Failure(error, cause=str(status), retry=False, status=status)
        body = answers.mask(self.body.decode("utf-8", "replace"), (token,)).encode()
        error = answers.status_error(
            status=status, method="GET", url=url, headers=headers, body=body, attempts=attempts
        )
        retry_after = answers.retry_after_seconds(headers) if status in (429, 503) else None
        return Failure(error, cause=str(status), status=status, retry_after=retry_after)


class Dropped(Exception):
    """The connection dropped before the upgrade's answer."""

    def __init__(self, what: str, cause: str) -> None:
        super().__init__(what)
        self.what = what
        self.cause = cause


async def _upgrade_only(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """The hub session's middleware: any answer but 101 becomes `Answer`, so aiohttp follows
    no redirect (the token in the query never leaves for another host); a dropped connection
    becomes `Dropped`, so aiohttp does not silently send the upgrade again."""
    try:
        response = await handler(request)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
        what = answers.connection_error(exc, method="GET", url="", attempts=1).args[0]
        raise Dropped(str(what), type(exc).__name__) from None
    if response.status == 101:
        return response
    body = b""
    try:
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
            async with asyncio.timeout(_ANSWER_BODY_WAIT):
                body = await response.content.read(_ANSWER_BODY)
    finally:
        response.close()
    raise Answer(response.status, list(response.headers.items()), body)
