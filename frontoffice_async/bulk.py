"""Bulk cancelling: a fixed pool of workers over a "cancel this id" callable, and its results.

Workers pull ids from one shared iterator, so memory stays O(concurrency) in flight (plus
the compact set of ids already seen that makes "each distinct id once" possible); every id
taken from the input gets exactly one `CancelOutcome`, whatever happens to the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Awaitable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
    Sized,
)
from typing import Any, Generic, TypeVar, overload

import attrs

from ._converter import to_plain
from ._gate import Halt, Halted
from ._ids import DistinctIds
from .errors import (
    AuthenticationError,
    BulkCancelError,
    ClientClosedError,
    FrontOfficeError,
    OrderNotActiveError,
    OrderNotFoundError,
    OrdersStillOpenError,
    PermissionDeniedError,
    TokenProviderError,
    _TokenProviderTimeoutError,
)
from .models import OpenOrder

__all__ = ["BulkCancelResult", "CancelOutcome", "Canceller"]

logger = logging.getLogger("frontoffice_async")

T = TypeVar("T")
#: Cancels one id, unless the call's `Halt` is set by then (`Halted`): the record and the
#: attempts it took, or a `FrontOfficeError`.
Canceller = Callable[[str, Halt | None], Awaitable[tuple[T, int]]]
#: After one of these, the next request would fail the same way: send nothing more.
_FATAL = (
    AuthenticationError,
    PermissionDeniedError,
    TokenProviderError,
    _TokenProviderTimeoutError,
)


@attrs.frozen
class CancelOutcome(Generic[T]):
    """What happened to one id of a bulk cancel: an `order` or an `error`, never both.

    `order` is an `Order` (a `StopOrder` for `cancel_stop_orders`). Categories: `ok`
    (cancelled), `not_found` (404), `not_active` (400: the order is final), `failed`
    (anything else: the order may still be live).
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
        """True when the server answered 400: the order exists but is final."""
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
            "order": None if self.order is None else to_plain(self.order),
            "error": None if self.error is None else _error_as_dict(self.error),
        }


