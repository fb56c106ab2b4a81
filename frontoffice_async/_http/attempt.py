"""One attempt of a call: send it, read the body within the attempt's limit and size cap.

`Exchange` carries what the attempts of one call learned back to the caller; `send_once`
runs one attempt and closes whatever fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp

from .gate import Gate, Halt
from .timers import AttemptTimers

__all__ = ["Exchange", "Handler", "Observer", "send_once"]

Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
#: Told of each attempt that reached the wire: (its number, the status or None, the failure's
#: name or None, seconds it took, the body read). A journal writes its `request` events so.
Observer = Callable[[int, int | None, str | None, float, bytes], None]
#: Runs the attempts of one call: the retry middleware's loop.
Run = Callable[
    [aiohttp.ClientRequest, Handler, "Exchange"], Coroutine[Any, Any, aiohttp.ClientResponse]
]


class Exchange:
    """One call through the retry middleware: the middleware of its request, and what the
    loop learned for the caller (requests sent, whether one may have reached the server
    without an answer, the body read, and whether that body was cut at the size cap)."""

    __slots__ = ("_run", "ambiguous", "attempts", "body", "halt", "observe", "slot", "truncated")

    def __init__(
        self,
        run: Run,
        halt: Halt | None = None,
        observe: Observer | None = None,
        slot: asyncio.Semaphore | None = None,
    ) -> None:
        self._run = run
        self.halt = halt
        self.observe = observe
        #: Flatten's gate over its accounts: taken before an attempt's checks and given back
        #: once its answer is read, never held through a backoff pause.
        self.slot = slot
        self.attempts = 0
        self.ambiguous = False
        self.body = b""
        self.truncated = False

    def __call__(
        self, request: aiohttp.ClientRequest, handler: Handler
    ) -> Coroutine[Any, Any, aiohttp.ClientResponse]:
        # Not `async def`: aiohttp awaits what a middleware returns, and handing it the loop's
        # own coroutine saves a frame per request.
        return self._run(request, handler, self)


async def send_once(
    request: aiohttp.ClientRequest,
    handler: Handler,
    exchange: Exchange,
    limit: float | None,
    max_body: int,
    gate: Gate,
    timers: AttemptTimers,
) -> aiohttp.ClientResponse:
    """Send once and read the body within `limit` seconds; close what fails.

    The body lands on `exchange`; a time limit that ran out raises `TimeoutError`.
    (Positional parameters: this runs once per request, and keywords cost.)
    """
    response: aiohttp.ClientResponse | None = None
    expiry = timers.arm(limit)
    gate.enter()
    # aiohttp sets `request.response` once the request is written: an attempt that ends
    # before (no connection free in the pool, connection refused) reached no server, so
    # it is not counted and cannot make a later 400/404 look like our own doing.
    request.response = None
    try:
        response = await handler(request)
        exchange.attempts += 1
        read = _read_now(response, max_body) or await _read_capped(response, max_body)
        exchange.body, exchange.truncated = read
    except asyncio.CancelledError:
        _fail(request, response, exchange)
        if expiry is None or not expiry.caused():
            raise
        raise TimeoutError from None
    except BaseException:
        _fail(request, response, exchange)
        raise
    finally:
        if expiry is not None:
            expiry.disarm()
        gate.leave()
        if exchange.slot is not None:
            exchange.slot.release()  # taken by the middleware's `_prepare` for this attempt
    return response


def _fail(
    request: aiohttp.ClientRequest,
    response: aiohttp.ClientResponse | None,
    exchange: Exchange,
) -> None:
    """An attempt failed: close its response; count it, as ambiguous, if it was sent."""
    if response is not None:
        response.close()  # counted already: the server answered
    elif getattr(request, "response", None) is not None:  # typed as always None
        exchange.attempts += 1
        exchange.ambiguous = True  # it may have reached the server and taken effect


def _read_now(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool] | None:
    """The body when all of it has arrived (a small answer comes with its headers), taken
    without a coroutine; None when it is still coming or is over `cap`."""
    content = response.content
    if content.is_eof() and content.total_bytes <= cap:
        return content.read_nowait(-1), False
    return None


async def _read_capped(response: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """The whole body, or its first `cap` bytes and True (the connection is then closed)."""
    content = response.content
    body = await content.read(cap + 1)  # usually all of it: it came with the headers
    if content.at_eof() or not body:
        return body, False
    chunks = [body]
    size = len(body)
    while size <= cap:
        chunk = await content.read(cap + 1 - size)
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    # Over the cap (counted after decompression, so a gzip bomb stops here): stop reading.
    response.close()
    return b"".join(chunks)[:cap], True
