"""A raw-TCP loopback HTTP server that plays scripted bytes, for answers aiohttp.web cannot give.

Bad status lines, 1xx, bodies cut off or never finished, huge headers, lying encodings: each
request gets the next scripted `Reply`, written byte for byte.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Literal, Self

import attrs

__all__ = ["RawServer", "Reply", "http"]

#: What the server does after writing a reply's bytes: close the connection, keep it open for
#: the next request, or hang (read and discard until the client goes away or the server stops).
Then = Literal["close", "keep", "hang"]


@attrs.frozen
class Reply:
    """The raw bytes of one answer and what happens to the connection afterwards."""

    data: bytes = b""
    then: Then = "close"


def http(
    status_line: str = "HTTP/1.1 200 OK",
    body: bytes = b"",
    headers: Iterable[tuple[str, str]] = (),
    *,
    content_length: int | None = None,
    then: Then = "close",
) -> Reply:
    """A reply with a status line, headers and body; `Content-Length` is the body's unless given
    (pass -1 to send none, e.g. for chunked bodies)."""
    lines = [status_line]
    lines.extend(f"{name}: {value}" for name, value in headers)
    length = len(body) if content_length is None else content_length
    if length >= 0:
        lines.append(f"Content-Length: {length}")
    if then == "close":
        lines.append("Connection: close")
    head = "\r\n".join(lines).encode("latin-1", "surrogateescape") + b"\r\n\r\n"
    return Reply(head + body, then)


class RawServer:
    """Loopback server answering the n-th request with `replies[n]` (the last one repeats).

    Counts `connections` and keeps the head of every request in `requests`. Use as
    `async with RawServer([...]) as server: server.url`; leaving closes every connection.
    """

    def __init__(self, replies: Sequence[Reply], *, host: str = "127.0.0.1") -> None:
        if not replies:
            raise ValueError("replies must hold at least one Reply")
        self._replies = tuple(replies)
        self._host = host
        self._server: asyncio.Server | None = None
        self._stopping = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        #: Connections accepted so far.
        self.connections = 0
        #: The head (request line and headers) of every request received, in order.
        self.requests: list[bytes] = []

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, self._host, 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """`http://host:port` of the listening socket."""
        if self._server is None:
            raise RuntimeError("the RawServer is not running; use `async with`")
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    @property
    def open_connections(self) -> int:
        """Connections accepted and not yet closed."""
        return len(self._writers)

    async def wait_idle(self, timeout: float = 1.0) -> bool:
        """Wait until every accepted connection is closed; False if `timeout` passes first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Stop listening, close every connection and wait for the handlers. Idempotent."""
        server, self._server = self._server, None
        self._stopping.set()
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self._idle.clear()
        self.connections += 1
        try:
            while not self._stopping.is_set():
                head = await _read_request(reader)
                if head is None:
                    return
                self.requests.append(head)
                reply = self._replies[min(len(self.requests), len(self._replies)) - 1]
                if reply.data:
                    writer.write(reply.data)
                    await writer.drain()
                if reply.then == "close":
                    return
                if reply.then == "hang":
                    while await reader.read(65536):
                        pass
                    return
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return  # the client went away: nothing left to answer
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self._writers.discard(writer)
            self._tasks.discard(task)
            if not self._writers:
                self._idle.set()


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    """The head of the next request (its body, if any, is read and dropped); None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            await reader.readexactly(int(value.strip()))
    return head
