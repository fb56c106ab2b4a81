"""The SignalR JSON hub protocol as the client speaks it, without I/O.

Frames end with the record separator; a message is a JSON object whose `type` says what it
is. Here: the frames the client sends, splitting and parsing what arrives, reading a stream
item's records, what a Close message means, and how a connection says it ended (`Failure`,
`Late`). Tested without an event loop, like `retry.decide`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import attrs

from .. import _converter
from ..errors import FrontOfficeError, HubError

__all__ = [
    "CANCEL",
    "CLOSE",
    "COMPLETION",
    "HANDSHAKE",
    "LARGE",
    "OPEN_ORDERS",
    "OPEN_POSITIONS",
    "PING",
    "RS",
    "STREAM_ITEM",
    "Failure",
    "Late",
    "StreamKind",
    "close_failure",
    "invocation",
    "is_one_frame",
    "parse_message",
    "records",
    "split_frames",
]

RS: Final = "\x1e"  # the record separator: every message ends with it
HANDSHAKE: Final = '{"protocol":"json","version":1}' + RS
PING: Final = '{"type":6}' + RS
#: Cancels the stream of invocation "0" (the one stream a connection carries).
CANCEL: Final = '{"type":5,"invocationId":"0"}' + RS
# Message types (HubProtocolConstants) the client reads.
STREAM_ITEM: Final = 2
COMPLETION: Final = 3
CLOSE: Final = 7


class Failure(Exception):
    """A connection ended or failed before its caller was done with it.

    `error` is what the caller raises if it does not connect again. `retry` says a new
    connection may help (the retry policy still decides: `status` and `timed_out` go to
    `decide`). `invited`: the hub ended the connection and allows a new one (a Close with
    `allowReconnect`, a Completion), so reconnecting does not hang on the policy resending after
    connection errors; `graceful`: it did so without an error (a deploy), which ends a stream
    that does not reconnect quietly.
    """

    def __init__(
        self,
        error: FrontOfficeError,
        *,
        cause: str,
        retry: bool = True,
        graceful: bool = False,
        invited: bool = False,
        timed_out: bool = False,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(cause)
        self.error = error
        self.cause = cause
        self.retry = retry
        self.graceful = graceful
        self.invited = invited or graceful
        self.timed_out = timed_out
        self.status = status
        self.retry_after = retry_after


class Late(Exception):
    """The caller's deadline passed during a wait; the caller says what did not arrive."""


def invocation(target: str, account_id: str) -> str:
    """The StreamInvocation frame of `target` (e.g. `OpenOrders`) for one account."""
    message = {"type": 4, "target": target, "arguments": [account_id], "invocationId": "0"}
    return json.dumps(message) + RS


def split_frames(data: str) -> list[str]:
    """The messages of one websocket message; ValueError if it does not end a frame."""
    if not data.endswith(RS):
        raise ValueError("a message without the SignalR record separator")
    return [part for part in data.split(RS) if part]


#: Characters from which a message is parsed in place and with its short strings shared (a
#: snapshot of thousands of orders): its memory then stays under twice its text's.
LARGE: Final = 1 << 20
#: The longest string value shared: statuses, sides, markets, account ids, timestamps.
_SHARED_MAX: Final = 64
_SPACE: Final = re.compile(r"[ \t\n\r]*")


def is_one_frame(data: str) -> bool:
    """Whether a websocket message is exactly one frame (its only separator at its end)."""
    return data.find(RS) == len(data) - 1


def parse_message(raw: str) -> dict[str, Any]:
    """One message (a frame, its separator included or not) as a JSON object; ValueError
    saying what it is instead."""
    try:
        message = _parse_large(raw) if len(raw) >= LARGE else _converter.decode(raw.rstrip(RS))
    except (ValueError, RecursionError):
        raise ValueError("a message that is not JSON") from None
    if not isinstance(message, dict):
        raise ValueError("a message that is not a JSON object")
    return message


