"""One SignalR (JSON protocol) connection to the account hub, carrying one stream.

The connection opens (upgrade, handshake, stream invocation), reads items, pings the hub from
a task of its own (so a caller busy between items is not dropped), and says how it ended as a
`Failure` its caller can act on: connect again, or raise the error it carries. The framing is
`protocol`'s; this module is the lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from typing import Any, Final

import aiohttp
from yarl import URL

from .._http import answers
from .._http.tokens import Credential
from ..errors import (
    ClientClosedError,
    HubError,
)
from . import protocol
from .protocol import Failure, Late
from .report import Report
from .transport import Answer, Dropped, HubTransport, reap

__all__ = ["KEEPALIVE", "Connection"]

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


class Connection:
    """One websocket to the hub carrying one stream (`kind`) of one account."""

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
        kind: protocol.StreamKind = protocol.OPEN_ORDERS,
    ) -> None:
        self._transport = transport
        self._url = url
        self.safe_url = str(url)
        self._report = Report(self.safe_url, attempt)
        self.kind = kind
        self._invocation = protocol.invocation(kind.target, account_id)
        self._headers = headers
        self._server_timeout = server_timeout
        self._handshake_timeout = handshake_timeout
        self.attempt = attempt
        """Which connection of its caller's run this is (1 for the first): its `attempts`."""
        self.credential: Credential | None = None
        """The credential whose token the upgrade carried."""
        self.items = 0
        """Stream items received."""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pinger: asyncio.Task[None] | None = None
        self._pending: deque[str] = deque()
        self._invoked = False
        self._finished = False
        self._loop = asyncio.get_running_loop()
        self._heard_at = self._sent_at = self._loop.time()

    # --- opening ----------------------------------------------------------------------------

    async def open(self, credential: Credential, deadline: float | None) -> None:
        """Upgrade, shake hands and start the stream, within the handshake timeout.

        Raises `Failure`, `Late` (the caller's `deadline` passed), or a final error.
        """
        self.credential = self._report.credential = credential
        timeout = self._handshake_timeout
        until = None if timeout is None else self._loop.time() + timeout
        what = f"no websocket upgrade and SignalR handshake within {timeout or 0:g}s"
        await self._upgrade(deadline, until, what)
        await self._send(protocol.HANDSHAKE, deadline, until, what)
        reply = await self._next_message(deadline, until, what)
        if reply.get("type") == protocol.CLOSE:  # instead of the handshake's answer
            raise self._closed(reply)
        if reply.get("error"):
            raise Failure(
                HubError(f"the hub refused the handshake: {self._report.text(reply['error'])}"),
                cause="handshake refused",
                retry=False,
            )
        await self._send(self._invocation, deadline, until, what)
        self._invoked = True
        assert self._ws is not None  # the pinger is this connection's: `hang_up` awaits it
        self._pinger = asyncio.create_task(self._keep_alive(self._ws), name="frontoffice-hub-ping")

    async def _upgrade(self, deadline: float | None, until: float | None, what: str) -> None:
        session = self._transport.session()
        report = self._report
        failure: Failure | Late
        try:
            async with asyncio.timeout_at(_earliest(deadline, until)) as scope:
                ws = await session.ws_connect(
                    # Built in the call: no local of ours holds the URL with the token.
                    self._url.with_query(access_token=report.token),
                    headers=self._headers,
                    timeout=_WS_TIMEOUT,
                    autoping=True,
                    heartbeat=None,
                    max_msg_size=_MAX_MESSAGE,
                )
        except Answer as answer:
            failure = answer.failure(url=self.safe_url, attempts=self.attempt, token=report.token)
        except TimeoutError as exc:
            if scope.expired():
                failure = self._timeout_failure(deadline, what)
            else:  # aiohttp's own (a connect timeout of the connector)
                failure = report.upgrade_failure(exc)
        except (Dropped, aiohttp.ClientError, OSError) as exc:
            failure = report.upgrade_failure(exc)
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
            if kind == protocol.STREAM_ITEM and message.get("invocationId") == "0":
                self.items += 1
                try:
                    return protocol.records(message.get("item"), nested=self.kind.nested)
                except ValueError as exc:
                    raise self._report.invalid_message_error(
                        str(message.get("item")), str(exc)
                    ) from None
            if kind == protocol.COMPLETION and message.get("invocationId") == "0":
                self._finished = True
                if message.get("error"):
                    error = HubError(
                        f"the {self.kind.target} stream failed: {self._text(message['error'])}"
                    )
                    raise Failure(error, cause="Completion with error", retry=False)
                error = HubError(self._ended(f"the hub completed the {self.kind.target} stream"))
                raise Failure(error, cause="Completion", graceful=True)
            if kind == protocol.CLOSE:
                raise self._closed(message)
            # Pings, invocations and the items of other streams need no answer.

    def _closed(self, message: dict[str, Any]) -> Failure:
        """What a Close message means (see `protocol.close_failure`)."""
        self._finished = True
        error = message.get("error")
        return protocol.close_failure(
            message,
            error_text=self._text(error) if error else None,
            ended=self._ended("the hub closed the connection"),
        )

    async def _next_message(
        self, deadline: float | None, until: float | None, what: str
    ) -> dict[str, Any]:
        while not self._pending:
            await self._receive(deadline, until, what)
        raw = self._pending.popleft()
        try:
            return protocol.parse_message(raw)
        except ValueError as exc:
            raise self._report.invalid_message_error(raw, str(exc)) from None

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
            raise self._timeout_failure(deadline, what) from None
        self._heard_at = self._loop.time()
        if msg.type is aiohttp.WSMsgType.TEXT:
            data: str = msg.data
        elif msg.type is aiohttp.WSMsgType.BINARY:
            try:
                data = bytes(msg.data).decode("utf-8")
            except UnicodeDecodeError:
                raise self._report.invalid_message_error(
                    bytes(msg.data[: answers.BODY_KEPT]).decode("utf-8", "replace"),
                    "a binary message that is not UTF-8",
                ) from None
        else:
            raise self._closed_socket_error(msg)
        if len(data) >= protocol.LARGE and protocol.is_one_frame(data):
            self._pending.append(data)  # a big snapshot: parsed in place, never copied
            return
        try:
            self._pending.extend(protocol.split_frames(data))
        except ValueError as exc:
            raise self._report.invalid_message_error(data, str(exc)) from None

    def _closed_socket_error(self, msg: aiohttp.WSMessage) -> BaseException:
        """The error for a websocket that closed or broke under us."""
        self._finished = True
        if self._transport.closed:
            return ClientClosedError(
                f"the client was closed while the {self.kind.target} stream was open"
            )
        if msg.type is aiohttp.WSMsgType.ERROR and isinstance(msg.data, BaseException):
            error = self._report.connection_error(msg.data)
            return Failure(error, cause=type(msg.data).__name__)
        return self._report.socket_closed(self.items)

    # --- writing and hanging up -------------------------------------------------------------

    async def _send(
        self, text: str, deadline: float | None, until: float | None, what: str
    ) -> None:
        ws = self._ws
        assert ws is not None
        failure: Failure | Late
        try:
            async with asyncio.timeout_at(_earliest(deadline, until)) as scope:
                await ws.send_str(text)
        except TimeoutError as exc:
            if not scope.expired():
                failure = Failure(
                    self._report.connection_error(exc), cause="timeout", timed_out=True
                )
            else:
                failure = self._timeout_failure(deadline, what)
        except (aiohttp.ClientError, OSError, RuntimeError) as exc:
            # RuntimeError: aiohttp's "cannot write to closing transport"
            if self._transport.closed:
                raise ClientClosedError(
                    f"the client was closed while the {self.kind.target} stream was open"
                ) from None
            failure = Failure(self._report.connection_error(exc), cause=type(exc).__name__)
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
                await ws.send_str(protocol.PING)
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
                        await ws.send_str(protocol.CANCEL)
            # aiohttp waits CLOSE_REPLY_WAIT for the reply, then closes the connection;
            # cancelled (the outer bound), it closes the connection too.
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError, RuntimeError):
                async with asyncio.timeout(_HANG_UP_STEP):
                    await ws.close()
        finally:
            if pinger is not None:
                await reap(pinger)

    # --- errors -----------------------------------------------------------------------------

    def _timeout_failure(self, deadline: float | None, what: str) -> Failure | Late:
        """`Late` when the caller's deadline passed, else the hub's silence as a `Failure`."""
        if deadline is not None and self._loop.time() >= deadline:
            return Late()
        return self._report.silence(what)

    def _ended(self, what: str) -> str:
        return self._report.ended(what, self.items)

    def _text(self, value: object) -> str:
        return self._report.text(value)


def _earliest(*limits: float | None) -> float | None:
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None
