"""Hub faults: what goes wrong on a hub connection's OpenOrders or OpenPositions stream.

`FaultPlan(hub=...)` hands them to connections (for their OpenOrders stream),
`FaultPlan(positions_hub=...)` to OpenPositions streams.

Re-exported by `frontoffice_async.testing` and `frontoffice_async.testing.faults`.
"""

from __future__ import annotations

import enum
import math

import attrs

__all__ = ["HubFault", "HubFaultKind"]

#: What ASP.NET Core writes in a Close message when it does not send detailed errors.
DEFAULT_CLOSE_ERROR = "Connection closed with an error."

#: A JSON scalar: what `HubFault.bad_record` may put in a field.
JsonScalar = str | int | float | bool | None

#: Seconds between the items of a snapshot a fault sends in several items.
DEFAULT_GAP = 0.01
#: The most items `HubFault.split` may cut a snapshot into.
MAX_PAGES = 1000


class HubFaultKind(enum.StrEnum):
    """What goes wrong on a hub connection the plan picks."""

    #: The websocket upgrade is refused with `status` (401, 403, 500, 503...).
    REFUSE = "refuse"
    #: A SignalR Close message instead of the snapshot, then a normal websocket close (1000).
    CLOSE = "close"
    #: A Completion without error (`{"type":3,"invocationId":...}`) instead of the snapshot.
    COMPLETE = "complete"
    #: The TCP connection ends instead of the snapshot: no Close message, no close frame.
    DROP = "drop"
    #: The handshake is answered, then nothing is sent (except pings when `pings` is True).
    SILENCE = "silence"
    #: The snapshot's first record has `field` set to `value` (or removed).
    BAD_RECORD = "bad_record"
    #: The snapshot lists its first record twice.
    DUPLICATE = "duplicate"
    #: An empty item first, then the snapshot as the next item, `gap` seconds later.
    EMPTY_FIRST = "empty_first"
    #: The snapshot as `pages` items, each a slice of the records, `gap` seconds apart.
    SPLIT = "split"
    #: An update item (the snapshot's first record alone) first, then the snapshot.
    UPDATE_FIRST = "update_first"
    #: The snapshot, then `gap` seconds later a Completion with an error: the stream failed.
    FAIL_AFTER_FIRST = "fail_after_first"


# The fields each kind uses; any other non-default field is a mistake worth reporting.
_FIELDS_OF_KIND: dict[HubFaultKind, frozenset[str]] = {
    HubFaultKind.REFUSE: frozenset({"status"}),
    HubFaultKind.CLOSE: frozenset({"error", "allow_reconnect"}),
    HubFaultKind.COMPLETE: frozenset(),
    HubFaultKind.DROP: frozenset(),
    HubFaultKind.SILENCE: frozenset({"pings"}),
    HubFaultKind.BAD_RECORD: frozenset({"field", "value", "remove"}),
    HubFaultKind.DUPLICATE: frozenset(),
    HubFaultKind.EMPTY_FIRST: frozenset({"gap"}),
    HubFaultKind.SPLIT: frozenset({"pages", "gap"}),
    HubFaultKind.UPDATE_FIRST: frozenset({"gap"}),
    HubFaultKind.FAIL_AFTER_FIRST: frozenset({"gap"}),
}


