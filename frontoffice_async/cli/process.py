"""The `frontoffice` command as a process: signals, a blocking read of stdin, stdout's end.

SIGINT (Ctrl-C) and SIGTERM are handled in the event loop, never in the middle of a write.
The loop must stay free to handle them, so stdin is read in a daemon thread. Once the command
is over, both signals are held (blocked), so that a late one can neither kill the process
with the default handler the loop restores when it closes, nor print a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_OUTPUT",
    "OutputError",
    "divert_signals",
    "hold_signals",
    "in_thread",
    "run_main",
    "silence_stdout",
    "tell",
]

EXIT_BROKEN_PIPE = 128 + 13  # 141, as a shell reports a process that SIGPIPE stopped
EXIT_OUTPUT = 74  # EX_IOERR of sysexits.h: the output could not be written

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
T = TypeVar("T")


class OutputError(Exception):
    """stdout cannot be written (closed, full, an I/O error): one `error:` line, exit 74."""


def tell(message: str, *, end: str = "\n") -> None:
    """Write to stderr, if there is one that works: a note must never fail the command."""
    with contextlib.suppress(AttributeError, OSError, ValueError):  # None, closed, broken
        sys.stderr.write(message + end)
        sys.stderr.flush()


def silence_stdout() -> None:
    """Point stdout at devnull, so that the interpreter's last flush at exit cannot fail again
    (the recipe of the Python docs, signal module, "Note on SIGPIPE")."""
    if sys.stdout is None:
        return
    with contextlib.suppress(OSError, ValueError):
        target = sys.stdout.fileno()  # raises for a stdout without a descriptor
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, target)
        finally:
            os.close(devnull)


def hold_signals() -> None:
    """Block SIGINT and SIGTERM in this thread: they stay pending, then die with the process.

    For the end of a process only: the command has reported, and nothing may cut that short.
    """
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        return
    for signum in _SIGNALS:  # Windows: no masks (and no loop handlers to restore them)
        with contextlib.suppress(OSError, ValueError):
            signal.signal(signum, signal.SIG_IGN)


async def in_thread(function: Callable[[], T]) -> T:
    """`function()` (a blocking read of stdin) in a daemon thread, awaited.

    The loop stays free to handle SIGINT and SIGTERM, which cancel the await at once. The
    thread is left blocked: being a daemon (unlike the default executor's threads, which
    `asyncio.run` waits for), it ends with the process.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: Exception | None) -> None:
        if future.done():  # cancelled meanwhile
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def work() -> None:
        if hasattr(signal, "pthread_sigmask"):
            # The signals are the main thread's to handle; blocked here, they reach it.
            signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            result, error = function(), None
        except Exception as exc:  # handed over to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name="frontoffice-stdin", daemon=True).start()
    return await future


# --- signals ------------------------------------------------------------------------------------

_INTERRUPTS: contextvars.ContextVar[_Interrupts | None] = contextvars.ContextVar(
    "frontoffice_cli_interrupts", default=None
)


def run_main(command: Callable[[], Coroutine[Any, Any, int]], *, process: bool = False) -> int:
    """Run `command()` in a new event loop and return its exit code, signals and pipes included.

    The first SIGINT (Ctrl-C) or SIGTERM cancels the command, which reports what it did and
    ends with 128 + the signal's number (130, 143); later ones only say it is stopping, so
    the report is never cut. A closed stdout (`| head`) ends quietly with 141. `process`: this
    is the whole process (the console script), so the signals are held once the command ends.
    """
    interrupts = _Interrupts(hold_at_end=process)
    try:
        return asyncio.run(interrupts.run(command))
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 128 + (interrupts.signum or signal.SIGINT)
    except BrokenPipeError:
        silence_stdout()
        return EXIT_BROKEN_PIPE


@contextlib.contextmanager
def divert_signals(callback: Callable[[], object]) -> Iterator[None]:
    """Within the block, the first SIGINT/SIGTERM calls `callback` instead of cancelling the
    command (`simulate` uses it to stop serving and close cleanly). Does nothing unless the
    command runs under `run_main`."""
    interrupts = _INTERRUPTS.get()
    if interrupts is None:
        yield
        return
    interrupts.divert = callback
    try:
        yield
    finally:
        interrupts.divert = None


class _Interrupts:
    """SIGINT and SIGTERM, handled in the event loop: never in the middle of a write."""

    def __init__(self, *, hold_at_end: bool) -> None:
        self.signum: int | None = None
        self.divert: Callable[[], object] | None = None
        self._hold_at_end = hold_at_end
        self._task: asyncio.Task[Any] | None = None
        self._told = False

    async def run(self, command: Callable[[], Coroutine[Any, Any, int]]) -> int:
        self._task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {}
        wakeup_fd = -1
        with contextlib.suppress(ValueError):  # not the main thread: no wakeup fd to keep
            wakeup_fd = signal.set_wakeup_fd(-1)  # reading it means setting it: put it back
            signal.set_wakeup_fd(wakeup_fd)
        for signum in _SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                # Not on Windows' loop, nor outside the main thread: the defaults remain.
                handler = signal.getsignal(signum)
                loop.add_signal_handler(signum, self._on_signal, signum)
                previous[signum] = handler
        _INTERRUPTS.set(self)
        try:
            return await command()
        finally:
            if self._hold_at_end:
                # Reported: from here the process only winds down. When the loop closes it
                # restores the default handlers, and SIGTERM's would kill the process (-15).
                hold_signals()
            else:
                # Called from a program: give it back the handlers it had.
                for number, handler in previous.items():
                    loop.remove_signal_handler(number)
                    with contextlib.suppress(TypeError, ValueError):  # None: set outside Python
                        signal.signal(number, handler)
                if previous:
                    with contextlib.suppress(ValueError):
                        signal.set_wakeup_fd(wakeup_fd)

    def _on_signal(self, signum: int) -> None:
        if self.signum is None:
            self.signum = signum
            if self.divert is not None:
                self.divert()
            elif self._task is not None:
                self._task.cancel()
        elif not self._told:
            self._told = True
            tell("\nstopping: finishing the report")
