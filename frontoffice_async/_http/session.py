"""The aiohttp session behind a client and its views: made lazily, owned or borrowed."""

from __future__ import annotations

import asyncio
import platform
from collections.abc import Sequence
from typing import Any, Final

import aiohttp

from .._version import __version__
from ..errors import ClientClosedError
from .gate import Gate

__all__ = ["USER_AGENT", "SessionHolder"]

USER_AGENT: Final = (
    f"frontoffice-async/{__version__} aiohttp/{aiohttp.__version__} "
    f"python/{platform.python_version()}"
)


class SessionHolder:
    """Creates the client's `aiohttp.ClientSession` inside the running loop on first use
    (or holds the caller's), refuses use from another loop or after close, and on close waits
    for the requests on the wire before closing what it owns."""

    __slots__ = (
        "_connector_limit",
        "_loop",
        "_session",
        "_timeout",
        "_trace_configs",
        "closed",
        "gate",
        "owns",
    )

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        *,
        connector_limit: int,
        timeout: aiohttp.ClientTimeout,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self._session = session
        self.owns = session is None
        """True when the session is the client's own (created here, closed by `close`)."""
        self._connector_limit = connector_limit
        self._timeout = timeout
        self._trace_configs = list(trace_configs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.gate = Gate()
        """Shut by `close()`: no request leaves after it."""
        self.closed = False
        """True once `close()` has begun."""

    @property
    def their_middlewares(self) -> tuple[Any, ...]:
        """A borrowed session's own middlewares (they run outside ours)."""
        if self.owns or self._session is None:
            return ()
        return tuple(getattr(self._session, "_middlewares", ()) or ())

    @property
    def started(self) -> bool:
        """True once a session exists (created, or borrowed and used in a loop)."""
        return self._loop is not None and not self.closed

    def get(self) -> aiohttp.ClientSession:
        """The session, created on first use; RuntimeError after close or in another loop."""
        session = self._session
        loop = asyncio.get_running_loop()
        if session is not None and loop is self._loop:
            return session
        if self.closed:
            raise ClientClosedError("this FrontOfficeClient is closed; create a new one")
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise RuntimeError(
                "this FrontOfficeClient belongs to another event loop; create one client per loop"
            )
        if session is None:
            session = self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connector_limit),
                timeout=self._timeout,
                headers={"User-Agent": USER_AGENT},
                trace_configs=self._trace_configs or None,
            )
        return session

    async def close(self) -> None:
        """Let no request leave, wait for those on the wire, close the session if owned."""
        if self.closed:
            return
        self.closed = True
        await self.gate.shut()
        session, self._session = self._session, None
        if session is not None and self.owns:
            await session.close()
