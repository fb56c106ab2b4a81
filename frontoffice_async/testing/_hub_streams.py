"""The hub's streams (OpenOrders, OpenPositions) and how a snapshot fault reshapes a snapshot.

No I/O here: `Stream` says what a stream sends, `snapshot_steps` turns a snapshot and its
fault into the items, pauses and failure a connection then sends in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs

from frontoffice_async.testing._book import OrderBook
from frontoffice_async.testing._hub_faults import DEFAULT_GAP, HubFault, HubFaultKind
from frontoffice_async.testing._position_book import PositionBook

__all__ = [
    "OPEN_ORDERS",
    "OPEN_POSITIONS",
    "STREAM_ERROR",
    "Fail",
    "Item",
    "Pause",
    "Step",
    "Stream",
    "invocation_error",
    "order_stream",
    "position_stream",
    "snapshot_steps",
]

OPEN_ORDERS = "OpenOrders"
OPEN_POSITIONS = "OpenPositions"
#: What ASP.NET Core (without detailed errors) completes a stream with when producing it
#: throws.
STREAM_ERROR = "An error occurred on the server while streaming results."

Record = dict[str, Any]
#: Called with the records a change touched.
Listener = Callable[[Sequence[Any]], None]


@attrs.frozen
class Stream:
    """One streaming hub method: its name, its open records, their shape, their changes."""

    #: The method name, as the platform spells it (clients' spelling is matched ignoring case).
    name: str
    #: Whether `item` nests the array one level deeper (`{"item": [...]}`), as OpenPositions.
    nested: bool
    #: The open records of an account (orders, positions), in creation order.
    open_records: Callable[[str], Sequence[Any]]
    #: A record's wire shape.
    render: Callable[[Any], Record]
    #: Subscribe a listener to the changes of an account's records; returns the unsubscriber.
    subscribe: Callable[[str, Listener], Callable[[], None]]

    def item(self, records: list[Record]) -> Any:
        """The `item` of a stream message holding `records`."""
        return {"item": records} if self.nested else records


def order_stream(book: OrderBook) -> Stream:
    """OpenOrders: `item` is a bare array of orders, the snapshot and each update alike."""

    def subscribe(account_id: str, listener: Listener) -> Callable[[], None]:
        return book.subscribe(account_id, lambda order: listener([order]))

    return Stream(
        name=OPEN_ORDERS,
        nested=False,
        open_records=book.open_orders,
        render=lambda order: order.to_open_order_wire(),
        subscribe=subscribe,
    )


def position_stream(book: PositionBook) -> Stream:
    """OpenPositions: `item` is an object whose own `item` is the array of positions."""
    return Stream(
        name=OPEN_POSITIONS,
        nested=True,
        open_records=book.open_positions,
        render=lambda position: position.to_wire(),
        subscribe=book.subscribe,
    )


def invocation_error(
    target: object,
    stream: Stream | None,
    arguments: object,
    *,
    in_use: str | None,
    allowed: Callable[[str], bool],
) -> str | None:
    """Why ASP.NET Core would refuse a StreamInvocation (its wording), or None to serve it:
    `arguments` is then a list holding one account id that `allowed` accepts. `in_use` is
    the invocation id when the connection already streams under it."""
    if in_use is not None:
        return f"Invocation ID '{in_use}' is already in use."
    if stream is None:
        return f"Unknown hub method '{target}'"
    failed = f"Failed to invoke '{stream.name}' due to an error on the server."
    account_id = arguments[0] if isinstance(arguments, list) and arguments else None
    if not (isinstance(arguments, list) and len(arguments) == 1 and isinstance(account_id, str)):
        count = len(arguments) if isinstance(arguments, list) else 0
        return (
            f"{failed} InvalidDataException: Invocation provides {count} argument(s) "
            "but target expects 1."
        )
    if not allowed(account_id):
        return f"{failed} HubException: Account {account_id} is not accessible with this token."
    return None


@attrs.frozen
class Item:
    """Send one stream item holding `records`."""

    records: list[Record]


@attrs.frozen
class Pause:
    """Send nothing for `seconds` (everything queued after waits)."""

    seconds: float


@attrs.frozen
class Fail:
    """End the stream with a Completion carrying `error`; no update follows."""

    error: str


Step = Item | Pause | Fail


def snapshot_steps(records: list[Record], fault: HubFault | None) -> list[Step]:
    """What a connection sends for a snapshot of `records` under `fault` (a snapshot fault,
    or None); the stream's updates follow only if no `Fail` is among the steps."""
    if fault is None:
        return [Item(records)]
    kind = fault.kind
    gap = Pause(DEFAULT_GAP if fault.gap is None else fault.gap)
    if kind is HubFaultKind.DUPLICATE and records:
        return [Item([*records, dict(records[0])])]
    if kind is HubFaultKind.BAD_RECORD and records and fault.field is not None:
        first = dict(records[0])
        if fault.remove:
            first.pop(fault.field, None)
        else:
            first[fault.field] = fault.value
        return [Item([first, *records[1:]])]
    if kind is HubFaultKind.EMPTY_FIRST:
        return [Item([]), gap, Item(records)]
    if kind is HubFaultKind.UPDATE_FIRST and records:
        return [Item([dict(records[0])]), gap, Item(records)]
    if kind is HubFaultKind.FAIL_AFTER_FIRST:
        return [Item(records), gap, Fail(STREAM_ERROR)]
    if kind is HubFaultKind.SPLIT:
        pages = fault.pages or 2
        size = -(-len(records) // pages)  # ceil: the empty slices, if any, come last
        steps: list[Step] = []
        for page in range(pages):
            if page:
                steps.append(gap)
            steps.append(Item(records[page * size : (page + 1) * size] if size else []))
        return steps
    return [Item(records)]
