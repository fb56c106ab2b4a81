"""The results of bulk cancels: one `CancelOutcome` per id, and the `BulkCancelResult`.

The pool that produces them (a fixed number of workers over a "cancel this id" callable) is
`_stop.pool`; cancel-all adds what its last snapshot still showed (`remaining`, `verified`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

import attrs

from .errors import (
    BulkCancelError,
    FrontOfficeError,
    OrderNotActiveError,
    OrderNotFoundError,
    OrdersStillOpenError,
)
from .models import OpenOrder

__all__ = ["BulkCancelResult", "CancelOutcome"]

T = TypeVar("T")


@attrs.frozen
class CancelOutcome(Generic[T]):
    """What happened to one id of a bulk cancel: an `order` or an `error`, never both.

    `order` is an `Order` (a `StopOrder` for `cancel_stop_orders`). Categories: `ok`
    (cancelled), `not_found` (404), `not_active` (`OrderNotActiveError`: the order is final; for
    a fill reported by a 2xx, `error.order` holds the filled order), `failed` (anything else,
    `CancelNotConfirmedError` included: the order may still be live). An error kept here is
    lightened: its body clipped to a few hundred bytes, no headers but `Retry-After` and trace
    ids, no traceback.
    """

    order_id: str
    order: T | None = None
    error: FrontOfficeError | None = None
    attempts: int = 0
    """Requests sent for this id (0 when nothing was sent for it)."""

    @property
    def ok(self) -> bool:
        """True when the server returned the cancelled order."""
        return self.order is not None

    @property
    def not_found(self) -> bool:
        """True when the server answered 404: unknown, already gone, or cancelled by a retry."""
        return isinstance(self.error, OrderNotFoundError)

    @property
    def not_active(self) -> bool:
        """True when the order exists but is final: a 400 about it, or a 2xx that showed it
        filled (`error.order` is then the filled order)."""
        return isinstance(self.error, OrderNotActiveError)

    @property
    def failed(self) -> bool:
        """True when the order may still be live: any error but "not found"/"not active"."""
        return self.error is not None and not isinstance(
            self.error, OrderNotFoundError | OrderNotActiveError
        )

    @property
    def category(self) -> str:
        """`cancelled`, `not_found`, `not_active` or `failed`."""
        if self.error is None:
            return "cancelled"
        if isinstance(self.error, OrderNotFoundError):
            return "not_found"
        if isinstance(self.error, OrderNotActiveError):
            return "not_active"
        return "failed"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: snake_case keys, decimals as strings, ISO-8601 timestamps."""
        return {
            "order_id": self.order_id,
            "category": self.category,
            "attempts": self.attempts,
            "order": None if self.order is None else self.order.as_dict(),  # type: ignore[attr-defined]
            "error": None if self.error is None else self.error.as_dict(),
        }


