"""Bearer tokens: a fixed string or an async source, and the 401-refresh middleware.

A refreshable source is asked again once when a request gets 401; concurrent requests that
all hit the same stale token share one refresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeAlias

import aiohttp
from multidict import istr

__all__ = ["AuthMiddleware", "TokenProvider", "TokenSource"]

#: An async callable returning a fresh bearer token (without the "Bearer " prefix).
TokenProvider: TypeAlias = Callable[[], Awaitable[str]]

_AUTHORIZATION = istr("Authorization")
_Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]


def _bearer(token: object) -> str:
    if not isinstance(token, str):
        raise TypeError(f"a token must be a str, got {type(token).__name__}")
    token = token.strip()
    if not token:
        raise ValueError("the token is empty")
    if not token.isascii() or not token.isprintable() or " " in token:
        # Never echo the value: it is a secret.
        raise ValueError("the token holds spaces, control or non-ASCII characters")
    return "Bearer " + token


class TokenSource:
    """The current bearer token of one client. Its repr never shows the token.

    Built from a `str` (fixed) or an async callable (asked lazily, cached, and asked again
    once when a request gets 401).
    """

    __slots__ = ("_header", "_lock", "_provider", "refreshes")

    def __init__(self, token: str | TokenProvider) -> None:
        self._provider: TokenProvider | None
        self._header: str | None
        if isinstance(token, str):
            self._header = _bearer(token)
            self._provider = None
        elif callable(token):
            self._header = None
            self._provider = token
        else:
            raise TypeError(
                f"token must be a str or an async callable, got {type(token).__name__}"
            )
        self._lock = asyncio.Lock()
        #: How many times the provider was asked (for tests and metrics).
        self.refreshes = 0

    @property
    def can_refresh(self) -> bool:
        """True when a 401 can be answered by asking the provider again."""
        return self._provider is not None

    async def header(self) -> str:
        """The `Authorization` header value, fetching the first token if needed."""
        header = self._header
        if header is not None:
            return header
        return await self.refresh(stale=None)

    async def refresh(self, stale: str | None) -> str:
        """Fetch a new token unless another task already replaced `stale`."""
        if self._provider is None:
            raise RuntimeError("a fixed token cannot be refreshed")
        async with self._lock:
            if self._header is not None and self._header != stale:
                return self._header
            self.refreshes += 1
            self._header = _bearer(await self._provider())
            return self._header

    def __repr__(self) -> str:
        kind = "refreshable" if self._provider is not None else "fixed"
        return f"<TokenSource {kind}>"


class AuthMiddleware:
    """aiohttp client middleware: sets `Authorization`, refreshes once on 401."""

    __slots__ = ("source",)

    def __init__(self, source: TokenSource) -> None:
        self.source = source

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: _Handler
    ) -> aiohttp.ClientResponse:
        source = self.source
        header = source._header  # the fast path: no await when a token is cached
        if header is None:
            header = await source.header()
        request.headers[_AUTHORIZATION] = header
        response = await handler(request)
        if response.status != 401 or not source.can_refresh:
            return response
        response.release()
        request.headers[_AUTHORIZATION] = await source.refresh(stale=header)
        return await handler(request)

    def __repr__(self) -> str:
        return f"<AuthMiddleware {self.source!r}>"
