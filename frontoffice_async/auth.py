"""Bearer tokens: a fixed string, an async source, or an offline-token exchange.

A refreshable source is asked again when its JWT is about to expire (or 55 minutes after the
last fetch when the token is not a readable JWT), and once when a request gets 401.
Concurrent requests that hit the same stale token share one refresh.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

import aiohttp
from multidict import istr
from yarl import URL

from .errors import (
    ResponseValidationError,
    make_connection_error,
    make_status_error,
)

__all__ = ["AuthMiddleware", "OfflineTokenAuth", "TokenProvider", "TokenSource"]

#: An async callable returning a fresh bearer token (without the "Bearer " prefix).
TokenProvider: TypeAlias = Callable[[], Awaitable[str]]

_AUTHORIZATION = istr("Authorization")
_Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
#: Refresh this long before a JWT's `exp`.
REFRESH_MARGIN: Final = 60.0
#: Lifetime assumed for a token whose expiry cannot be read (the platform's are ~60 min).
DEFAULT_LIFETIME: Final = 55 * 60.0
ACCESS_TOKEN_PATH: Final = "/frontoffice/api/v4/access-token"  # noqa: S105 -- a path


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


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim (unix seconds) of a JWT, or None if the token is not a readable JWT.

    The signature is not checked: the client only needs to know when to ask for a new one.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool) and math.isfinite(exp):
        return float(exp)
    return None


class TokenSource:
    """The current bearer token of one client. Its repr never shows the token.

    Built from a `str` (fixed) or an async callable (asked lazily, cached, and asked again
    once when a request gets 401).
    """

    __slots__ = ("_clock", "_header", "_lock", "_provider", "_refresh_at", "refreshes")

    def __init__(
        self, token: str | TokenProvider, *, clock: Callable[[], float] = time.time
    ) -> None:
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
        self._clock = clock
        # Wall-clock time after which a refreshable token is fetched again before use.
        self._refresh_at = math.inf
        self.refreshes = 0
        """How many times the provider was asked (for tests and metrics)."""

    @property
    def can_refresh(self) -> bool:
        """True when a 401 can be answered by asking the provider again."""
        return self._provider is not None

    def cached(self) -> str | None:
        """The header value if one is held and not about to expire; no I/O."""
        if self._clock() >= self._refresh_at:
            return None
        return self._header

    async def header(self) -> str:
        """The `Authorization` header value, fetching a token first if needed."""
        header = self.cached()
        if header is not None:
            return header
        return await self.refresh(stale=self._header)

    async def refresh(self, stale: str | None) -> str:
        """Fetch a new token unless another task already replaced `stale`."""
        if self._provider is None:
            raise RuntimeError("a fixed token cannot be refreshed")
        async with self._lock:
            if self._header is not None and self._header != stale:
                return self._header
            self.refreshes += 1
            token = await self._provider()
            header = _bearer(token)
            now = self._clock()
            expiry = jwt_expiry(token)
            if expiry is None:
                self._refresh_at = now + DEFAULT_LIFETIME
            else:
                # Never schedule in the past: a clock skew must not cause a refresh loop.
                self._refresh_at = max(expiry - REFRESH_MARGIN, now + 1.0)
            self._header = header
            return header

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
        header = source.cached()  # the fast path: no await while a token is fresh
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


class OfflineTokenAuth:
    """Token provider that exchanges an offline token for short-lived access tokens.

    Pass it as `token=`; the client binds it to its base URL and session. The exchange is
    `POST {base_url}{path}` with `{"token": offline_token}`, answered by `{"accessToken": ...}`
    (third-party knowledge, hence the configurable `path`). The access token is refreshed
    before its JWT `exp` (or after 55 minutes when unreadable), and once on a 401.

    Example:
        >>> FrontOfficeClient(url, token=OfflineTokenAuth(os.environ["FO_OFFLINE_TOKEN"]))
    """

    def __init__(
        self, offline_token: str, *, path: str = ACCESS_TOKEN_PATH, timeout: float = 10.0
    ) -> None:
        _bearer(offline_token)  # same rules as any token; the value is never echoed
        self._offline_token = offline_token.strip()
        self.path = path if path.startswith("/") else "/" + path
        self.timeout = timeout
        self._url: URL | None = None
        self._session: Callable[[], aiohttp.ClientSession] | None = None
        self.exchanges = 0
        """Exchanges made so far."""

    def bind(self, base_url: str, session: Callable[[], aiohttp.ClientSession]) -> None:
        """Called by `FrontOfficeClient`: where to exchange, and through which session."""
        self._url = URL(base_url.rstrip("/") + self.path)
        self._session = session

    async def __call__(self) -> str:
        """Exchange the offline token; returns the access token."""
        if self._url is None or self._session is None:
            raise RuntimeError(
                "OfflineTokenAuth is not bound: pass it as FrontOfficeClient(token=)"
            )
        url = self._url
        self.exchanges += 1
        try:
            # middlewares=() : the exchange must not go through the auth middleware (which
            # is waiting for this very call) nor be resent as a non-idempotent POST.
            async with self._session().post(
                url,
                json={"token": self._offline_token},
                middlewares=(),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                body = await response.read()
                status, headers = response.status, response.headers
        except (aiohttp.ClientError, OSError) as exc:
            raise make_connection_error(exc, method="POST", url=str(url), attempts=1) from exc
        if not 200 <= status < 300:
            raise make_status_error(
                status=status, method="POST", url=str(url), headers=headers, body=body
            )
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        token = data.get("accessToken") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise ResponseValidationError(
                "the token exchange returned no accessToken",
                url=str(url),
                path="accessToken",
                body="<not shown: may hold a token>",
            )
        return token

    def __repr__(self) -> str:
        return f"<OfflineTokenAuth path={self.path!r}>"
