"""The parts of ASP.NET Core SignalR's JSON hub protocol the simulator's hub speaks.

Every message is a JSON object followed by the record separator `\\x1e`; one websocket frame,
text or binary, may carry several messages, or part of one.
"""

from __future__ import annotations

import json
from typing import Any

from frontoffice_async.testing import _wire

__all__ = [
    "CANCEL_INVOCATION",
    "CLOSE",
    "COMPLETION",
    "INVOCATION",
    "PING_FRAME",
    "RS",
    "STREAM_INVOCATION",
    "STREAM_ITEM",
    "RecordBuffer",
    "close_frame",
    "completion_frame",
    "frame",
    "handshake_error",
]

RS = "\x1e"
_RS_BYTE = b"\x1e"

# Message types (HubProtocolConstants).
INVOCATION = 1
STREAM_ITEM = 2
COMPLETION = 3
STREAM_INVOCATION = 4
CANCEL_INVOCATION = 5
PING = 6
CLOSE = 7

PING_FRAME = _wire.dumps({"type": PING}) + RS
# Versions of the JSON protocol an ASP.NET Core 8+ server accepts (2 adds stateful
# reconnect, which needs negotiation, so it never switches on here).
_SUPPORTED_VERSIONS = (1, 2)


def frame(message: dict[str, Any]) -> str:
    """One message, compact JSON, with its record separator."""
    return _wire.dumps(message) + RS


def close_frame(*, error: str | None = None, allow_reconnect: bool | None = None) -> str:
    """A Close message; keys that are None are left out, as ASP.NET Core leaves them."""
    message: dict[str, Any] = {"type": CLOSE}
    if error is not None:
        message["error"] = error
    if allow_reconnect is not None:
        message["allowReconnect"] = allow_reconnect
    return frame(message)


def completion_frame(invocation_id: str, error: str | None = None) -> str:
    """A Completion: the end of a stream, with `error` when it failed."""
    message: dict[str, Any] = {"type": COMPLETION, "invocationId": invocation_id}
    if error is not None:
        message["error"] = error
    return frame(message)


def handshake_error(record: str) -> str | None:
    """Why a handshake request is refused (ASP.NET Core's wording), or None to accept it."""
    try:
        request = json.loads(record)
    except ValueError:
        request = None
    if not isinstance(request, dict):
        return "An unexpected error occurred during connection handshake."
    protocol, version = request.get("protocol"), request.get("version")
    if protocol != "json":
        return f"The protocol '{protocol}' is not supported."
    if isinstance(version, bool) or version not in _SUPPORTED_VERSIONS:
        return f"The server does not support version {version} of the '{protocol}' protocol."
    return None


class RecordBuffer:
    """Collects frame payloads as bytes and hands out complete records.

    Bytes, not text: a multi-byte UTF-8 character may be split across binary frames, and the
    separator byte 0x1E never occurs inside one.
    """

    def __init__(self, limit: int) -> None:
        self._pending = bytearray()
        self._limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        """Add a frame's payload; return the records it completed, oldest first."""
        self._pending += data
        if _RS_BYTE not in data:  # nothing completed: no need to rescan what is pending
            return []
        *records, self._pending = self._pending.split(_RS_BYTE)
        return [bytes(record) for record in records]

    @property
    def overflowing(self) -> bool:
        """Whether the unfinished record is longer than the limit (no separator in sight)."""
        return len(self._pending) > self._limit
