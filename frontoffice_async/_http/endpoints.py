"""The endpoints: their URLs and headers, and the calls that build each request and read its
answer into a record.

`HttpShared` is what a client and all its views share on the request path (the session, the
token, the middleware's shared state, the URLs), built once from the constructor's arguments;
`ViewCalls` is one view's (its retry policy and per-attempt timeout, default account, extra
headers). To add an endpoint: its URL here, a method on `ViewCalls` that sends it through
`pipeline.send` and reads the answer with `_converter`, and a thin method on the client.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any, Final, TypeVar

import aiohttp
import attrs
from yarl import URL

from .. import _converter
from ..auth import OfflineTokenAuth, TokenProvider
from ..errors import ResponseValidationError
from ..models import Account, PositionsCloseAck
from ..retry import RetryBudget, RetryEvent, RetryPolicy
from . import answers, verdict
from .attempt import Observer
from .checks import (
    check_account_id,
    check_headers,
    normalise_base_url,
    order_path_segment,
    position_path_segment,
)
from .gate import Halt
from .middleware import RetryMiddleware, Shared
from .pipeline import Pipeline
from .ratelimit import RateLimiter
from .session import USER_AGENT, SessionHolder
from .tokens import TokenSource, exchange_offline_token

__all__ = ["HttpShared", "ViewCalls", "check_concurrency", "check_timeout"]

T = TypeVar("T")
_API: Final = "/frontoffice/api"
#: What the platform's own examples send on the stop-order and v4 position calls, with a body
#: or without (see the docs).
_V4_HEADERS: Final = {"Content-Type": "application/json; x-api-version=4.0"}
_CLOSE_ALL: Final = {"mode": "AllPositions"}

#: Makes the observer of one request's attempts from its id (a journal's; see `Observer`).
Watch = Callable[[str, str, str | None], Observer]

#: Cancels one id, unless the call's `Halt` is set by then (`Halted`): the record and the
#: attempts it took, or a `FrontOfficeError`.
Canceller = Callable[[str, Halt | None], Awaitable[tuple[T, int]]]


class HttpShared:
    """The request path of a `FrontOfficeClient`, shared by all its views."""

    __slots__ = (
        "accounts_url",
        "base",
        "bulk_close_url",
        "holder",
        "middleware",
        "orders_prefix",
        "positions_prefix",
        "stop_orders_prefix",
        "tokens",
    )

    def __init__(
        self,
        base_url: str,
        *,
        token: str | TokenProvider,
        retry: RetryPolicy | None,
        timeout: float | aiohttp.ClientTimeout | None,
        concurrency: int,
        rate_limit: float | None,
        session: aiohttp.ClientSession | None,
        trace_configs: Iterable[aiohttp.TraceConfig] | None,
        retry_budget: RetryBudget | None,
        max_body_size: int,
        on_retry: Callable[[RetryEvent], object] | None,
        sleep: Callable[[float], Awaitable[object]],
        clock: Callable[[], float],
        rand: Callable[[], float],
    ) -> None:
        base = self.base = normalise_base_url(base_url)
        if session is not None and trace_configs is not None:
            raise ValueError(
                "trace_configs go to the session the client creates; with "
                "session=, add them to that session"
            )
        if isinstance(max_body_size, bool) or not isinstance(max_body_size, int):
            raise TypeError(f"max_body_size must be an int, got {max_body_size!r}")
        if max_body_size < 1:
            raise ValueError(f"max_body_size must be a positive int, got {max_body_size!r}")
        session_timeout, attempt_timeout = split_timeout(timeout)
        holder = self.holder = SessionHolder(
            session,
            connector_limit=max(100, check_concurrency(concurrency)),
            timeout=session_timeout,
            trace_configs=list(trace_configs or ()),
        )
        if isinstance(token, OfflineTokenAuth):
            token.bind(functools.partial(exchange_offline_token, holder.get, base))
        # The client's monotonic clock: a step of the wall clock must not stall the provider.
        tokens = self.tokens = TokenSource(token, clock=clock)
        shared = Shared(
            tokens,
            budget=retry_budget if retry_budget is not None else RetryBudget(),
            limiter=None
            if rate_limit is None
            else RateLimiter(rate_limit, clock=clock, sleep=sleep),
            gate=holder.gate,
            max_body=max_body_size,
            on_retry=on_retry,
            sleep=sleep,
            clock=clock,
            rand=rand,
        )
        self.middleware = RetryMiddleware(
            retry if retry is not None else RetryPolicy(), attempt_timeout, shared
        )
        """The client's own middleware; a view's differs in policy and timeout only."""
        self.orders_prefix = f"{base}{_API}/v3/orders/"
        self.stop_orders_prefix = f"{base}{_API}/v3/stop-orders/"
        self.accounts_url = URL(f"{base}{_API}/v3/accounts", encoded=True)
        self.positions_prefix = f"{base}{_API}/v4/positions/"
        self.bulk_close_url = URL(self.positions_prefix + "bulk-close", encoded=True)

    def pipeline(self, middleware: RetryMiddleware) -> Pipeline:
        """A send pipeline through `middleware` on the shared session."""
        return Pipeline(self.holder.get, middleware, self.holder.their_middlewares)

    async def aclose(self) -> None:
        """Let no request leave, wait for those on the wire, close the session the client
        created, and stop a running token provider call."""
        await self.holder.close()
        await self.tokens.aclose()


def _optional_account_id(account_id: object) -> str | None:
    return None if account_id is None else check_account_id(account_id)


@attrs.frozen(eq=False)
class ViewCalls:
    """The calls of one client or view: its pipeline (retry policy, per-attempt timeout),
    default account and extra headers, on the shared request path."""

    http: HttpShared
    pipeline: Pipeline
    account_id: str | None = attrs.field(converter=_optional_account_id)
    headers: Mapping[str, str] = attrs.field(converter=check_headers)
    base_headers: Mapping[str, str] = attrs.field(init=False)
    """What every request of this view carries besides `Authorization` and `accountId`."""
    _by_account: dict[tuple[str, bool], dict[str, str]] = attrs.field(init=False, factory=dict)

    def __attrs_post_init__(self) -> None:
        # A borrowed session has none of our session-wide headers.
        extra = {} if self.http.holder.owns else {"User-Agent": USER_AGENT}
        object.__setattr__(self, "base_headers", {**extra, **self.headers})

    def account_for(self, account_id: str | None) -> str:
        """The call's account, or the default one; ValueError when there is none."""
        if account_id is None:
            if self.account_id is None:
                raise ValueError(
                    "no account id: pass account_id= to the call or to FrontOfficeClient"
                )
            return self.account_id
        return check_account_id(account_id)

    def headers_for(self, account_id: str, *, stop: bool = False) -> dict[str, str]:
        """The headers of a call on `account_id` (built once per account; `stop`: a stop-order
        or position call, with the platform's v4 Content-Type); RuntimeError when the client is
        closed or used from another loop, before anything else happens."""
        self.http.holder.get()
        key = (account_id, stop)
        headers = self._by_account.get(key)
        if headers is None:
            extra = _V4_HEADERS if stop else {}
            headers = {**extra, **self.base_headers, "accountId": account_id}
            self._by_account[key] = headers
        return headers

    def canceller(
        self,
        cls: type[T],
        account_id: str | None,
        *,
        stop: bool = False,
        watch: Watch | None = None,
        slot: asyncio.Semaphore | None = None,
    ) -> Canceller[T]:
        """Cancels one id of `cls` (an order, or with `stop` a stop order) on the account;
        `watch` makes each request's observer (a journal); `slot` is held while a request is
        on the wire (see `Pipeline.send`)."""
        http = self.http
        prefix = http.stop_orders_prefix if stop else http.orders_prefix
        headers = self.headers_for(self.account_for(account_id), stop=stop)
        if watch is not None or slot is not None:
            path = "/v3/stop-orders/{id}" if stop else "/v3/orders/{id}"
            return functools.partial(
                self._cancel, prefix, cls, headers, watch=watch, path=path, slot=slot
            )
        return functools.partial(self._cancel, prefix, cls, headers)

    async def _cancel(
        self,
        prefix: str,
        cls: type[T],
        headers: Mapping[str, str],
        order_id: str,
        halt: Halt | None = None,
        *,
        watch: Watch | None = None,
        path: str = "",
        slot: asyncio.Semaphore | None = None,
    ) -> tuple[T, int]:
        """DELETE one order; the record and the attempts it took, or a `FrontOfficeError`."""
        url = URL(prefix + order_path_segment(order_id), encoded=True)
        observe = None if watch is None else watch("DELETE", path, order_id)
        send = self.pipeline.send
        body, attempts, status = await send(
            "DELETE", url, headers, order_id=order_id, halt=halt, observe=observe, slot=slot
        )
        try:
            record = _converter.read_record(body, cls, url=url, attempts=attempts)
        except ResponseValidationError as error:
            # The body is kept on the error: a server that echoes the token must not show it.
            answers.scrub(error, self.http.tokens.secrets)
            raise
        # A 2xx is not proof: the order may have filled first, or still be working.
        if not verdict.is_cancelled(record, order_id):  # type: ignore[arg-type]
            secrets = self.http.tokens.secrets
            refused = verdict.not_cancelled(
                record,  # type: ignore[arg-type]  # cls is Order or StopOrder
                order_id,
                status=status,
                url=str(url),
                attempts=attempts,
                secrets=secrets,
            )
            raise answers.scrub(refused, secrets)
        return record, attempts

    async def close_all_positions(
        self,
        account_id: str | None,
        *,
        watch: Watch | None = None,
        slot: asyncio.Semaphore | None = None,
    ) -> tuple[PositionsCloseAck, int]:
        """POST a bulk close of every position of the account: the acknowledgement and the
        requests it took. Not resent after it may have reached the platform (see `decide`)."""
        headers = self.headers_for(self.account_for(account_id), stop=True)
        url = self.http.bulk_close_url
        observe = None if watch is None else watch("POST", "/v4/positions/bulk-close", None)
        body, attempts, _ = await self.pipeline.send(
            "POST", url, headers, observe=observe, slot=slot, json=_CLOSE_ALL
        )
        ack = self._read(body, PositionsCloseAck, url, attempts)
        return _masked_ack(ack, self.http.tokens.secrets), attempts

    def position_closer(
        self,
        account_id: str | None,
        *,
        watch: Watch | None = None,
        slot: asyncio.Semaphore | None = None,
    ) -> Canceller[str]:
        """Closes one whole position of the account (POST `.../positions/{id}/close`, no body):
        the id the platform took and the requests it took."""
        headers = self.headers_for(self.account_for(account_id), stop=True)
        return functools.partial(self._close, headers, watch, slot)

    async def _close(
        self,
        headers: Mapping[str, str],
        watch: Watch | None,
        slot: asyncio.Semaphore | None,
        position_id: str,
        halt: Halt | None = None,
    ) -> tuple[str, int]:
        segment = position_path_segment(position_id)
        url = URL(f"{self.http.positions_prefix}{segment}/close", encoded=True)
        path = "/v4/positions/{id}/close"
        observe = None if watch is None else watch("POST", path, position_id)
        body, attempts, _ = await self.pipeline.send(
            "POST", url, headers, halt=halt, observe=observe, slot=slot
        )
        data = self._read_json(body, url, attempts)
        taken = data.get("positionId") if isinstance(data, dict) else None
        if taken != position_id:
            error = _converter.invalid_response(
                f"expected positionId {position_id!r}", "positionId", url, body
            )
            error.attempts = attempts
            raise answers.scrub(error, self.http.tokens.secrets)
        return position_id, attempts

    def _read(self, body: bytes, cls: type[T], url: URL, attempts: int) -> T:
        """A 2xx body as a `cls` record, or `ResponseValidationError` (masked)."""
        data = self._read_json(body, url, attempts)
        try:
            return _converter.structure(data, cls, url=url, body=body)
        except ResponseValidationError as error:
            error.attempts = attempts
            raise answers.scrub(error, self.http.tokens.secrets) from None

    def _read_json(self, body: bytes, url: URL, attempts: int) -> Any:
        try:
            return _converter.load_body(body, url)
        except ResponseValidationError as error:
            error.attempts = attempts
            raise answers.scrub(error, self.http.tokens.secrets) from None

    async def list_accounts(self) -> list[Account]:
        """GET the accounts the token can act on."""
        self.http.holder.get()  # closed or wrong loop: say so before anything else
        url = self.http.accounts_url
        body, attempts, _ = await self.pipeline.send("GET", url, self.base_headers)
        try:
            return _converter.read_list(body, Account, url=url, attempts=attempts)
        except ResponseValidationError as error:
            answers.scrub(error, self.http.tokens.secrets)  # a server may echo the token
            raise


