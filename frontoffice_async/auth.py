"""Bearer tokens: a fixed string, an async provider, or an offline-token exchange.

Pass one as `FrontOfficeClient(token=...)`. The client keeps the token (`_http.tokens`): a
refreshable one is asked again before its JWT expires and once when a call gets 401.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, TypeAlias

__all__ = ["OfflineTokenAuth", "TokenProvider"]

#: An async callable returning a fresh bearer token (without the "Bearer " prefix).
TokenProvider: TypeAlias = Callable[[], Awaitable[str]]

ACCESS_TOKEN_PATH: Final = "/frontoffice/api/v4/access-token"  # noqa: S105 -- a path

#: Sends one exchange: (path, offline token, timeout) -> the access token. Raises a
#: `FrontOfficeError` that never shows the offline token.
Exchange: TypeAlias = Callable[[str, str, float], Awaitable[str]]


def bearer_header(token: object) -> str:
    """The `Authorization` value for `token`; ValueError/TypeError never echo the token."""
    if not isinstance(token, str):
        raise TypeError(f"a token must be a str, got {type(token).__name__}")
    token = token.strip()
    if not token:
        raise ValueError("the token is empty")
    if not token.isascii() or not token.isprintable() or " " in token:
        raise ValueError("the token holds spaces, control or non-ASCII characters")
    return "Bearer " + token


class OfflineTokenAuth:
    """Token provider that exchanges an offline token for short-lived access tokens.

    Pass it as `token=`; the client binds it to its base URL and session. The exchange is
    `POST {base_url}{path}` with `{"token": offline_token}`, answered by `{"accessToken": ...}`
    (third-party knowledge, hence the configurable `path`). The access token is refreshed
    before its JWT `exp` (or after 55 minutes when unreadable), and once on a 401. A failed
    exchange reaches the caller as `TokenProviderError` whose `__cause__` says why.

    Example:
        >>> FrontOfficeClient(url, token=OfflineTokenAuth(os.environ["FO_OFFLINE_TOKEN"]))
    """

    def __init__(
        self, offline_token: str, *, path: str = ACCESS_TOKEN_PATH, timeout: float = 10.0
    ) -> None:
        bearer_header(offline_token)  # same rules as any token; the value is never echoed
        self._offline_token = offline_token.strip()
        self.path: str = path if path.startswith("/") else "/" + path
        """Path of the exchange endpoint, appended to the client's base URL."""
        self.timeout: float = timeout
        """Seconds one exchange may take."""
        self._exchange: Exchange | None = None
        self.exchanges: int = 0
        """Exchanges made so far."""

    def bind(self, exchange: Exchange) -> None:
        """Called by `FrontOfficeClient`: what sends the exchange (its base URL and session)."""
        self._exchange = exchange

    async def __call__(self) -> str:
        """Exchange the offline token; returns the access token."""
        if self._exchange is None:
            raise RuntimeError(
                "OfflineTokenAuth is not bound: pass it as FrontOfficeClient(token=)"
            )
        self.exchanges += 1
        return await self._exchange(self.path, self._offline_token, self.timeout)

    def __repr__(self) -> str:
        return f"<OfflineTokenAuth path={self.path!r}>"
