"""Bulk cancelling: a fixed pool of workers pulling ids from one shared iterator.

Memory stays O(concurrency) in flight, plus the set of ids already seen that makes "each
distinct id once" possible (`dedupe=False` drops it); every id gets exactly one outcome.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from typing import TYPE_CHECKING, Any, overload

import attrs

from .errors import (
    APIStatusError,
    BadRequestError,
    BulkCancelError,
    ConflictError,
    FrontOfficeError,
    OrderNotFoundError,
)
from .models import Order

if TYPE_CHECKING:
    from .client import FrontOfficeClient

__all__ = ["BulkCancelResult", "CancelOutcome", "mark_vanished", "was_refused"]

logger = logging.getLogger("frontoffice_async")


@attrs.frozen
class CancelOutcome:
    """What happened to one id of a bulk cancel: an `order` or an `error`, never both."""

    order_id: str
    order: Order | None = None
    error: FrontOfficeError | None = None
    attempts: int = 0
    """Requests sent for this id (0 when the id was rejected before sending)."""

    @property
    def ok(self) -> bool:
        """True when the server returned the cancelled order."""
        return self.order is not None

    @property
    def not_found(self) -> bool:
        """True when the server said 404: unknown, already gone, or cancelled by a retry."""
        return isinstance(self.error, OrderNotFoundError)


class BulkCancelResult(Sequence[CancelOutcome]):
    """The outcomes of a bulk cancel, one per distinct id, in first-seen input order.

    Example:
        >>> result = await client.cancel_orders(ids)
        >>> len(result.cancelled), result.not_found, [o.error for o in result.failed]
        >>> result.raise_for_failures()   # BulkCancelError if any id failed
    """

    __slots__ = ("_outcomes", "elapsed")

    def __init__(self, outcomes: Sequence[CancelOutcome], *, elapsed: float = 0.0) -> None:
        self._outcomes = tuple(outcomes)
        self.elapsed = elapsed
        """Wall-clock seconds the bulk call took."""

    @overload
    def __getitem__(self, index: int) -> CancelOutcome: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[CancelOutcome]: ...
    def __getitem__(self, index: int | slice) -> CancelOutcome | Sequence[CancelOutcome]:
        return self._outcomes[index]

    def __len__(self) -> int:
        return len(self._outcomes)

    @property
    def cancelled(self) -> list[Order]:
        """The orders the server confirmed as cancelled."""
        return [o.order for o in self._outcomes if o.order is not None]

    @property
    def not_found(self) -> list[str]:
        """Ids the server did not know (already final, vanished, or cancelled by a retry)."""
        return [o.order_id for o in self._outcomes if o.not_found]

    @property
    def failed(self) -> list[CancelOutcome]:
        """Outcomes with an error other than "not found": these orders may still be live."""
        return [o for o in self._outcomes if o.error is not None and not o.not_found]

    @property
    def attempts(self) -> int:
        """Requests sent in total."""
        return sum(o.attempts for o in self._outcomes)

    def raise_for_failures(self) -> None:
        """Raise `BulkCancelError` (an `ExceptionGroup`) if any outcome is in `failed`."""
        failed = self.failed
        if failed:
            raise BulkCancelError(
                f"{len(failed)} of {len(self)} cancels failed",
                [o.error for o in failed if o.error is not None],
                failed,
            )

    def __repr__(self) -> str:
        return (
            f"<BulkCancelResult {len(self)} ids: {len(self.cancelled)} cancelled, "
            f"{len(self.not_found)} not found, {len(self.failed)} failed>"
        )


_Sink = Callable[[int, CancelOutcome], Awaitable[None] | None]


async def cancel_orders(
    client: FrontOfficeClient,
    order_ids: Iterable[str] | AsyncIterable[str],
    *,
    account_id: str,
    concurrency: int,
    on_outcome: Callable[[CancelOutcome], object] | None = None,
    dedupe: bool = True,
) -> BulkCancelResult:
    """Run the pool to completion; see `FrontOfficeClient.cancel_orders`."""
    received: dict[int, CancelOutcome] = {}

    def keep(index: int, outcome: CancelOutcome) -> None:
        received[index] = outcome
        if on_outcome is not None:
            try:
                on_outcome(outcome)
            except Exception:
                # A broken progress hook must not stop the other cancels.
                logger.exception("on_outcome callback failed")

    started = time.perf_counter()
    await _run_pool(client, order_ids, account_id, concurrency, keep, dedupe)
    # Indexes are dense (0..n-1 over distinct ids), so this is first-seen order.
    ordered = [received[i] for i in range(len(received))]
    return BulkCancelResult(ordered, elapsed=time.perf_counter() - started)


async def iter_cancel_orders(
    client: FrontOfficeClient,
    order_ids: Iterable[str] | AsyncIterable[str],
    *,
    account_id: str,
    concurrency: int,
    dedupe: bool = True,
) -> AsyncGenerator[CancelOutcome, None]:
    """Yield outcomes in completion order; see `FrontOfficeClient.iter_cancel_orders`."""
    # Bounded: a slow consumer makes the workers wait instead of piling outcomes up.
    queue: asyncio.Queue[CancelOutcome | _Done] = asyncio.Queue(maxsize=concurrency)

    async def put(_: int, outcome: CancelOutcome) -> None:
        await queue.put(outcome)

    async def run() -> None:
        try:
            await _run_pool(client, order_ids, account_id, concurrency, put, dedupe)
        except asyncio.CancelledError:
            raise  # the consumer left: nobody reads the queue, so do not wait on it
        except Exception as exc:
            await queue.put(_Done(exc))
            raise
        await queue.put(_Done(None))

    runner = asyncio.create_task(run(), name="frontoffice-bulk-runner")
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
        # Wait for the workers to stop; their own error was already raised above.
        await asyncio.gather(runner, return_exceptions=True)


@attrs.frozen
class _Done:
    error: BaseException | None


async def _run_pool(
    client: FrontOfficeClient,
    order_ids: Iterable[str] | AsyncIterable[str],
    account_id: str,
    concurrency: int,
    sink: _Sink,
    dedupe: bool,
) -> None:
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
    source = _DistinctIds(order_ids, dedupe=dedupe)
    take_now = source.take_now  # a plain call for sync iterables: no coroutine per id
    cancel = client._cancel
    prefix = client._orders_prefix

    async def worker() -> None:
        while (item := take_now() if take_now else await source.take()) is not None:
            index, order_id = item
            try:
                order, attempts = await cancel(prefix, Order, order_id, account_id)
            except FrontOfficeError as exc:
                outcome = CancelOutcome(order_id, error=exc, attempts=getattr(exc, "attempts", 0))
            else:
                outcome = CancelOutcome(order_id, order=order, attempts=attempts)
            done = sink(index, outcome)
            if done is not None:
                await done

    try:
        async with asyncio.TaskGroup() as group:
            for n in range(concurrency):
                group.create_task(worker(), name=f"frontoffice-bulk-worker-{n}")
    except BaseExceptionGroup as group_error:
        # Only a bug or a failing input iterator gets here (per-id errors are outcomes);
        # surface the original exception rather than a one-item group.
        if len(group_error.exceptions) == 1:
            raise group_error.exceptions[0] from None
        raise


def was_refused(outcome: CancelOutcome) -> bool:
    """True when the server refused the cancel as "not cancellable" (400 or 409)."""
    return isinstance(outcome.error, BadRequestError | ConflictError)


def mark_vanished(result: BulkCancelResult, still_open: set[str]) -> BulkCancelResult:
    """Turn refusals of orders that are no longer open into not-found outcomes.

    Used by cancel-all: an order filled, expired or cancelled by the platform between the
    snapshot and the cancel is gone, which is what the caller wanted, not a failure.
    """
    outcomes = []
    for outcome in result:
        error = outcome.error
        if (
            isinstance(error, BadRequestError | ConflictError)
            and outcome.order_id not in still_open
        ):
            outcomes.append(attrs.evolve(outcome, error=_gone(outcome.order_id, error)))
        else:
            outcomes.append(outcome)
    return BulkCancelResult(outcomes, elapsed=result.elapsed)


def _gone(order_id: str, refusal: APIStatusError) -> OrderNotFoundError:
    gone = OrderNotFoundError(
        f"no longer open: {refusal.message}",
        order_id=order_id,
        status=refusal.status,
        method=refusal.method,
        url=refusal.url,
        headers=refusal.headers,
        body=refusal.body,
        trace_id=refusal.trace_id,
        attempts=refusal.attempts,
    )
    gone.__cause__ = refusal
    return gone


class _DistinctIds:
    """One shared source of (index, id) for all workers; each distinct id comes out once."""

    __slots__ = ("_aiter", "_count", "_iter", "_lock", "_seen")

    def __init__(self, order_ids: Iterable[str] | AsyncIterable[str], *, dedupe: bool) -> None:
        self._iter: Iterator[Any] | None = None
        self._aiter: AsyncIterator[Any] | None = None
        if isinstance(order_ids, str):
            raise TypeError("order_ids must be an iterable of ids, not a single str")
        if isinstance(order_ids, AsyncIterable):
            self._aiter = aiter(order_ids)
        else:
            self._iter = iter(order_ids)
        # An async iterator must not be entered by two workers at once.
        self._lock = asyncio.Lock()
        # ~110 bytes per distinct id: the one cost that grows with the input.
        self._seen: set[Any] | None = set() if dedupe else None
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
        if self._seen is None:
            return True
        try:
            if order_id in self._seen:
                return False
            self._seen.add(order_id)
        except TypeError:  # unhashable: cannot be a duplicate of a valid id
            pass
        return True

    def _numbered(self, order_id: Any) -> tuple[int, Any]:
        index = self._count
        self._count += 1
        return index, order_id


_END: Any = object()
