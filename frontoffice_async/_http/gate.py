"""The client's gate: whether requests may still leave, and how many are on the wire.

`close()` shuts the gate, waits for the requests already sent (each bounded by its
per-attempt limit), then closes the session; no new request leaves once it is shut.
"""

from __future__ import annotations

import asyncio

__all__ = ["Gate", "Halt", "Halted"]


class Gate:
    """Shared by a client and its views. No await inside but `wait_idle`."""

    __slots__ = ("_idle", "closing", "in_flight")

    def __init__(self) -> None:
        self.closing = False
        """True once the client began to close: no new request may leave."""
        self.in_flight = 0
        """Requests sent whose answer (body included) is not read yet."""
        self._idle: asyncio.Event | None = None

    def enter(self) -> None:
        """A request is about to be sent."""
        self.in_flight += 1

    def leave(self) -> None:
        """A request's answer was read, or it failed."""
        self.in_flight -= 1
        if not self.in_flight and self._idle is not None:
            self._idle.set()

    async def shut(self) -> None:
        """Let no new request leave, and wait until none is on the wire."""
        self.closing = True
        if self.in_flight:
            self._idle = asyncio.Event()
            await self._idle.wait()


class Halt:
    """One bulk call's stop signal: once `error` is set (a 401 the refresh did not cure, a
    403, a failing token provider), the call's requests stop before they leave, even those
    already waiting for a rate-limiter slot, a token or a backoff."""

    __slots__ = ("error",)

    def __init__(self) -> None:
        self.error: Exception | None = None


class Halted(Exception):
    """Raised instead of sending when the call's `Halt` is set; `attempts` were sent before."""

    def __init__(self, attempts: int) -> None:
        super().__init__(attempts)
        self.attempts = attempts
