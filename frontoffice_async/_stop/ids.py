"""One shared source of ids for the bulk workers; each distinct id comes out once.

The record of ids already seen is the one cost that grows with the input, so it is kept
compact, and exact. The platform's order ids are ULIDs: 26 Crockford base-32 characters that
spell a 128-bit number. Recent ULIDs are kept as those numbers in a set; every 65,536 of them
move, as a batch, into two sorted arrays of 64-bit halves (16 bytes an id instead of about 90)
searched by bisection. Any other id is kept as itself. A
number never equals a str, so the two kinds cannot collide, and equal numbers mean equal ids.
"""

from __future__ import annotations

import asyncio
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterable, AsyncIterator, Callable, Hashable, Iterable, Iterator
from typing import Any, Final

__all__ = ["DistinctIds", "SeenIds", "ulid_value"]

_CROCKFORD: Final = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_BASE32: Final = bytes.maketrans(_CROCKFORD, b"0123456789abcdefghijklmnopqrstuv")
_LOW: Final = (1 << 64) - 1
#: Recent ULIDs kept in a set before they move, as a batch, into sorted arrays.
_FLUSH_EVERY: Final = 1 << 16


def ulid_value(order_id: str) -> int | None:
    """The 128-bit number a canonical (uppercase) ULID spells, or None for any other id."""
    # A first digit above 7 would spell more than 128 bits. Byte tables: `bytes.translate` is
    # a plain table lookup, several times faster than `str.translate`.
    if len(order_id) == 26 and order_id[0] <= "7" and order_id.isascii():
        raw = order_id.encode()
        if not raw.translate(None, _CROCKFORD):  # nothing left: every byte is a digit
            return int(raw.translate(_TO_BASE32), 32)
    return None


class SeenIds:
    """Exact membership of the ids seen so far: `add` says whether an id is new."""

    __slots__ = ("_frozen", "_others", "_recent")

    def __init__(self) -> None:
        self._recent: set[int] = set()
        # Older ULIDs in batches, each sorted by value as two arrays of 64-bit halves.
        self._frozen: list[tuple[array[int], array[int]]] = []
        self._others: set[Hashable] = set()

    def add(self, order_id: Any) -> bool:
        """Remember `order_id`; True if it was not seen before."""
        value = ulid_value(order_id) if type(order_id) is str else None
        if value is None:
            # Not a ULID: kept as is (a non-str id, invalid anyway, apart from str ids).
            key = order_id if type(order_id) is str else (type(order_id), order_id)
            try:
                if key in self._others:
                    return False
                self._others.add(key)
            except TypeError:  # unhashable: cannot be a duplicate of a valid id
                pass
            return True
        if value in self._recent or (self._frozen and self._in_frozen(value)):
            return False
        self._recent.add(value)
        if len(self._recent) >= _FLUSH_EVERY:
            self._freeze()
        return True

    def _in_frozen(self, value: int) -> bool:
        high, low = value >> 64, value & _LOW
        for highs, lows in self._frozen:
            # Sorted by (high, low): the ids sharing `high` (one millisecond's ULIDs may)
            # are a run, sorted by `low` within it.
            start = bisect_left(highs, high)
            end = bisect_right(highs, high, start)
            if start < end:
                i = bisect_left(lows, low, start, end)
                if i < end and lows[i] == low:
                    return True
        return False

    def _freeze(self) -> None:
        ordered = sorted(self._recent)
        self._recent = set()  # the set's table goes before the arrays are built
        # Generators, not lists: no second copy of 65,536 numbers while the arrays fill.
        highs = array("Q", (v >> 64 for v in ordered))
        lows = array("Q", (v & _LOW for v in ordered))
        self._frozen.append((highs, lows))


class DistinctIds:
    """Numbers each distinct id in first-seen order; `dedupe=False` remembers nothing."""

    __slots__ = ("_aiter", "_count", "_iter", "_lock", "_seen")

    def __init__(self, order_ids: Iterable[str] | AsyncIterable[str], *, dedupe: bool) -> None:
        self._iter: Iterator[Any] | None = None
        self._aiter: AsyncIterator[Any] | None = None
        if isinstance(order_ids, str | bytes):
            raise TypeError("order_ids must be an iterable of ids, not a single str")
        if isinstance(order_ids, AsyncIterable):
            self._aiter = aiter(order_ids)
        else:
            self._iter = iter(order_ids)
        # An async iterator must not be entered by two workers at once.
        self._lock = asyncio.Lock()
        self._seen = SeenIds() if dedupe else None
        self._count = 0

    @property
    def taken(self) -> int:
        """Distinct ids handed out so far."""
        return self._count

    @property
    def take_now(self) -> Callable[[], tuple[int, Any] | None] | None:
        """The synchronous `take` for a sync iterable, else None."""
        return self._take_sync if self._iter is not None else None

    def _take_sync(self) -> tuple[int, Any] | None:
        assert self._iter is not None
        seen = self._seen
        for order_id in self._iter:
            if seen is None or seen.add(order_id):
                return self._numbered(order_id)
        return None

    async def take(self) -> tuple[int, Any] | None:
        """The next distinct id with its first-seen index, or None at the end."""
        if self._iter is not None:
            return self._take_sync()
        seen = self._seen
        async with self._lock:
            while self._aiter is not None:
                order_id = await anext(self._aiter, _END)
                if order_id is _END:
                    self._aiter = None
                elif seen is None or seen.add(order_id):
                    return self._numbered(order_id)
        return None

    def _numbered(self, order_id: Any) -> tuple[int, Any]:
        index = self._count
        self._count += 1
        return index, order_id


_END: Any = object()