@attrs.frozen(repr=False)
class HubFault:
    """One failure to inflict on one hub connection's OpenOrders or OpenPositions stream.

    Build it with the named constructors, e.g. `HubFault.close()` (a graceful shutdown, as a
    deploy sends), `HubFault.refuse(503)`, `HubFault.bad_record("orderId", None)` or
    `HubFault.split(pages=3)`. Faults that replace or reshape the snapshot strike when the
    stream's first invocation on the connection would get it; the connection's later
    invocations are served normally.
    """

    kind: HubFaultKind = attrs.field(converter=HubFaultKind)
    #: Status of a REFUSE fault: 400..599.
    status: int | None = None
    #: `error` of a CLOSE message; None sends none (a graceful close).
    error: str | None = None
    #: `allowReconnect` of a CLOSE message; None leaves the key out, as ASP.NET Core does
    #: when it is false.
    allow_reconnect: bool | None = None
    #: Whether a SILENCE connection still sends its pings (`{"type":6}`).
    pings: bool = True
    #: The key a BAD_RECORD fault spoils in the snapshot's first record, e.g. `fillFactor`.
    field: str | None = None
    #: The value a BAD_RECORD fault writes there (a JSON scalar).
    value: JsonScalar = None
    #: Whether a BAD_RECORD fault removes the key instead of writing `value`.
    remove: bool = False
    #: How many items a SPLIT fault cuts the snapshot into: 2..1000 (2 when None).
    pages: int | None = None
    #: Seconds between the items of EMPTY_FIRST, SPLIT, UPDATE_FIRST and FAIL_AFTER_FIRST
    #: (0.01 when None): inside or outside a client's settle window, as a test needs.
    gap: float | None = None

    def __attrs_post_init__(self) -> None:
        allowed = _FIELDS_OF_KIND[self.kind]
        for attribute in attrs.fields(HubFault)[1:]:
            name = attribute.name
            if name not in allowed and getattr(self, name) != attribute.default:
                raise ValueError(f"{name} does not apply to a {self.kind.name} hub fault")
        if self.kind is HubFaultKind.REFUSE and (
            isinstance(self.status, bool)
            or not isinstance(self.status, int)
            or not 400 <= self.status <= 599
        ):
            raise ValueError(f"status must be an HTTP error status 400..599, got {self.status!r}")
        if self.error is not None and (not isinstance(self.error, str) or not self.error):
            raise ValueError(f"error must be a non-empty str or None, got {self.error!r}")
        if self.allow_reconnect is not None and not isinstance(self.allow_reconnect, bool):
            raise TypeError(
                f"allow_reconnect must be a bool or None, got {self.allow_reconnect!r}"
            )
        if not isinstance(self.pings, bool):
            raise TypeError(f"pings must be a bool, got {self.pings!r}")
        if self.kind is HubFaultKind.BAD_RECORD:
            if not isinstance(self.field, str) or not self.field:
                raise ValueError(f"field must name a record key, got {self.field!r}")
            _check_scalar(self.value)
            if not isinstance(self.remove, bool):
                raise TypeError(f"remove must be a bool, got {self.remove!r}")
            if self.remove and self.value is not None:
                raise ValueError("value cannot be set when remove=True removes the key")
        if self.pages is not None and (
            isinstance(self.pages, bool)
            or not isinstance(self.pages, int)
            or not 2 <= self.pages <= MAX_PAGES
        ):
            raise ValueError(f"pages must be an int 2..{MAX_PAGES}, got {self.pages!r}")
        if self.gap is not None:
            if isinstance(self.gap, bool) or not isinstance(self.gap, int | float):
                raise TypeError(f"gap must be a number of seconds, got {self.gap!r}")
            if not math.isfinite(self.gap) or self.gap < 0:
                raise ValueError(f"gap must be a finite number >= 0, got {self.gap!r}")
        # Equal faults compare equal: HubFault.split() == HubFault(HubFaultKind.SPLIT).
        if "gap" in allowed and self.gap is None:
            object.__setattr__(self, "gap", DEFAULT_GAP)
        if "pages" in allowed and self.pages is None:
            object.__setattr__(self, "pages", 2)

    def __repr__(self) -> str:
        # As the named constructor that builds it: short in test ids and logs, and eval-able.
        name = "close_with_error" if self.error is not None else self.kind.value
        used = _FIELDS_OF_KIND[self.kind] - ({"error"} if self.error is None else set())
        args = ", ".join(
            f"{field.name}={getattr(self, field.name)!r}"
            for field in attrs.fields(HubFault)[1:]
            if field.name in used
        )
        return f"HubFault.{name}({args})"

    @classmethod
    def refuse(cls, status: int = 503) -> HubFault:
        """Refuse the websocket upgrade with `status` and a ProblemDetails body."""
        return cls(HubFaultKind.REFUSE, status=status)

    @classmethod
    def close(cls, *, allow_reconnect: bool | None = True) -> HubFault:
        """Close without an error instead of the snapshot, as a server shutting down does.

        The default sends `{"type":7,"allowReconnect":true}`, what ASP.NET Core sends on a
        graceful shutdown; `allow_reconnect=None` sends a plain `{"type":7}`.
        """
        return cls(HubFaultKind.CLOSE, allow_reconnect=allow_reconnect)

    @classmethod
    def close_with_error(
        cls, error: str = DEFAULT_CLOSE_ERROR, *, allow_reconnect: bool | None = None
    ) -> HubFault:
        """Close with `error` instead of the snapshot: `{"type":7,"error":...}`.

        `allow_reconnect=None` (the default) leaves `allowReconnect` out, exactly as ASP.NET
        Core writes it; `False` or `True` writes the key. `error` is a non-empty str: a
        Close without one is a graceful close, which `HubFault.close()` makes.
        """
        if error is None:
            raise ValueError(
                "close_with_error() needs an error text; HubFault.close() closes without one"
            )
        return cls(HubFaultKind.CLOSE, error=error, allow_reconnect=allow_reconnect)

    @classmethod
    def complete(cls) -> HubFault:
        """End the OpenOrders stream with a Completion, no error, before any item."""
        return cls(HubFaultKind.COMPLETE)

    @classmethod
    def drop(cls) -> HubFault:
        """End the TCP connection instead of sending the snapshot, with no Close message."""
        return cls(HubFaultKind.DROP)

    @classmethod
    def silence(cls, *, pings: bool = True) -> HubFault:
        """Answer the handshake, then send nothing: no snapshot, no updates, no completion.

        With `pings=True` the connection looks alive (a hung hub behind a live proxy); with
        `pings=False` it is silent, as a dead peer whose TCP connection never closed.
        """
        return cls(HubFaultKind.SILENCE, pings=pings)

    @classmethod
    def bad_record(cls, field: str, value: JsonScalar = None, *, remove: bool = False) -> HubFault:
        """Spoil the snapshot's first record: set `field` to `value`, or remove it.

        For example `bad_record("fillFactor", "n/a")`, `bad_record("createdAt", None)`, or
        `bad_record("orderId", remove=True)` for a record without a readable id. An empty
        snapshot is sent as it is.
        """
        return cls(HubFaultKind.BAD_RECORD, field=field, value=value, remove=remove)

    @classmethod
    def duplicate(cls) -> HubFault:
        """List the snapshot's first record twice (an empty snapshot is sent as it is)."""
        return cls(HubFaultKind.DUPLICATE)

    @classmethod
    def empty_first(cls, *, gap: float = DEFAULT_GAP) -> HubFault:
        """Send an empty item first (`[]`, or `{"item":[]}` on OpenPositions), then the
        snapshot `gap` seconds later: a client that takes the first item for the snapshot
        sees an empty account."""
        return cls(HubFaultKind.EMPTY_FIRST, gap=gap)

    @classmethod
    def split(cls, pages: int = 2, *, gap: float = DEFAULT_GAP) -> HubFault:
        """Send the snapshot as `pages` items, each a slice of its records, `gap` seconds
        apart. Always `pages` items: when there are fewer records, the last ones are empty."""
        return cls(HubFaultKind.SPLIT, pages=pages, gap=gap)

    @classmethod
    def update_first(cls, *, gap: float = DEFAULT_GAP) -> HubFault:
        """Send an update item first (the snapshot's first record alone, as a change of
        it would come), then the snapshot `gap` seconds later. An empty snapshot is sent as
        it is."""
        return cls(HubFaultKind.UPDATE_FIRST, gap=gap)

    @classmethod
    def fail_after_first(cls, *, gap: float = DEFAULT_GAP) -> HubFault:
        """Send the snapshot, then `gap` seconds later end the stream with a Completion
        carrying an error, as ASP.NET Core ends a stream whose producer throws. The
        connection lives on."""
        return cls(HubFaultKind.FAIL_AFTER_FIRST, gap=gap)


def _check_scalar(value: object) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"value must be finite to be valid JSON, got {value!r}")
    if value is not None and not isinstance(value, str | int | float | bool):
        raise TypeError(f"value must be a JSON scalar (str, number, bool or None), got {value!r}")
