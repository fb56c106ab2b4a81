"""One shared source of ids for the bulk workers; each distinct id comes out once.

The record of ids already seen is the one cost that grows with the input, so it is kept
compact, and exact: a canonical 26-character ULID (the platform's order ids) is remembered as
the integer its digits spell in base 36, about half the memory of the string; any other id
is remembered as itself. An int never equals a str, so the two kinds cannot collide.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Hashable, Iterable, Iterator
from typing import Any

__all__ = ["DistinctIds", "seen_key"]

_ULID_LENGTH = 26


def seen_key(order_id: str) -> Hashable:
    """What the seen-set stores for `order_id`: equal keys if and only if equal ids."""
    # int(..., 36) is exact for a fixed length and one letter case: uppercase ULIDs only.
    if (
        len(order_id) == _ULID_LENGTH
        and order_id.isascii()
        and order_id.isalnum()
        and (order_id.isupper() or order_id.isdigit())
    ):
        return int(order_id, 36)
    return order_id


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
        self._seen: set[Hashable] | None = set() if dedupe else None
        self._count = 0

    @property
    def take_now(self) -> Callable[[], tuple[int, Any] | None] | None:
        """The synchronous `take` for a sync iterable, else None."""
        return self._take_sync if self._iter is not None else None

    def _take_sync(self) -> tuple[int, Any] | None:
        assert self._iter is not None
        for order_id in self._iter:
            if self._is_new(order_id):
                return self._numbered(order_id)
        return None

    async def take(self) -> tuple[int, Any] | None:
        """The next distinct id with its first-seen index, or None at the end."""
        if self._iter is not None:
            return self._take_sync()
        async with self._lock:
            while self._aiter is not None:
                order_id = await anext(self._aiter, _END)
                if order_id is _END:
                    self._aiter = None
                elif self._is_new(order_id):
                    return self._numbered(order_id)
        return None

    def _is_new(self, order_id: Any) -> bool:
        seen = self._seen
        if seen is None:
            return True
        # A non-str id (invalid, it fails without a request) is kept apart from the int keys.
        key = seen_key(order_id) if type(order_id) is str else (type(order_id), order_id)
        try:
            if key in seen:
                return False
            seen.add(key)
        except TypeError:  # unhashable: cannot be a duplicate of a valid id
            pass
        return True

    def _numbered(self, order_id: Any) -> tuple[int, Any]:
        index = self._count
        self._count += 1
        return index, order_id


_END: Any = object()
