"""The bulk pool: a fixed number of workers over a "cancel this id" callable.

Workers pull ids from one shared iterator, so memory stays O(concurrency) in flight (plus
the compact set of ids already seen that makes "each distinct id once" possible); every id
taken from the input gets exactly one `CancelOutcome`, whatever happens to the call: an input
that fails, a `CancelledError` nothing asked for, or the client closed from another task.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Sized
from typing import Generic, Protocol, TypeVar

import attrs

from .._http.answers import lighten
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

__all__ = ["BulkCalls", "cancel_orders", "is_fatal", "iter_cancel_orders"]

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


class _Closable(Protocol):
    def close(self) -> None: ...


class BulkCalls:
    """The bulk calls of one client still running, so that `close()` can stop them: each
    stops taking ids, lets what it sent finish, and ends with `ClientClosedError` once every
    id it took has its outcome."""

    __slots__ = ("_pools", "_runners")

    def __init__(self) -> None:
        self._pools: set[_Closable] = set()
        self._runners: set[asyncio.Task[None]] = set()

    def close(self) -> None:
        """Stop taking ids (a wait on an async input ends too); no await inside."""
        for pool in list(self._pools):
            pool.close()

    async def wait(self) -> None:
        """Wait until every `iter_cancel_orders` of the client has finished its work (its
        outcomes then wait for a reader, if there still is one)."""
        runners = list(self._runners)
        if runners:
            await asyncio.wait(runners)


async def cancel_orders(
    cancel: Canceller[T],
    order_ids: Iterable[str] | AsyncIterable[str],
    *,
    concurrency: int,
    on_outcome: Callable[[CancelOutcome[T]], object] | None = None,
    dedupe: bool = True,
    owner: BulkCalls | None = None,
    raise_on_close: bool = True,
) -> BulkCancelResult[T]:
    """Run the pool to completion; see `FrontOfficeClient.cancel_orders`.

    `raise_on_close=False` returns what was done when the client closes (its `stopped_by` is
    the `ClientClosedError`) instead of raising it: flatten keeps every outcome so.
    """
    received: dict[int, CancelOutcome[T]] = {}

    def keep(index: int, outcome: CancelOutcome[T]) -> None:
        received[index] = outcome
        if on_outcome is not None:
            try:
                on_outcome(outcome)
            except Exception:
                # A broken progress hook must not stop the other cancels.
                logger.exception("on_outcome callback failed")
            except asyncio.CancelledError:
                if _being_cancelled():
                    raise  # a real request to stop
                # One the hook raised on its own (a cancelled future's `.result()`): a broken
                # hook like any other, or the worker would die and leave ids untaken.
                logger.exception("on_outcome callback raised CancelledError")

    started = time.perf_counter()
    pool = _Pool(cancel, order_ids, concurrency, keep, dedupe)
    closed: ClientClosedError | None = None
    try:
        await pool.run(owner)
    except ClientClosedError as error:
        if raise_on_close:
            raise
        closed = error
    # Indexes are dense (0..n-1 over distinct ids), so this is first-seen order.
    ordered = [received[i] for i in range(len(received))]
    stopped_by = pool.halt.error if isinstance(pool.halt.error, FrontOfficeError) else closed
    return BulkCancelResult(ordered, elapsed=time.perf_counter() - started, stopped_by=stopped_by)


async def iter_cancel_orders(
    cancel: Canceller[T],
    order_ids: Iterable[str] | AsyncIterable[str],
    *,
    concurrency: int,
    dedupe: bool = True,
    owner: BulkCalls | None = None,
) -> AsyncGenerator[CancelOutcome[T], None]:
    """Yield outcomes in completion order; see `FrontOfficeClient.iter_cancel_orders`.

    The workers run in a task of their own, kept in `owner` while it runs, so that the client
    can stop it when it closes, even after a consumer walked away without closing us.
    """
    outbox: _Outbox[CancelOutcome[T] | _Done] = _Outbox(concurrency)
    pool = _Pool(cancel, order_ids, concurrency, lambda _, outcome: outbox.put(outcome), dedupe)
    pool.on_close = outbox.unbound  # a worker must not wait for a reader who may be gone

    async def run() -> None:
        try:
            await pool.run(owner)
        except asyncio.CancelledError as exc:
            if _being_cancelled():
                raise  # the consumer left: nobody reads the outbox, so do not wait on it
            await outbox.put(_Done(exc))  # the caller's input raised it: theirs to see
            return
        except BaseException as exc:
            await outbox.put(_Done(exc))
            return
        await outbox.put(_Done(None))

    runner = asyncio.create_task(run(), name="frontoffice-bulk-runner")
    if owner is not None:
        owner._runners.add(runner)
        runner.add_done_callback(owner._runners.discard)
    try:
        while True:
            item = await outbox.get()
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


class _Outbox(Generic[T]):
    """Outcomes on their way to the consumer of `iter_cancel_orders`: bounded, so a slow
    consumer makes the workers wait instead of piling outcomes up, until the client closes
    (`unbound`): then nobody may be reading any more, and a worker must not wait for a reader."""

    __slots__ = ("_bounded", "_items", "_readable", "_size", "_writable")

    def __init__(self, size: int) -> None:
        self._items: deque[T] = deque()
        self._size = size
        self._bounded = True
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()

    async def put(self, item: T) -> None:
        while self._bounded and len(self._items) >= self._size:
            self._writable.clear()
            await self._writable.wait()
        self._items.append(item)
        self._readable.set()

    async def get(self) -> T:
        while not self._items:
            self._readable.clear()
            await self._readable.wait()
        self._writable.set()
        return self._items.popleft()

    def unbound(self) -> None:
        self._bounded = False
        self._writable.set()


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
        self._delivered = 0
        #: Set by a 401 after refresh, a 403 or a token-provider failure: send nothing more.
        self.halt = Halt()
        #: The input failed, or a bug: stop taking ids, raise it once the in-flight ones end.
        self._abort: BaseException | None = None
        self._closed: ClientClosedError | None = None
        #: Workers waiting for the (async) input, and those of them `close()` interrupted.
        self._reading: set[asyncio.Task[object]] = set()
        self._interrupted: set[asyncio.Task[object]] = set()
        #: Called by `close()`, e.g. to unbound the outbox of `iter_cancel_orders`.
        self.on_close: Callable[[], None] | None = None

    async def run(self, owner: BulkCalls | None = None) -> None:
        """Run the workers until the input ends or the call must stop; then raise why."""
        if owner is not None:
            owner._pools.add(self)
        try:
            if self._concurrency:
                async with asyncio.TaskGroup() as group:
                    self._group = group
                    self._spawn()
        finally:
            if owner is not None:
                owner._pools.discard(self)
        if self._abort is not None:
            raise self._abort
        if self._closed is not None:
            raise ClientClosedError(f"{self._closed.args[0]}: the bulk cancel stopped")
        if self._delivered != self._ids.taken:
            # Every path above gives each id taken its outcome; never return with fewer.
            raise RuntimeError(
                f"bug: {self._ids.taken} ids taken, {self._delivered} outcomes delivered"
            )

    def close(self) -> None:
        """The client is closing: take no more ids; interrupt a wait for the input."""
        if self._closed is None:
            self._closed = ClientClosedError("the client was closed")
        if self.on_close is not None:
            self.on_close()
        for worker in self._reading - self._interrupted:
            self._interrupted.add(worker)
            worker.cancel()

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
                item = take_now() if take_now else await self._read(ids)
            except asyncio.CancelledError as exc:
                if self._was_interrupted():
                    return  # `close()` stopped the wait: no id was taken
                if _being_cancelled():
                    raise  # the call is being cancelled
                self._abort = self._abort or exc  # the caller's input raised it
                return
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
            self._delivered += 1
            done = self._sink(index, outcome)
            if done is not None:
                await done

    async def _read(self, ids: DistinctIds) -> tuple[int, str] | None:
        """The next id of an async input; `close()` may interrupt the wait."""
        worker = asyncio.current_task()
        assert worker is not None
        self._reading.add(worker)
        try:
            return await ids.take()
        finally:
            self._reading.discard(worker)

    def _was_interrupted(self) -> bool:
        """After a `CancelledError`: True when `close()` caused it (it is then taken back)."""
        worker = asyncio.current_task()
        if worker not in self._interrupted:
            return False
        self._interrupted.discard(worker)
        assert worker is not None
        return worker.uncancel() == 0  # else the call is being cancelled too

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
            error = lighten(exc)
            if isinstance(error, ClientClosedError):
                self._closed = error
            elif is_fatal(error) and self.halt.error is None:
                self.halt.error = error
            return CancelOutcome(order_id, error=error, attempts=getattr(error, "attempts", 0))
        except asyncio.CancelledError:
            if _being_cancelled():
                raise
            # Raised inside the call while nothing cancelled it: the request may have left.
            stray = FrontOfficeError(
                "the cancel was interrupted by a CancelledError nothing asked for; the order "
                "may still be live"
            )
            return CancelOutcome(order_id, error=stray, attempts=0)
        return CancelOutcome(order_id, order=record, attempts=attempts)


def is_fatal(error: FrontOfficeError) -> bool:
    """Whether the next request would fail the same way (a 401 the refresh did not cure, a
    403, a failing token provider): a call that met it sends nothing more."""
    return isinstance(error, _FATAL)


def _being_cancelled() -> bool:
    """Whether the current task has a cancellation pending (its `CancelledError` is then a
    real request to stop, not one that some code raised on its own)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
