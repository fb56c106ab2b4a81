"""The client's bearer token: cached, refreshed before it expires and once after a 401.

Callers that need a token at the same time share one provider call (one "episode"); its failure
is their `TokenProviderError`. What they get is a `Credential`, an opaque object whose repr never
shows the token, so no frame's locals hold the token as a string (an error tracker that captures
locals, or `TracebackException(capture_locals=True)`, would show it). Also the request of the
offline-token exchange (`exchange_offline_token`), which `auth.OfflineTokenAuth` is bound to.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import aiohttp
from yarl import URL

from ..auth import OfflineTokenAuth, TokenProvider, bearer_header
from ..errors import (
    ClientClosedError,
    FrontOfficeError,
    ResponseValidationError,
    TokenProviderError,
)
from . import answers

__all__ = ["Credential", "TokenSource", "exchange_offline_token", "jwt_expiry"]

#: Refresh this long before a JWT's `exp`.
REFRESH_MARGIN: Final = 60.0
#: Lifetime assumed for a token whose expiry cannot be read (the platform's are ~60 min).
DEFAULT_LIFETIME: Final = 55 * 60.0
#: After a freshly fetched token is refused too, the provider is not asked again for this
#: long: a provider that keeps handing out a revoked token is asked once, not once per call.
REFUSED_COOLDOWN: Final = 10.0
#: After the provider fails, callers within this many seconds share that failure instead of
#: asking again: one provider call per episode, however many ids need a token at once.
FAILED_COOLDOWN: Final = 1.0
#: Tokens remembered for masking: a slow answer or a proxy's error may quote one long after it
#: was replaced (about three days of hourly refreshes; each is a few hundred bytes).
_REMEMBERED: Final = 64


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


class Credential:
    """One `Authorization` value handed out by a `TokenSource`: opaque, its repr shows only
    which generation it is. Compared by identity: a refresh makes a new one, so "is this the
    stale one?" needs no string comparison. Only `request.headers` should hold its `value`."""

    __slots__ = ("generation", "value")

    def __init__(self, value: str, generation: int) -> None:
        self.value = value
        """The header value, `Bearer <token>`: put it in the request's headers, nowhere else."""
        self.generation = generation
        """1 for the first token a source held, 2 after the first refresh, and so on."""

    def __repr__(self) -> str:
        return f"<Credential #{self.generation}>"

    __str__ = __repr__


#: What a caller hands back as "the credential I used" (None: it had none yet).
Stale = Credential | None


def _is(used: Stale, credential: Credential | None) -> bool:
    """Whether `used` is `credential` (by identity: a refresh makes a new one)."""
    return used is credential