class BulkCancelResult(Sequence[CancelOutcome[T]]):
    """The outcomes of a bulk cancel, one per distinct id, in first-seen input order.

    For `cancel_all_orders` it also says what the last snapshot still showed (`remaining`,
    `unreadable`) and whether the account was seen empty of matching orders (`verified`).

    Example:
        >>> result = await client.cancel_orders(ids)
        >>> len(result.cancelled), result.not_found, [o.error for o in result.failed]
        >>> result.raise_for_failures()  # BulkCancelError if an id failed or orders stay open
    """

    __slots__ = (
        "_attempts",
        "_outcomes",
        "elapsed",
        "filtered_out",
        "remaining",
        "rounds",
        "stopped_by",
        "unreadable",
        "verified",
    )

    def __init__(
        self,
        outcomes: Iterable[CancelOutcome[T]],
        *,
        elapsed: float = 0.0,
        rounds: int = 1,
        remaining: Sequence[OpenOrder] = (),
        unreadable: Sequence[str] = (),
        verified: bool = False,
        filtered_out: Mapping[str, int] | None = None,
        attempts: int | None = None,
        stopped_by: FrontOfficeError | None = None,
    ) -> None:
        self._outcomes = tuple(outcomes)
        self._attempts = attempts
        self.stopped_by: FrontOfficeError | None = stopped_by
        """The error that made the call stop sending (a 401 the refresh did not cure, a 403,
        a failing token provider), or None: the ids after it got it without a request."""
        self.elapsed: float = elapsed
        """Wall-clock seconds the call took."""
        self.rounds: int = rounds
        """Cancel passes made (cancel-all may make several; 0 for a dry run)."""
        self.remaining: list[OpenOrder] = list(remaining)
        """Matching orders the last snapshot still showed (cancel-all only)."""
        self.unreadable: list[str] = list(unreadable)
        """Raw records (clipped) of the last snapshot whose order id could not be read."""
        self.verified: bool = verified
        """True when a snapshot taken after the last cancel showed no matching order."""
        self.filtered_out: dict[str, int] = dict(filtered_out or {})
        """Open orders per market that the cancel-all filters left out (first snapshot)."""

    @overload
    def __getitem__(self, index: int) -> CancelOutcome[T]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[CancelOutcome[T]]: ...
    def __getitem__(self, index: int | slice) -> CancelOutcome[T] | Sequence[CancelOutcome[T]]:
        return self._outcomes[index]

    def __len__(self) -> int:
        return len(self._outcomes)

    @property
    def cancelled(self) -> list[T]:
        """The orders the server confirmed as cancelled."""
        return [o.order for o in self._outcomes if o.order is not None]

    @property
    def not_found(self) -> list[str]:
        """Ids the server did not know (already final, vanished, or cancelled by a retry)."""
        return [o.order_id for o in self._outcomes if o.not_found]

    @property
    def not_active(self) -> list[str]:
        """Ids whose order exists but is final (filled, cancelled, expired, rejected)."""
        return [o.order_id for o in self._outcomes if o.not_active]

    @property
    def failed(self) -> list[CancelOutcome[T]]:
        """Outcomes whose order may still be live; resending these ids is safe."""
        return [o for o in self._outcomes if o.failed]

    @property
    def attempts(self) -> int:
        """Requests sent in total (for cancel-all: in every round, not only the outcomes kept)."""
        if self._attempts is not None:
            return self._attempts
        return sum(o.attempts for o in self._outcomes)

    def raise_for_failures(self) -> None:
        """Raise `BulkCancelError` if an outcome failed or orders are still open.

        The group holds the failed outcomes' errors, plus one `OrdersStillOpenError` when
        `remaining` or `unreadable` is not empty.
        """
        failed = self.failed
        errors = [o.error for o in failed if o.error is not None]
        if self.remaining or self.unreadable:
            errors.append(OrdersStillOpenError(self.remaining, unreadable=self.unreadable))
        if errors:
            parts = [f"{len(failed)} of {len(self)} cancels failed"]
            if self.remaining or self.unreadable:
                parts.append(str(errors[-1]))
            raise BulkCancelError("; ".join(parts), errors, failed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: snake_case keys, decimals as strings, ISO-8601 timestamps; what the
        CLI's `--json` prints."""
        counts = dict.fromkeys(("cancelled", "not_found", "not_active", "failed"), 0)
        for outcome in self._outcomes:
            counts[outcome.category] += 1
        return {
            "counts": counts,
            "attempts": self.attempts,
            "elapsed": round(self.elapsed, 6),
            "rounds": self.rounds,
            "verified": self.verified,
            "outcomes": [o.as_dict() for o in self._outcomes],
            "remaining": [o.as_dict() for o in self.remaining],
            "unreadable": list(self.unreadable),
            "filtered_out": dict(self.filtered_out),
            "stopped_by": None if self.stopped_by is None else self.stopped_by.as_dict(),
        }

    def __repr__(self) -> str:
        extra = f", {len(self.remaining)} still open" if self.remaining else ""
        return (
            f"<BulkCancelResult {len(self)} ids: {len(self.cancelled)} cancelled, "
            f"{len(self.not_found)} not found, {len(self.not_active)} not active, "
            f"{len(self.failed)} failed{extra}>"
        )
