"""One SignalR (JSON protocol) connection to the account hub, carrying one OpenOrders stream.

The connection opens (upgrade, handshake, stream invocation), reads items, pings the hub from
a task of its own (so a caller busy between items is not dropped), and says how it ended as a
`Failure` its caller can act on: connect again, or raise the error it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
from yarl import URL

from . import _answers, _converter
from ._answers import mask
from ._hub_transport import Answer, Dropped, Failure, HubTransport, Late, reap
from .errors import (
    APIConnectionError,
    APITimeoutError,
    ClientClosedError,
    FrontOfficeError,
    HubError,
    ResponseValidationError,
)

__all__ = ["KEEPALIVE", "Connection", "Failure", "Late"]

_RS: Final = "\x1e"  # SignalR record separator: every message ends with it
_HANDSHAKE: Final = '{"protocol":"json","version":1}' + _RS
_PING: Final = '{"type":6}' + _RS
_CANCEL: Final = '{"type":5,"invocationId":"0"}' + _RS
# SignalR message types (HubProtocolConstants) the client reads.
_STREAM_ITEM, _COMPLETION, _CLOSE = 2, 3, 7
# aiohttp's default (4 MiB) is a snapshot of ~7,000 orders: far too small for cancel-all.
_MAX_MESSAGE: Final = 256 * 1024 * 1024
#: Seconds between our own pings: the hub drops a client it has not heard for 30 s.
KEEPALIVE: Final = 15.0
#: Seconds our side waits for the hub's close reply: a courtesy, the result is already ours.
CLOSE_REPLY_WAIT: Final = 0.05
# Bound of each step of hanging up (a best-effort write, then the close), so a peer that
# reads nothing cannot hold us.
_HANG_UP_STEP: Final = 0.25
_WS_TIMEOUT: Final = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_REPLY_WAIT)
_KEPT: Final = 4096  # characters of an unreadable message kept on the error


class Connection:
    """One websocket to the hub carrying the OpenOrders stream of one account."""

    def __init__(
        self,
        transport: HubTransport,
        *,
        url: URL,
        account_id: str,
        headers: Mapping[str, str],
        server_timeout: float | None,
        handshake_timeout: float | None,
        attempt: int,
    ) -> None:
        self._transport = transport
        self._url = url
        self.safe_url = str(url)
        invocation = {"target": "OpenOrders", "arguments": [account_id], "invocationId": "0"}
        self._invocation = json.dumps({"type": 4, **invocation}) + _RS  # a StreamInvocation
        self._headers = headers
        self._server_timeout = server_timeout
        self._handshake_timeout = handshake_timeout
        self.attempt = attempt
        """Which connection of its caller's run this is (1 for the first): its `attempts`."""
        self.header = ""
        """The `Authorization` value whose token the upgrade carried."""
        self.items = 0
        """Stream items received."""
        self._token = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._pending: deque[str] = deque()
        self._invoked = False
        self._finished = False
        self._loop = asyncio.get_running_loop()
        self._heard_at = self._sent_at = self._loop.time()

    # --- opening ----------------------------------------------------------------------------

    async def open(self, header: str, deadline: float | None) -> None:
        """Upgrade, shake hands and start the stream, within the handshake timeout.

        Raises `Failure`, `Late` (the caller's `deadline` passed), or a final error.
        """
        self.header = header
        self._token = header.removeprefix("Bearer ")
        timeout = self._handshake_timeout
        until = None if timeout is None else self._loop.time() + timeout
        what = f"no websocket upgrade and SignalR handshake within {timeout or 0:g}s"
        await self._upgrade(deadline, until, what)
        await self._send(_HANDSHAKE, deadline, until, what)
        reply = await self._next_message(deadline, until, what)
        if reply.get("type") == _CLOSE:  # instead of the handshake's answer
            raise self._closed(reply)
        if reply.get("error"):
            raise Failure(
                HubError(f"the hub refused the handshake: {self._text(reply['error'])}"),
                cause="handshake refused",
                retry=False,
            )
        await self._send(self._invocation, deadline, until, what)
        self._invoked = True
        assert self._ws is not None  # the pinger is this connection's: `hang_up` awaits it
        self._pinger = asyncio.create_task(self._keep_alive(self._ws), name="frontoffice-hub-ping")

    async def _upgrade(self, deadline: float | None, until: float | None, what: str) -> None:
        session = self._transport.session()
        url = self._url.with_query(access_token=self._token)
        limit = _earliest(deadline, until)
        failure: Failure
        try:
            async with asyncio.timeout_at(limit) as scope:
                ws = await session.ws_connect(
                    url,
                    headers=self._headers,
                    timeout=_WS_TIMEOUT,
                    autoping=True,
                    heartbeat=None,
                    max_msg_size=_MAX_MESSAGE,
                )
        except Answer as answer:
            failure = answer.failure(url=self.safe_url, attempts=self.attempt, token=self._token)
        except Dropped as dropped:
            error = APIConnectionError(
                self._scrub(dropped.what), method="GET", url=self.safe_url, attempts=self.attempt
            )
            failure = Failure(error, cause=dropped.cause)
        except TimeoutError as exc:
            if not scope.expired():  # aiohttp's own (a connect timeout of the connector)
                failure = Failure(self._connection_error(exc), cause="timeout", timed_out=True)
            else:
                failure = self._timed_out(deadline, what)
        except aiohttp.WSServerHandshakeError as exc:  # a 101 that is no websocket upgrade
            error = APIConnectionError(
                f"the hub's answer is not a websocket upgrade: {_answers.one_line(exc.message)}",
                method="GET",
                url=self.safe_url,
                attempts=self.attempt,
            )
            failure = Failure(error, cause="bad upgrade")
        except (aiohttp.ClientError, OSError) as exc:
            failure = Failure(self._connection_error(exc), cause=type(exc).__name__)
        else:
            self._ws = ws
            self._heard_at = self._sent_at = self._loop.time()
            self._transport.track(self)
            return
        raise failure

    # --- reading ----------------------------------------------------------------------------

    async def next_item(self, deadline: float | None) -> list[Any]:
        """The records of the stream's next item: an array of orders, or a lone one.

        Raises `Failure` when the stream or the connection ends, or the hub goes silent for
        the server timeout; `Late` when `deadline` passes first.
        """
        what = f"the hub sent nothing for {self._server_timeout or 0:g}s"
        while True:
            message = await self._next_message(deadline, None, what)
            kind = message.get("type")
            if kind == _STREAM_ITEM and message.get("invocationId") == "0":
                self.items += 1
                return self._records(message.get("item"))
            if kind == _COMPLETION and message.get("invocationId") == "0":
                self._finished = True
                if message.get("error"):
                    error = HubError(
                        f"the OpenOrders stream failed: {self._text(message['error'])}"
                    )
                    raise Failure(error, cause="Completion with error", retry=False)
                error = HubError(self._ended("the hub completed the OpenOrders stream"))
                raise Failure(error, cause="Completion", graceful=True)
            if kind == _CLOSE:
                raise self._closed(message)
            # Pings, invocations and the items of other streams need no answer.

    def _closed(self, message: dict[str, Any]) -> Failure:
        """A Close message. `allowReconnect: true` means connect again, whatever its error (as
        the official client does: ASP.NET Core sends an error with it when it dropped a client
        that was silent too long). Without an error it is a graceful shutdown (a deploy), unless
        `allowReconnect` is false. An error without `allowReconnect: true` is final."""
        self._finished = True
        allowed = message.get("allowReconnect")
        if message.get("error"):
            error = HubError(f"the hub closed the connection: {self._text(message['error'])}")
            again = allowed is True
            return Failure(error, cause="Close with error", retry=again, invited=again)
        if allowed is False:
            error = HubError("the hub closed the connection and asked not to reconnect")
            return Failure(error, cause="Close", retry=False)
        error = HubError(self._ended("the hub closed the connection"))
        return Failure(error, cause="Close", graceful=True)

    def _records(self, item: object) -> list[Any]:
        if isinstance(item, list):
            return item
        if isinstance(item, dict):
            return [item]
        raise self._garbage(str(item)[:_KEPT], "an item that is neither an array nor an object")

    async def _next_message(
        self, deadline: float | None, until: float | None, what: str
    ) -> dict[str, Any]:
        while not self._pending:
            await self._receive(deadline, until, what)
        raw = self._pending.popleft()
        try:
            message = _converter.decode(raw)
        except (ValueError, RecursionError):
            raise self._garbage(raw, "a message that is not JSON") from None
        if not isinstance(message, dict):
            raise self._garbage(raw, "a message that is not a JSON object")
        return message

    async def _receive(self, deadline: float | None, until: float | None, what: str) -> None:
        """Receive one websocket message into `_pending`.

        `until` bounds the wait (the handshake); without it, the server timeout after the
        last message heard does.
        """
        ws = self._ws
        assert ws is not None
        silent_at = until
        if silent_at is None and self._server_timeout is not None:
            silent_at = self._heard_at + self._server_timeout
        scope = asyncio.timeout_at(_earliest(deadline, silent_at))
        try:
            async with scope:
                msg = await ws.receive()
        except TimeoutError:
            if not scope.expired():
                raise
            raise self._timed_out(deadline, what) from None
        self._heard_at = self._loop.time()
        if msg.type is aiohttp.WSMsgType.TEXT:
            data: str = msg.data
        elif msg.type is aiohttp.WSMsgType.BINARY:
            try:
                data = bytes(msg.data).decode("utf-8")
            except UnicodeDecodeError:
                raise self._garbage(
                    bytes(msg.data[:_KEPT]).decode("utf-8", "replace"),
                    "a binary message that is not UTF-8",
                ) from None
        else:
            raise self._lost(msg)
        if not data.endswith(_RS):
            raise self._garbage(data, "a message without the SignalR record separator")
        self._pending.extend(part for part in data.split(_RS) if part)

    def _lost(self, msg: aiohttp.WSMessage) -> BaseException:
        """The error for a websocket that closed or broke under us."""
        self._finished = True
        if self._transport.closed:
            return ClientClosedError("the client was closed while the OpenOrders stream was open")
        if msg.type is aiohttp.WSMsgType.ERROR and isinstance(msg.data, BaseException):
            return Failure(self._connection_error(msg.data), cause=type(msg.data).__name__)
        if self.items:
            error: FrontOfficeError = APIConnectionError(
                "the hub closed the websocket without a SignalR Close message",
                method="GET",
                url=self.safe_url,
                attempts=self.attempt,
            )
        else:
            error = HubError(self._ended("the hub closed the websocket"))
        return Failure(error, cause="websocket closed")

    # --- writing and hanging up -------------------------------------------------------------

    async def _send(
        self, text: str, deadline: float | None, until: float | None, what: str
    ) -> None:
        ws = self._ws
        assert ws is not None
        failure: Failure
        try:
            async with asyncio.timeout_at(_earliest(deadline, until)) as scope:
                await ws.send_str(text)
        except TimeoutError as exc:
            if not scope.expired():
                failure = Failure(self._connection_error(exc), cause="timeout", timed_out=True)
            else:
                failure = self._timed_out(deadline, what)
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            # RuntimeError: aiohttp's "cannot write to closing transport"
            if self._transport.closed:
                raise ClientClosedError(
                    "the client was closed while the OpenOrders stream was open"
                ) from None
            failure = Failure(self._connection_error(exc), cause=type(exc).__name__)
        else:
            self._sent_at = self._loop.time()
            return
        raise failure

    async def _keep_alive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Ping the hub after KEEPALIVE seconds without a send, whether the caller reads or not."""
        while not ws.closed:
            wait = self._sent_at + KEEPALIVE - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            try:
                await ws.send_str(_PING)
            except (aiohttp.ClientError, OSError, RuntimeError):
                return  # the connection is over: the reader finds out and says how
            self._sent_at = self._loop.time()

    async def hang_up(self) -> None:
        """Close our side without waiting for the hub: stop the pings, cancel the stream if it
        still runs (best effort), send the close frame, wait a moment at most. Never raises
        (but the caller's cancellation, once the pinger is done)."""
        ws, self._ws = self._ws, None
        pinger, self._pinger = self._pinger, None
        self._transport.forget(self)
        if pinger is not None:  # no ping after the close; awaited below, whatever happens
            pinger.cancel()
        try:
            if ws is None:
                return
            if self._invoked and not self._finished and not ws.closed:
                with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError, RuntimeError):
                    async with asyncio.timeout(_HANG_UP_STEP):
                        await ws.send_str(_CANCEL)
            # aiohttp waits CLOSE_REPLY_WAIT for the reply, then closes the connection;
            # cancelled (the outer bound), it closes the connection too.
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError, RuntimeError):
                async with asyncio.timeout(_HANG_UP_STEP):
                    await ws.close()
        finally:
            if pinger is not None:
                await reap(pinger)

    # --- errors -----------------------------------------------------------------------------

    def _timed_out(self, deadline: float | None, what: str) -> Failure:
        if deadline is not None and self._loop.time() >= deadline:
            raise Late
        error = APITimeoutError(what, method="GET", url=self.safe_url, attempts=self.attempt)
        return Failure(error, cause="timeout", timed_out=True)

    def _ended(self, what: str) -> str:
        if self.items:
            return what
        count = "1 connection" if self.attempt == 1 else f"{self.attempt} connections"
        return f"{what} before sending the snapshot ({count})"

    def _connection_error(self, exc: BaseException) -> APIConnectionError:
        error = _answers.connection_error(
            exc, method="GET", url=self.safe_url, attempts=self.attempt
        )
        text = str(error.args[0])
        if self._scrub(text) != text:
            error = type(error)(
                self._scrub(text), method="GET", url=self.safe_url, attempts=self.attempt
            )
        return error

    def _garbage(self, raw: str, what: str) -> ResponseValidationError:
        return ResponseValidationError(
            f"the hub sent {what}",
            url=self.safe_url,
            body=_answers.clip(self._scrub(raw[: 2 * _KEPT]), _KEPT),
            attempts=self.attempt,
        )

    def _text(self, value: object) -> str:
        """A text from the hub, as it may appear in an error: one line, clipped, no token."""
        return _answers.one_line(self._scrub(str(value)))

    def _scrub(self, text: str) -> str:
        """`text` without the token, raw or percent-encoded (as the upgrade URL carries it)."""
        return mask(text, (self._token,))


def _earliest(*limits: float | None) -> float | None:
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None
