"""Load servers, each in its own process so it never costs client CPU.

`fast` answers every DELETE with one pre-encoded body; `sim` is the `FrontOfficeSimulator`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

__all__ = ["ORDER_BODY", "ORDER_BYTES", "ServerProcess", "ServerStats", "fetch_stats", "start"]

#: The cancel response, shaped like `shared/api/samples/cancel_order_200.json`.
ORDER_BODY: Final[dict[str, Any]] = {
    "order": {
        "marketId": "spot.eth_usdt",
        "marketDisplayName": "SPOT ETH/USDT",
        "orderId": "01K2PF9XS29WN4JZRHMCTTQYJB",
        "orderType": "Limit",
        "side": "Buy",
        "status": "Cancelled",
        "source": "Manual",
        "timeInForce": "Gtc",
        "commission": "0",
        "requestedAmount": "0.1",
        "remainingAmount": "0.1",
        "requestedPrice": "4450",
        "executionPrice": "0",
        "createdAt": "2025-08-15T08:59:51.97Z",
        "updatedAt": "2025-08-15T09:00:06.2791048Z",
        "rejectDetails": "",
        "cancellationDate": None,
        "fillFactor": "0",
    }
}

#: What the fast server answers by default, as bytes.
ORDER_BYTES: Final = json.dumps(ORDER_BODY, separators=(",", ":")).encode()


def _ok(body: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json; charset=utf-8\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


_NOT_FOUND: Final = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
_CANCEL_PREFIX: Final = b"DELETE /frontoffice/api/v3/orders/"
_STATS_PATH: Final = b"GET /_stats "
_HEAD_END: Final = b"\r\n\r\n"


class _FastProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, just enough of it: split requests, skip bodies, answer."""

    def __init__(self, counter: list[int], ok: bytes | tuple[bytes, bytes]) -> None:
        self._ok = ok
        self._buffer = b""
        self._counter = counter
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        replies: list[bytes] = []
        while True:
            end = buffer.find(_HEAD_END)
            if end < 0:
                break
            head = buffer[:end]
            start = end + 4 + _content_length(head)
            if start > len(buffer):
                break  # the body has not fully arrived yet
            buffer = buffer[start:]
            replies.append(self._answer(head))
        self._buffer = buffer
        if replies and self._transport is not None:
            # One write per read: pipelined requests get one syscall, not one each.
            self._transport.write(b"".join(replies))

    def _answer(self, head: bytes) -> bytes:
        if head.startswith(_CANCEL_PREFIX):
            self._counter[0] += 1
            if isinstance(self._ok, bytes):
                return self._ok
            # The library checks that the answer is about the order it cancelled: echo the id.
            start = len(_CANCEL_PREFIX)
            order_id = head[start : head.find(b" ", start)]
            before, after = self._ok
            return _ok(before + order_id + after)
        if head.startswith(_STATS_PATH):
            stats = json.dumps({"cpu": time.process_time(), "requests": self._counter[0]})
            body = stats.encode()
            return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        return _NOT_FOUND


def _echoing(body: bytes) -> bytes | tuple[bytes, bytes]:
    """The reply to every cancel, or the body split around its order id (`_answer` puts the
    cancelled id there) when the body holds the default one."""
    marker = b'"orderId":"01K2PF9XS29WN4JZRHMCTTQYJB"'
    if body.count(marker) != 1:
        return _ok(body)
    before, after = body.split(marker)
    return before + b'"orderId":"', b'"' + after


def _content_length(head: bytes) -> int:
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    value_end = lowered.find(b"\r\n", at + 2)
    return int(lowered[at + 17 : value_end if value_end >= 0 else None].strip())


async def _serve_fast(body: bytes) -> None:
    loop = asyncio.get_running_loop()
    counter, ok = [0], _echoing(body)
    server = await loop.create_server(
        lambda: _FastProtocol(counter, ok), "127.0.0.1", 0, backlog=1024
    )
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"url": f"http://127.0.0.1:{port}"}), flush=True)
    async with server:
        await _until_stdin_closes()


async def _serve_sim(orders: int, latency: float) -> None:
    from frontoffice_async.testing import FrontOfficeSimulator  # noqa: PLC0415 -- sim mode only

    sim = FrontOfficeSimulator(latency=latency)
    ids = sim.add_orders(orders)
    async with sim:
        info = {
            "url": sim.url,
            "token": sim.token,
            "account_id": sim.account_ids[0],
            "order_ids": ids,
        }
        print(json.dumps(info), flush=True)
        await _until_stdin_closes()


async def _until_stdin_closes() -> None:
    # The parent holds our stdin; when it closes it (or dies), we stop.
    await asyncio.to_thread(sys.stdin.buffer.read)


# --- the parent's side ------------------------------------------------------------------------


class ServerProcess:
    """Connection details of a running server process."""

    def __init__(self, info: dict[str, Any], process: subprocess.Popen[bytes]) -> None:
        self.url: str = info["url"]
        self.token: str = info.get("token", "bench-token")
        self.account_id: str = info.get("account_id", "685a7eaa360f9e7416221a61")
        #: The open orders a `sim` server was started with.
        self.order_ids: list[str] = info.get("order_ids", [])
        self.process = process

    def cpu_seconds(self) -> float | None:
        """CPU time the server process has used so far (Linux `/proc`; None elsewhere)."""
        try:
            with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # utime and stime, fields 14 and 15 of proc(5), counted from after the ")".
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def start(
    mode: str = "fast",
    *,
    orders: int = 0,
    latency: float = 0.0,
    cpu: int | None = None,
    body: Path | None = None,
) -> Iterator[ServerProcess]:
    """Run `python -m bench._server MODE` and yield its URL (and credentials, for `sim`).

    `cpu` pins the server to that core; `body` is a file the fast server answers with.
    """
    args = [sys.executable, "-m", "bench._server", mode, f"--orders={orders}"]
    args.append(f"--latency={latency}")
    if cpu is not None:
        args.append(f"--cpu={cpu}")
    if body is not None:
        args.append(f"--body={body}")
    # Our own interpreter and fixed arguments: nothing untrusted reaches the command line.
    process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # noqa: S603
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {mode} server did not start (exit {process.wait()})")
        yield ServerProcess(json.loads(line), process)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


class ServerStats:
    """The fast server's CPU seconds and cancel count at one moment."""

    def __init__(self, cpu: float, requests: int) -> None:
        self.cpu = cpu
        self.requests = requests


async def fetch_stats(url: str) -> ServerStats:
    """Ask the fast server for its own `process_time()` (outside any measured window)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(b"GET /_stats HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = await reader.readuntil(_HEAD_END)
        body = await reader.readexactly(_content_length(head))
    finally:
        writer.close()
        await writer.wait_closed()
    data = json.loads(body)
    return ServerStats(float(data["cpu"]), int(data["requests"]))


def _main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._server")
    parser.add_argument("mode", choices=["fast", "sim"])
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--cpu", type=int, help="run on this core only")
    parser.add_argument("--body", type=Path, help="a JSON file to answer every cancel with")
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    if args.mode == "fast":
        body = ORDER_BYTES if args.body is None else args.body.read_bytes()
        asyncio.run(_serve_fast(body))
    else:
        asyncio.run(_serve_sim(args.orders, args.latency))


if __name__ == "__main__":
    _main()
