"""The send pipeline: one request through the middlewares and back, as a body or a typed error.

The client builds the URL and headers; `Pipeline.send` passes them through the retry
middleware (one `Exchange` per call, which carries back what the attempts learned) and maps
the answer: a 2xx body with its attempt count, or the error `_answers` builds for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from yarl import URL

from ..errors import ClientClosedError, FrontOfficeError, ResponseValidationError
from . import answers
from .attempt import Exchange, Observer
from .gate import Halt
from .middleware import RetryMiddleware

__all__ = ["Pipeline"]


class Pipeline:
    """Sends requests for one client or view: its retry middleware, on the shared session."""

    __slots__ = ("_session", "_theirs", "retry")

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        retry: RetryMiddleware,
        their_middlewares: tuple[Any, ...] = (),
    ) -> None:
        self._session = session
        self.retry = retry
        """This client's or view's middleware: its policy and timeout, and the shared state."""
        # A per-request `middlewares=` replaces the session's own: a borrowed session's
        # middlewares stay outside ours.
        self._theirs = their_middlewares

    def evolve(self, retry: RetryMiddleware) -> Pipeline:
        """The same pipeline with another middleware (a client view)."""
        return Pipeline(self._session, retry, self._theirs)

    async def send(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        *,
        order_id: str | None = None,
        halt: Halt | None = None,
        observe: Observer | None = None,
        slot: asyncio.Semaphore | None = None,
        json: object = None,
    ) -> tuple[bytes, int, int]:
        """The 2xx body, the attempts it took and its status, or the typed error of the answer.

        `order_id` marks a cancel endpoint (its 404 is `OrderNotFoundError`, its 400
        `OrderNotActiveError`). `halt` is the bulk call's stop signal (`Halted` is raised
        instead of sending once it is set). `observe` is told of each attempt (a journal);
        `slot` is held while each attempt is on the wire (flatten's gate over its accounts);
        `json` is the request's body, if it has one.
        """
        try:
            session = self._session()
            if session.closed:
                raise ClientClosedError("the aiohttp session passed as session= is closed")
            exchange = Exchange(self.retry.run, halt, observe, slot)
            theirs = self._theirs
            try:
                response = await session.request(
                    method,
                    url,
                    headers=headers,
                    json=json,
                    allow_redirects=False,
                    # Whatever the session says: our callers get our typed errors, not aiohttp's.
                    raise_for_status=False,
                    middlewares=(*theirs, exchange) if theirs else (exchange,),
                )
            except FrontOfficeError:
                raise
            except (aiohttp.ClientError, OSError) as exc:  # raised outside our middleware
                raise answers.connection_error(
                    exc,
                    method=method,
                    url=str(url),
                    attempts=exchange.attempts,
                    secrets=self.retry.shared.tokens.secrets,
                ) from exc
            attempts = exchange.attempts
            body = exchange.body
            if not attempts:
                # A middleware of a borrowed session answered without calling ours (a cache, a
                # test double): the body is still unread, and it counts as one attempt.
                body = await response.read()
                response.release()
                attempts = 1
            status = response.status
            if 200 <= status < 300:
                if exchange.truncated:
                    text = body.decode("utf-8", "replace")
                    secrets = self.retry.shared.tokens.secrets
                    raise ResponseValidationError(
                        f"the body is larger than the {self.retry.shared.max_body} bytes allowed",
                        url=str(url),
                        body=answers.keep(text, answers.BODY_KEPT, secrets),
                        attempts=attempts,
                    )
                return body, attempts, status
            raise answers.status_error(
                status=status,
                method=method,
                url=str(url),
                headers=response.headers,
                body=body,
                attempts=attempts,
                order_id=order_id,
                after_retry=exchange.ambiguous,
                secrets=self.retry.shared.tokens.secrets,
            )
        except FrontOfficeError as error:
            # A server (or a proxy) may echo the token back: it must not reach the caller.
            answers.scrub(error, self.retry.shared.tokens.secrets)
            raise
