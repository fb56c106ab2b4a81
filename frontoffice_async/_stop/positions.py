"""Flatten's positions: what one account's closes did over its rounds, and one round's closes,
started by the OpenPositions snapshot's items as they arrive.

A close needs no settled snapshot, only something to close. Without a market filter, the
first item that shows any open position (readable or not: the bulk close names no id) fires
the round's one bulk close; with a filter, each matching position is closed as an item brings
it, once per round. The settle window then delays only the verdict, which belongs to the next
round's snapshots: a round that closed something is always followed by another.

A close is a POST, which is not idempotent: it is resent within a round only when it surely
never reached the platform (the retry policy's rule); after an ambiguous loss, the next
round's snapshot decides.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from .._http.answers import lighten
from .._hub.protocol import OPEN_POSITIONS
from .._hub.snapshot import Merge
from ..bulk import PositionsResult
from ..errors import ClientClosedError, FrontOfficeError
from ..models import OpenPosition
from .cancel_all import Feed, Selection, select
from .ops import AccountOps
from .pool import is_fatal

__all__ = ["Closer", "Closes"]


class Closes:
    """What the closes of one account did, over all its rounds."""

    def __init__(self) -> None:
        self.accepted: list[str] = []
        self.errors: list[FrontOfficeError] = []
        self.requests = 0
        self.rounds = 0
        #: The first error after which any close would fail the same way (a 403), or the
        #: client's close: the account stops.
        self.stopped_by: FrontOfficeError | None = None

    def failed(self, error: FrontOfficeError) -> None:
        """Keep a failed close: the next round's snapshot decides whether it closed."""
        light = lighten(error)
        self.errors.append(light)
        if is_fatal(error) or isinstance(error, ClientClosedError):  # as the pools say it
            self.stopped_by = self.stopped_by or light

    def result(self, last: Selection | None, *, checked: bool, stopped: bool) -> PositionsResult:
        """What the closes did; `last` is the last positions snapshot's selection (None: none
        was read), `stopped` whether an error stopped the account."""
        remaining: list[OpenPosition] = []
        unreadable: list[str] = []
        if last is not None:
            remaining, unreadable = last.typed(OpenPosition)
        return PositionsResult(
            accepted=tuple(dict.fromkeys(self.accepted)),
            remaining=remaining,
            unreadable=unreadable,
            errors=self.errors,
            requests=self.requests,
            rounds=self.rounds,
            checked=checked,
            verified=checked
            and last is not None
            and not last.ids
            and not unreadable
            and not stopped,
        )


class Closer:
    """One acting round's closes: `on_item`, the positions snapshot's callback, starts them as
    the items come; `stop` ends the intake when the snapshot is over (or abandoned); `work` is
    what still runs, which the round awaits (or cancels, when its caller is cancelled)."""

    __slots__ = ("_closes", "_feed", "_market_id", "_open", "_ops", "work")

    def __init__(self, ops: AccountOps, market_id: str | None, closes: Closes) -> None:
        self._ops = ops
        self._market_id = market_id
        self._closes = closes
        self._feed: Feed | None = None
        self._open = True
        self.work: asyncio.Future[None] | None = None

    @property
    def fired(self) -> bool:
        """Whether this round sent (or is sending) a close."""
        return self.work is not None

    def on_item(self, records: list[Any]) -> None:
        """Close what one item of the snapshot shows open."""
        if not self._open:
            return  # the round is past its snapshot: its closes are all started
        records = _still_open(records)
        if self._market_id is None:
            if records and self.work is None:  # one bulk close a round: it closes them all
                self._start(self._close_all())
            return
        ids = select(records, self._market_id, None, key="positionId").ids
        if not ids:
            return
        if self._feed is None:
            self._feed = Feed((), None, None)  # each id once this round
            self._start(self._close_each(self._feed))
        self._feed.extend(ids)

    def stop(self) -> None:
        """No more items: what was fed still goes out."""
        self._open = False
        if self._feed is not None:
            self._feed.close()

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        self._closes.rounds += 1
        name = f"frontoffice-close-{self._ops.account_id}"
        self.work = asyncio.get_running_loop().create_task(work, name=name)

    async def _close_all(self) -> None:
        closes = self._closes
        try:
            ack, attempts = await self._ops.close_all()
        except FrontOfficeError as error:
            closes.requests += getattr(error, "attempts", 1)
            closes.failed(error)
            return
        closes.requests += attempts
        closes.accepted.extend(ack.position_ids)

    async def _close_each(self, feed: Feed) -> None:
        closes = self._closes
        result = await self._ops.close_each(feed)
        closes.requests += result.attempts
        closes.accepted.extend(o.order_id for o in result if o.ok)
        for outcome in result.failed:
            assert outcome.error is not None
            closes.failed(outcome.error)
        closes.stopped_by = closes.stopped_by or result.stopped_by


def _still_open(records: list[Any]) -> list[Any]:
    """The records of one item, less those that say their position closed (the snapshot's own
    rule: a record without a readable id stays, as something that may be open)."""
    merge = Merge(OPEN_POSITIONS)
    merge.add(records)
    return merge.records()