def check_concurrency(concurrency: object) -> int:
    """`concurrency` if it is a positive int, else ValueError."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
    return concurrency


def split_timeout(
    timeout: float | aiohttp.ClientTimeout | None,
) -> tuple[aiohttp.ClientTimeout, float | None]:
    """(the session's timeout, the per-attempt limit the retry middleware enforces)."""
    # The session's `total` would span every retry and sleep, so it stays unset.
    if isinstance(timeout, aiohttp.ClientTimeout):
        per_attempt = check_timeout(timeout.total)
        session_timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeout.connect,
            sock_connect=timeout.sock_connect,
            sock_read=timeout.sock_read,
        )
    else:
        per_attempt = check_timeout(timeout)
        session_timeout = aiohttp.ClientTimeout(total=None)
    return session_timeout, per_attempt


def check_timeout(timeout: object) -> float | None:
    """A per-attempt limit: seconds > 0 and finite, an `aiohttp.ClientTimeout` (its
    `total`), or None for none."""
    if isinstance(timeout, aiohttp.ClientTimeout):
        timeout = timeout.total
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r}")
    if not 0 < timeout < math.inf:
        raise ValueError(f"timeout must be > 0 seconds and finite, or None, got {timeout!r}")
    return float(timeout)


def _masked_ack(ack: PositionsCloseAck, secrets: Collection[str]) -> PositionsCloseAck:
    """`ack` with any token it echoes hidden: a record is shown (repr, `as_dict`, journal)."""
    status = answers.mask(ack.status, secrets)
    ids = tuple([answers.mask(position_id, secrets) for position_id in ack.position_ids])
    if status == ack.status and ids == ack.position_ids:
        return ack
    return attrs.evolve(ack, status=status, position_ids=ids)
