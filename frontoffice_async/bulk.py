"""The results of bulk cancels and of flatten: one `CancelOutcome` per id, the
`BulkCancelResult`, and per account an `AccountFlatten` within a `FlattenResult`.

The pool that produces them (a fixed number of workers over a "cancel this id" callable) is
`_stop.pool`; cancel-all adds what its last snapshot still showed (`remaining`, `verified`);
flatten (`_stop.flatten`) adds stop orders and positions, account by account.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

import attrs

from .errors import (
    BulkCancelError,
    FlattenError,
    FrontOfficeError,
    OrderNotActiveError,
    OrderNotFoundError,
    OrdersStillOpenError,
    PositionsStillOpenError,
)
from .models import OpenOrder, OpenPosition, Order, StopOrder

__all__ = [
    "AccountFlatten",
    "BulkCancelResult",
    "CancelOutcome",
    "FlattenResult",
    "PositionsResult",
]

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
            "order": _plain_order(self.order),
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
        error = self.failure()
        if error is not None:
            raise error

    def failure(self, account_id: str | None = None) -> BulkCancelError | None:
        """The `BulkCancelError` `raise_for_failures()` would raise, or None (`account_id`:
        the account its `OrdersStillOpenError` names)."""
        failed = self.failed
        errors = [o.error for o in failed if o.error is not None]
        still_open = self.remaining or self.unreadable
        if still_open:
            errors.append(
                OrdersStillOpenError(
                    self.remaining, unreadable=self.unreadable, account_id=account_id
                )
            )
        if not errors:
            return None
        parts = [f"{len(failed)} of {len(self)} cancels failed"]
        if still_open:
            parts.append(str(errors[-1]))
        return BulkCancelError("; ".join(parts), errors, failed)

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


@attrs.frozen(kw_only=True)
class PositionsResult:
    """What flatten did about an account's positions, and what its last OpenPositions snapshot
    still showed.

    `accepted` is an acknowledgement, not proof: only the last snapshot verifies.
    """

    accepted: tuple[str, ...] = ()
    """Positions the platform took to close (bulk-close's `positionIds`, single closes)."""
    remaining: list[OpenPosition] = attrs.field(factory=list)
    """Matching positions the last snapshot still showed."""
    unreadable: list[str] = attrs.field(factory=list)
    """Raw records (clipped) of the last snapshot without a readable position id."""
    errors: list[FrontOfficeError] = attrs.field(factory=list)
    """Closes that failed (a 5xx, a lost answer...): the next snapshot decided about them."""
    requests: int = 0
    """Close requests sent (POSTs; one per bulk close, unless a 429 or a connection that
    could not be opened called for another)."""
    rounds: int = 0
    """Rounds that closed something."""
    checked: bool = True
    """False when positions were left alone (`close_positions=False`): nothing was read."""
    verified: bool = False
    """True when a snapshot taken after the last close showed no matching position."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as `BulkCancelResult.as_dict()`."""
        return {
            "accepted": list(self.accepted),
            "remaining": [p.as_dict() for p in self.remaining],
            "unreadable": list(self.unreadable),
            "errors": [e.as_dict() for e in self.errors],
            "requests": self.requests,
            "rounds": self.rounds,
            "checked": self.checked,
            "verified": self.verified,
        }


@attrs.frozen(kw_only=True)
class AccountFlatten:
    """What flatten did on one account: its orders (the verified cancel-all), the stop orders
    it was given, its positions, and the error that stopped it, if one did."""

    account_id: str
    orders: BulkCancelResult[Order]
    """The cancel-all of the account's open orders (`remaining`: what is still open)."""
    stop_orders: BulkCancelResult[StopOrder]
    """The cancels of the stop orders given for this account (none can be listed)."""
    positions: PositionsResult
    error: FrontOfficeError | None = None
    """What stopped this account (a 403, a 401 the refresh did not cure...), or None."""
    rounds: int = 0
    """Rounds that acted (cancelled or closed something); the snapshots read after the last
    one are the verdict."""

    @property
    def verified(self) -> bool:
        """True when the last snapshots showed no matching open order or position, nothing
        unreadable, and every stop order given ended cancelled, not active or not found (a
        dry run, which sends nothing, cannot verify stop orders given)."""
        return (
            self.error is None
            and self.orders.verified
            and self.stop_orders.verified
            and (self.positions.verified or not self.positions.checked)
        )

    def failures(self) -> list[FrontOfficeError]:
        """What may still be open on this account, as errors (empty when verified)."""
        found: list[FrontOfficeError] = [] if self.error is None else [self.error]
        for part in (self.orders.failure(self.account_id), self.stop_orders.failure()):
            if part is not None:
                found.append(part)
        if not self.stop_orders.verified and self.stop_orders.failure() is None:
            found.append(
                FrontOfficeError(
                    "stop orders given were not cancelled (a dry run sends nothing): they may "
                    "still be live"
                )
            )
        positions = self.positions
        if positions.checked and (positions.remaining or positions.unreadable):
            found.append(
                PositionsStillOpenError(
                    positions.remaining,
                    unreadable=positions.unreadable,
                    account_id=self.account_id,
                )
            )
        return found

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as `BulkCancelResult.as_dict()`."""
        return {
            "account_id": self.account_id,
            "verified": self.verified,
            "rounds": self.rounds,
            "orders": self.orders.as_dict(),
            "stop_orders": self.stop_orders.as_dict(),
            "positions": self.positions.as_dict(),
            "error": None if self.error is None else self.error.as_dict(),
        }


@attrs.frozen(kw_only=True)
class FlattenResult:
    """What flatten did, account by account (`accounts`, in the order asked).

    Example:
        >>> result = await client.flatten(accounts="all")
        >>> result.verified, [a for a, acc in result.accounts.items() if not acc.verified]
        >>> result.raise_for_failures()  # FlattenError while anything may still be open
    """

    accounts: dict[str, AccountFlatten]
    elapsed: float = 0.0
    """Wall-clock seconds the call took."""
    dry_run: bool = False
    """True when nothing was sent: each `remaining` is what a real run would act on."""
    journal_error: str | None = None
    """Why the journal stopped being written, if it did (the run went on without it)."""

    @property
    def verified(self) -> bool:
        """True only if every account is verified (see `AccountFlatten.verified`)."""
        return not self.dry_run and all(a.verified for a in self.accounts.values())

    def raise_for_failures(self) -> None:
        """Raise `FlattenError` while anything may still be open on any account.

        The group holds, per account, the error that stopped it, a `BulkCancelError` for
        failed order or stop-order cancels, an `OrdersStillOpenError` and a
        `PositionsStillOpenError` for what the last snapshots still showed.
        """
        failures = {a: acc.failures() for a, acc in self.accounts.items()}
        failures = {a: errors for a, errors in failures.items() if errors}
        if failures:
            names = ", ".join(failures)
            raise FlattenError(f"{len(failures)} accounts not flat: {names}", failures)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; what `frontoffice flatten --json` prints."""
        return {
            "verified": self.verified,
            "dry_run": self.dry_run,
            "elapsed": round(self.elapsed, 6),
            "journal_error": self.journal_error,
            "accounts": {a: acc.as_dict() for a, acc in self.accounts.items()},
        }


def _plain_order(order: object) -> Any:
    """An outcome's order as JSON-ready data (a position close's is the position id)."""
    if order is None or isinstance(order, str):
        return order
    return order.as_dict()  # type: ignore[attr-defined]  # Order or StopOrder