class TokenSource:
    """The current bearer token of one client (and its views). Its repr never shows the token.

    Built from a `str` (fixed) or an async callable (asked lazily, cached, asked again before
    expiry and once when a request gets 401). `clock` is the client's monotonic clock: the
    refresh schedule and the provider's cooldowns run on it, so a step of the wall clock
    changes nothing; `wall` is only read to turn a JWT's `exp` into a time of `clock`.
    """

    __slots__ = (
        "_clock",
        "_closing",
        "_credential",
        "_failed_until",
        "_fetch_task",
        "_generation",
        "_known",
        "_offline",
        "_provider",
        "_refresh_at",
        "_refused",
        "_refused_until",
        "_wall",
        "refreshes",
    )

    def __init__(
        self,
        token: str | TokenProvider,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._provider: TokenProvider | None
        self._credential: Credential | None = None
        self._generation = 0
        # The last tokens handed out: what an error must never show, should a server echo one.
        self._known: deque[str] = deque(maxlen=_REMEMBERED)
        self._offline: tuple[str, ...] = ()
        if isinstance(token, str):
            self._hold(bearer_header(token))
            self._provider = None
        elif callable(token):
            self._provider = token
            if isinstance(token, OfflineTokenAuth) and token._offline_token:
                # The long-lived secret behind every token: masked like them (an echo, the
                # guard's environment), first in line so that no deque ever forgets it.
                self._offline = (token._offline_token,)
        else:
            raise TypeError(
                f"token must be a str or an async callable, got {type(token).__name__}"
            )
        self._clock = clock
        self._wall = wall
        # Time of `clock` after which a refreshable token is fetched again before use.
        self._refresh_at = math.inf
        self._fetch_task: asyncio.Task[Credential] | None = None
        self._refused: Credential | None = None
        self._refused_until = -math.inf
        self._failed_until = -math.inf
        self._closing = False
        self.refreshes = 0
        """How many times the provider was asked (for tests and metrics)."""

    @property
    def secrets(self) -> tuple[str, ...]:
        """The tokens lately in use (raw, without "Bearer "), and an `OfflineTokenAuth`'s
        offline token, for masking echoes of them."""
        return (*self._offline, *self._known)

    @property
    def can_refresh(self) -> bool:
        """True when a 401 can be answered by asking the provider again."""
        return self._provider is not None

    def cached_credential(self) -> Credential | None:
        """The credential if one is held and not about to expire; no I/O."""
        if self._clock() >= self._refresh_at:
            return None
        return self._credential

    async def credential(self) -> Credential:
        """The credential to send, fetching a token first if needed."""
        credential = self.cached_credential()
        if credential is not None:
            return credential
        return await self.refresh(stale=self._credential)

    def should_refresh(self, rejected: Stale) -> bool:
        """Whether a 401 for the credential (or header) `rejected` is worth asking the
        provider again."""
        if self._provider is None:
            return False
        return not (_is(rejected, self._refused) and self._clock() < self._refused_until)

    def refused(self, header: Stale) -> None:
        """A token fetched to answer a 401 was refused too: rest the provider a while."""
        if _is(header, self._credential):
            self._refused = self._credential
            self._refused_until = self._clock() + REFUSED_COOLDOWN

    async def refresh(self, stale: Stale) -> Credential:
        """A new credential, unless another caller already replaced `stale` with a fresh one.

        Concurrent callers share one provider call; a caller that stops waiting (deadline,
        cancellation) leaves the call running for the others.
        """
        if self._provider is None:
            raise RuntimeError("a fixed token cannot be refreshed")
        held = self._credential
        if held is not None and not _is(stale, held) and self.cached_credential() is not None:
            return held
        task = self._fetch_task
        if task is None or (task.done() and not self._failed_lately(task)):
            task = asyncio.get_running_loop().create_task(
                self._fetch(self._provider), name="frontoffice-token-provider"
            )
            task.add_done_callback(_retrieve)
            self._fetch_task = task
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            caller = asyncio.current_task()
            if task.cancelled() and self._closing and not (caller and caller.cancelling()):
                # `aclose()` stopped the provider, not our caller: say so, do not cancel it.
                raise ClientClosedError(
                    "the client was closed while the token provider was running"
                ) from None
            raise

    def _failed_lately(self, task: asyncio.Task[Credential]) -> bool:
        return (
            not task.cancelled()
            and task.exception() is not None
            and self._clock() < self._failed_until
        )

    async def aclose(self) -> None:
        """Stop a provider call still running (the client is closing): its waiters get
        `ClientClosedError`."""
        self._closing = True
        task, self._fetch_task = self._fetch_task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def _fetch(self, provider: TokenProvider) -> Credential:
        self.refreshes += 1
        try:
            return self._accept(await self._ask(provider))
        except TokenProviderError:
            self._failed_until = self._clock() + FAILED_COOLDOWN
            raise

    async def _ask(self, provider: TokenProvider) -> object:
        try:
            return await provider()
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # `aclose()` stopped the provider call
            # Raised by the provider itself (an HTTP client inside it being torn down, say):
            # a failure of the provider, not a cancellation of anyone's call.
            raise TokenProviderError(
                "the token provider raised CancelledError while nothing cancelled it"
            ) from exc
        except FrontOfficeError as exc:  # our own OfflineTokenAuth: its text is safe to show
            raise TokenProviderError(f"the token provider failed: {exc}") from exc
        except Exception as exc:
            # The provider's own text is not shown: it is the caller's code and may hold a secret.
            raise TokenProviderError(
                f"the token provider raised {type(exc).__name__} (see __cause__)"
            ) from exc

    def _accept(self, token: object) -> Credential:
        try:
            header = bearer_header(token)
        except (TypeError, ValueError) as exc:
            problem = str(exc)
        else:
            expiry = jwt_expiry(header.removeprefix("Bearer "))
            now = self._clock()
            if expiry is None:
                self._refresh_at = now + DEFAULT_LIFETIME
            else:
                # `exp` is wall time: what is left of it now, on the monotonic clock. Never in
                # the past: a skewed clock must not cause a refresh loop.
                left = expiry - REFRESH_MARGIN - self._wall()
                self._refresh_at = now + max(left, 1.0)
            return self._hold(header)
        # Not raised from the except block: its frame would keep the token as a local.
        del token
        raise TokenProviderError(f"the token provider returned no usable token: {problem}")

    def _hold(self, header: str) -> Credential:
        self._generation += 1
        credential = self._credential = Credential(header, self._generation)
        self._known.append(header.removeprefix("Bearer "))
        return credential

    def __repr__(self) -> str:
        kind = "refreshable" if self._provider is not None else "fixed"
        return f"<TokenSource {kind}>"


def _retrieve(task: asyncio.Task[Credential]) -> None:
    # Every waiter may have given up; the failure is theirs to see, not the loop's log's.
    if not task.cancelled():
        task.exception()


async def exchange_offline_token(
    session: Callable[[], aiohttp.ClientSession],
    base_url: str,
    path: str,
    offline_token: str,
    timeout: float,
) -> str:
    """POST the offline token to `base_url + path`; the `accessToken` of the answer.

    Raises the typed error of a failed exchange, with the offline token masked in it.
    """
    url = URL(base_url.rstrip("/") + path)
    try:
        # middlewares=(): the exchange must not go through the retry middleware, which is
        # waiting for this very token, nor be resent as a non-idempotent POST.
        async with session().post(
            url,
            json={"token": offline_token},
            middlewares=(),
            allow_redirects=False,
            raise_for_status=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as response:
            body = await response.read()
            status, headers = response.status, response.headers
    except (aiohttp.ClientError, OSError) as exc:
        error = answers.connection_error(
            exc, method="POST", url=str(url), attempts=1, secrets=(offline_token,)
        )
        raise answers.scrub(error, (offline_token,)) from exc
    if not 200 <= status < 300:
        refused = answers.status_error(
            status=status,
            method="POST",
            url=str(url),
            headers=headers,
            body=body,
            attempts=1,
            secrets=(offline_token,),
        )
        raise answers.scrub(refused, (offline_token,))
    try:
        data: Any = json.loads(body)
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
