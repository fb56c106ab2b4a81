"""The bulk pool: a fixed number of workers over a "cancel this id" callable.

Workers pull ids from one shared iterator, so memory stays O(concurrency) in flight (plus
the compact set of ids already seen that makes "each distinct id once" possible); every id
taken from the input gets exactly one `CancelOutcome`, whatever happens to the call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Sized
from typing import Generic, TypeVar

import attrs

from .._http.endpoints import Canceller
from .._http.gate import Halt, Halted
from ..bulk import BulkCancelResult, CancelOutcome
from ..errors import (
    AuthenticationError,
    ClientClosedError,
    FrontOfficeError,
    PermissionDeniedError,
    TokenProviderError,
    TokenProviderTimeoutError,
)
from .ids import DistinctIds

__all__ = ["cancel_orders", "iter_cancel_orders"]

logger = logging.getLogger("frontoffice_async")

T = TypeVar("T")
#: After one of these, the next request would fail the same way: send nothing more.
_FATAL = (
    AuthenticationError,
    PermissionDeniedError,
    TokenProviderError,
    TokenProviderTimeoutError,
)

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
            error = _lighten(exc)
            if isinstance(error, ClientClosedError):
                self._closed = error
            elif isinstance(error, _FATAL) and self.halt.error is None:
                self.halt.error = error
            return CancelOutcome(order_id, error=error, attempts=getattr(error, "attempts", 0))
        return CancelOutcome(order_id, order=record, attempts=attempts)


def _lighten(error: FrontOfficeError) -> FrontOfficeError:
    """An error made light to keep in a result (`_http.answers.lighten`): no traceback frames
    (they would keep the response, its connection and the call's locals alive as long as the
    result), no heavy cause chain, a clipped body and only the headers worth keeping."""
    # Imported here so that this module's imports stay as they are (the pool is shared work).
    from .._http.answers import lighten  # noqa: PLC0415

    return lighten(error)
