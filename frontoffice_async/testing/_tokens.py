"""Bearer tokens the simulator accepts: which accounts each owns, until when, and the exchange."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterable

import attrs

__all__ = ["Grant", "TokenRegistry"]


@attrs.frozen
class Grant:
    """What a valid token may do: act on `accounts`, until `expires_at` (time.time())."""

    accounts: tuple[str, ...]
    expires_at: float | None = None


class TokenRegistry:
    """Issues, checks and revokes tokens; token text is reproducible for a seed."""

    def __init__(self, seed: int, *, clock: Callable[[], float] = time.time) -> None:
        self._seed = seed
        self._clock = clock
        self._count = 0
        self._grants: dict[str, Grant] = {}

    def issue(
        self, accounts: Iterable[str], *, token: str | None = None, ttl: float | None = None
    ) -> str:
        """Register `token` (or a fresh `sim-<hex>` one) for `accounts`, for `ttl` seconds."""
        if token is None:
            token = self._fresh("sim-", 32)
        expires_at = None if ttl is None else self._clock() + ttl
        self._grants[token] = Grant(tuple(accounts), expires_at)
        return token

    def issue_jwt(self, accounts: Iterable[str], *, ttl: float) -> str:
        """A JWT-shaped access token whose payload carries `exp`, valid for `ttl` seconds."""
        now = self._clock()
        header = {"alg": "none", "typ": "JWT"}
        payload = {
            "sub": "frontoffice-simulator",
            "iat": int(now),
            "exp": int(now + ttl),
            "jti": self._fresh("", 16),
        }
        signing_input = f"{_b64url_json(header)}.{_b64url_json(payload)}"
        # Unsigned in truth; a digest stands in so the token has the usual three parts.
        signature = _b64url(hashlib.sha256(f"{self._seed}:{signing_input}".encode()).digest())
        return self.issue(accounts, token=f"{signing_input}.{signature}", ttl=ttl)

    def check(self, token: str | None) -> Grant | None:
        """The grant of a valid token, or None (missing, unknown, revoked or expired)."""
        if not token:
            return None
        grant = self._grants.get(token)
        if grant is None:
            return None
        if grant.expires_at is not None and self._clock() >= grant.expires_at:
            return None
        return grant

    def revoke(self, token: str) -> None:
        """Make `token` invalid from now on (unknown tokens are ignored)."""
        self._grants.pop(token, None)

    def _fresh(self, prefix: str, length: int) -> str:
        while True:
            self._count += 1
            digest = hashlib.sha256(f"token:{self._seed}:{self._count}".encode()).hexdigest()
            token = prefix + digest[:length]
            if token not in self._grants:
                return token


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_json(data: object) -> str:
    return _b64url(json.dumps(data, separators=(",", ":")).encode())