class BulkCancelResult(Sequence[CancelOutcome[T]]):
    """The outcomes of a bulk cancel, one per distinct id, in first-seen input order.

    For `cancel_all_orders` it also says what the last snapshot still showed (`remaining`,
    `unreadable`) and whether the account was seen empty of matching orders (`verified`).

    Example:
        >>> result = await client.cancel_orders(ids)
        >>> len(result.cancelled), result.not_found, [o.error for o in result.failed]
        >>> result.raise_for_failures()   # BulkCancelError if any id failed
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
        self.stopped_by = stopped_by
        """The error that made the call stop sending (a 401 the refresh did not cure, a 403,
        a failing token provider), or None: the ids after it got it without a request."""
        self.elapsed = elapsed
        """Wall-clock seconds the call took."""
        self.rounds = rounds
        """Cancel passes made (cancel-all may make several; 0 for a dry run)."""
        self.remaining = list(remaining)
        """Matching orders the last snapshot still showed (cancel-all only)."""
        self.unreadable = list(unreadable)
        """Raw records (clipped) of the last snapshot whose order id could not be read."""
        self.verified = verified
        """True when a snapshot taken after the last cancel showed no matching order."""
        self.filtered_out = dict(filtered_out or {})
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
            "remaining": [to_plain(o) for o in self.remaining],
            "unreadable": list(self.unreadable),
            "filtered_out": dict(self.filtered_out),
            "stopped_by": None if self.stopped_by is None else _error_as_dict(self.stopped_by),
        }

    def __repr__(self) -> str:
        extra = f", {len(self.remaining)} still open" if self.remaining else ""
        return (
            f"<BulkCancelResult {len(self)} ids: {len(self.cancelled)} cancelled, "
            f"{len(self.not_found)} not found, {len(self.not_active)} not active, "
            f"{len(self.failed)} failed{extra}>"
        )


def _error_as_dict(error: FrontOfficeError) -> dict[str, Any]:
    """An error as JSON-ready data: type, status, message, trace id (never a token)."""
    return {
        "type": type(error).__name__,
        "status": getattr(error, "status", None),
        "message": getattr(error, "message", None) or str(error),
        "trace_id": getattr(error, "trace_id", None),
    }


# --- the pool ---------------------------------------------------------------------------------

_Sink = Callable[[int, CancelOutcome[T]], Awaitable[None] | None]


async def cancel_orders(
    cancel: Canceller[T],
    order_ids: Iterable[str] | AsyncIterable[str],
    *,
    concurrency: int,
    on_outcome: Callable[[CancelOutcome[T]], object] | None = None,
    dedupe: bool = True,
) -> BulkCancelResult[T]:
    """Run the pool to completion; see `FrontOfficeClient.cancel_orders`."""
    received: dict[int, CancelOutcome[T]] = {}

    def keep(index: int, outcome: CancelOutcome[T]) -> None:
        received[index] = outcome
        if on_outcome is not None:
            try:
                on_outcome(outcome)
            except Exception:
                # A broken progress hook must not stop the other cancels.
                logger.exception("on_outcome callback failed")

    started = time.perf_counter()
    pool = _Pool(cancel, order_ids, concurrency, keep, dedupe)
    await pool.run()
    # Indexes are dense (0..n-1 over distinct ids), so this is first-seen order.
    ordered = [received[i] for i in range(len(received))]
    stopped_by = pool.halt.error if isinstance(pool.halt.error, FrontOfficeError) else None
    return BulkCancelResult(ordered, elapsed=time.perf_counter() - started, stopped_by=stopped_by)


async def iter_cancel_orders(
    cancel: Canceller[T],
    order_ids: Iterable[str] | AsyncIterable[str],
    *,
    concurrency: int,
    dedupe: bool = True,
    owner: set[asyncio.Task[None]] | None = None,
) -> AsyncGenerator[CancelOutcome[T], None]:
    """Yield outcomes in completion order; see `FrontOfficeClient.iter_cancel_orders`.

    The workers run in a task of their own, kept in `owner` while it runs, so that whoever
    owns the set (the client) can stop it when a consumer walked away without closing us.
    """
    # Bounded: a slow consumer makes the workers wait instead of piling outcomes up.
    queue: asyncio.Queue[CancelOutcome[T] | _Done] = asyncio.Queue(maxsize=concurrency)

    async def put(_: int, outcome: CancelOutcome[T]) -> None:
        await queue.put(outcome)

    async def run() -> None:
        try:
            await _Pool(cancel, order_ids, concurrency, put, dedupe).run()
        except asyncio.CancelledError:
            raise  # the consumer left: nobody reads the queue, so do not wait on it
        except BaseException as exc:
            await queue.put(_Done(exc))
            return
        await queue.put(_Done(None))

    runner = asyncio.create_task(run(), name="frontoffice-bulk-runner")
    if owner is not None:
        owner.add(runner)
        runner.add_done_callback(owner.discard)
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _Done):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        if not runner.done():
            runner.cancel()
        await asyncio.wait([runner])


@attrs.frozen
class _Done:
    error: BaseException | None


class _Pool(Generic[T]):
    """The workers of one bulk call, and why they stopped early, if they did.

    Workers start one at a time, each as the one before takes an id, so a huge `concurrency`
    over three ids costs three workers, not a million.
    """

    def __init__(
        self,
        cancel: Canceller[T],
        order_ids: Iterable[str] | AsyncIterable[str],
        concurrency: int,
        sink: _Sink[T],
        dedupe: bool,
    ) -> None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
        if isinstance(order_ids, Sized):
            concurrency = min(concurrency, len(order_ids))  # no idle workers for short inputs
        self._cancel = cancel
        self._ids = DistinctIds(order_ids, dedupe=dedupe)
        self._concurrency = concurrency
        self._sink = sink
        self._group: asyncio.TaskGroup | None = None
        self._workers = 0
        #: Set by a 401 after refresh, a 403 or a token-provider failure: send nothing more.
        self.halt = Halt()
        #: The input failed, or a bug: stop taking ids, raise it once the in-flight ones end.
        self._abort: BaseException | None = None
        self._closed: ClientClosedError | None = None

    async def run(self) -> None:
        """Run the workers until the input ends or the call must stop; then raise why."""
        if self._concurrency:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._spawn()
        if self._abort is not None:
            raise self._abort
        if self._closed is not None:
            raise ClientClosedError(f"{self._closed.args[0]}: the bulk cancel stopped")

    def _spawn(self) -> None:
        if self._group is not None and self._workers < self._concurrency:
            self._workers += 1
            name = f"frontoffice-bulk-worker-{self._workers}"
            self._group.create_task(self._work(), name=name)

    async def _work(self) -> None:
        ids = self._ids
        take_now = ids.take_now  # a plain call for sync iterables: no coroutine per id
        while self._abort is None and self._closed is None:
            try:
                item = take_now() if take_now else await ids.take()
            except Exception as exc:  # the caller's iterator failed
                self._abort = self._abort or exc
                return
            if item is None:
                return
            self._spawn()  # an id came: the next one may too
            index, order_id = item
            try:
                outcome = await self._outcome(order_id)
            except Exception as exc:  # a bug, not a per-id failure: stop cleanly
                self._abort = self._abort or exc
                return
            done = self._sink(index, outcome)
            if done is not None:
                await done

    async def _outcome(self, order_id: str) -> CancelOutcome[T]:
        fatal = self.halt.error
        if isinstance(fatal, FrontOfficeError):
            return CancelOutcome(order_id, error=fatal, attempts=0)
        try:
            record, attempts = await self._cancel(order_id, self.halt)
        except Halted as stopped:  # it waited (limiter, token, backoff) while the call failed
            error = self.halt.error
            assert isinstance(error, FrontOfficeError)
            return CancelOutcome(order_id, error=error, attempts=stopped.attempts)
        except FrontOfficeError as exc:
            error = _light(exc)
            if isinstance(error, ClientClosedError):
                self._closed = error
            elif isinstance(error, _FATAL) and self.halt.error is None:
                self.halt.error = error
            return CancelOutcome(order_id, error=error, attempts=getattr(error, "attempts", 0))
        return CancelOutcome(order_id, order=record, attempts=attempts)


def _light(error: FrontOfficeError) -> FrontOfficeError:
    """Drop the tracebacks of an error kept in a result, and of its causes: their frames would
    keep the response, its connection and the call's locals alive for as long as the result."""
    seen: BaseException | None = error
    for _ in range(16):  # a cause chain is short; a loop of causes must not hang us
        if seen is None:
            break
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__
    return error
