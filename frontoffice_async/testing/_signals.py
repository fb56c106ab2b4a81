"""Catching SIGINT/SIGTERM for the time of a call, and putting the old handlers back."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = ["caught_signals"]


@contextlib.contextmanager
def caught_signals(
    signals: Iterable[int], on_signal: Callable[[signal.Signals], None]
) -> Iterator[list[signal.Signals]]:
    """Call `on_signal(sig)` in the running loop when one of `signals` arrives.

    Yields the signals actually caught: none on Windows (no `add_signal_handler`) or outside
    the main thread, where only cancellation stops the caller. On exit the handlers that were
    in place before (e.g. `asyncio.run`'s Ctrl-C handler) are restored.
    """
    loop = asyncio.get_running_loop()
    installed: list[tuple[signal.Signals, Any]] = []
    try:
        for number in signals:
            sig = signal.Signals(number)
            previous = signal.getsignal(sig)
            try:
                loop.add_signal_handler(sig, on_signal, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                continue
            installed.append((sig, previous))
        yield [sig for sig, _ in installed]
    finally:
        for sig, previous in reversed(installed):
            loop.remove_signal_handler(sig)
            # None: the handler was not installed from Python; leave asyncio's default then.
            if previous is not None:
                signal.signal(sig, previous)