def _parse_large(raw: str) -> Any:
    """Parse a large message where it lies (no copy without its separator), each short string
    value kept once: 100,000 orders repeat a few statuses, sides, markets and timestamps, and
    sharing them takes the parsed records from about 3 times the text's size to 1.6 times.
    A hook per object doubles the parse time, which is why only large messages take it."""
    shared: dict[str, str] = {}

    def share(record: dict[str, Any]) -> dict[str, Any]:
        for key, value in record.items():
            if type(value) is str and len(value) <= _SHARED_MAX:
                record[key] = shared.setdefault(value, value)  # same keys: iteration is safe
        return record

    decoder = json.JSONDecoder(
        parse_float=Decimal, parse_constant=_converter._refuse_constant, object_hook=share
    )
    message, end = decoder.raw_decode(raw, _skip_space(raw, 0))
    end = _skip_space(raw, end)
    if raw[end:] not in ("", RS):
        raise ValueError("extra data after the message")
    return message


def _skip_space(text: str, start: int) -> int:
    match = _SPACE.match(text, start)
    return start if match is None else match.end()


@attrs.frozen
class StreamKind:
    """One stream of the account hub: its target, the id key of its records, whether its
    items nest the array one level deeper (`{"item": [...]}`), and which records say that
    the thing they describe is no longer open."""

    target: str
    key: str
    nested: bool
    _closed: Any = attrs.field(alias="closed")  # (record) -> bool

    def is_closed(self, record: Mapping[str, Any]) -> bool:
        """True when `record` (the latest word on its id) says it is no longer open."""
        return bool(self._closed(record))


# Only what the stream calls final is dropped: an unknown status may still be live.
_FINAL_ORDER_STATUSES: Final = frozenset({"completed", "cancelled", "expired", "rejected"})


def _order_closed(record: Mapping[str, Any]) -> bool:
    status = record.get("status")
    return isinstance(status, str) and status.casefold() in _FINAL_ORDER_STATUSES


def _position_closed(record: Mapping[str, Any]) -> bool:
    # Undocumented: how the stream says a position closed. A "Closed" status or a zero lot
    # amount does; anything else, including what cannot be read, counts as open.
    status = record.get("status")
    if isinstance(status, str) and status.casefold() == "closed":
        return True
    lots = record.get("positionLotAmount")
    if isinstance(lots, str | int | Decimal) and not isinstance(lots, bool):
        try:
            return Decimal(lots) == 0
        except (InvalidOperation, ValueError):
            return False
    return False


OPEN_ORDERS: Final = StreamKind("OpenOrders", "orderId", False, closed=_order_closed)
#: Its items hold the array in their own `item`: `{"item": {"item": [...]}}`.
OPEN_POSITIONS: Final = StreamKind("OpenPositions", "positionId", True, closed=_position_closed)


def records(item: object, *, nested: bool = False) -> list[Any]:
    """The records of a stream item: an array of them, or a lone one (`nested`: the array
    sits in the item's own `item`, as OpenPositions sends it; a bare array is taken too)."""
    if nested and isinstance(item, dict) and "item" in item:
        item = item["item"]
    if isinstance(item, list):
        return item
    if isinstance(item, dict):
        return [item]
    raise ValueError("an item that is neither an array nor an object")


def close_failure(message: Mapping[str, Any], *, error_text: str | None, ended: str) -> Failure:
    """What a Close message means (`error_text`: its error as it may be shown; `ended`: the
    text of a graceful end).

    `allowReconnect: true` means connect again, whatever its error (as the official client
    does: ASP.NET Core sends an error with it when it dropped a client that was silent too
    long). Without an error it is a graceful shutdown (a deploy), unless `allowReconnect` is
    false. An error without `allowReconnect: true` is final.
    """
    allowed = message.get("allowReconnect")
    if error_text is not None:
        error = HubError(f"the hub closed the connection: {error_text}")
        again = allowed is True
        return Failure(error, cause="Close with error", retry=again, invited=again)
    if allowed is False:
        error = HubError("the hub closed the connection and asked not to reconnect")
        return Failure(error, cause="Close", retry=False)
    return Failure(HubError(ended), cause="Close", graceful=True)
