"""ULID-like ids (26 Crockford base-32 characters) that are the same for the same seed."""

from __future__ import annotations

import hashlib
from collections.abc import Container

__all__ = ["IdSequence"]

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Id time parts count milliseconds from this instant (2025-08-15T08:59:51.970Z), one per
# id, so ids sort in creation order and do not depend on the wall clock.
_ID_EPOCH_MS = 1_755_248_391_970


class IdSequence:
    """Fresh ids for one kind of record (`label`), reproducible for a seed."""

    def __init__(self, seed: int, label: str) -> None:
        self._prefix = f"{label}:{seed}:"
        self._count = 0

    def next(self, taken: Container[str]) -> str:
        """The next id of the sequence that is not in `taken`."""
        while True:
            n = self._count
            self._count += 1
            digest = hashlib.sha256(f"{self._prefix}{n}".encode()).digest()
            new_id = _crockford(_ID_EPOCH_MS + n, 10) + _crockford(
                int.from_bytes(digest[:10], "big"), 16
            )
            if new_id not in taken:
                return new_id


def _crockford(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "".join(reversed(chars))
