"""The `frontoffice` command: cancel orders by id or all at once, list accounts, run a demo.

`main` is the console script; `run` is the same command as a coroutine, for tests and embedding.
Every command calls the library's public API; cancel-all is `cancel_all_orders`, nothing else.

This module imports next to nothing, and `main` loads the rest inside its `try`: a Ctrl-C at
the very start of the process (before the event loop handles signals) ends it quietly too.
"""

from __future__ import annotations

TYPE_CHECKING = False  # as typing's, without importing typing (mypy knows the idiom)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

__all__ = ["console", "main", "make_parser", "run"]


class _Terminated(BaseException):
    """SIGTERM before the event loop handles it: nothing has started, the process just ends."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated


def console() -> int:
    """The `frontoffice` console script and `python -m frontoffice_async`: `main` for a
    process that ends with the command, so late signals are held until it exits."""
    return main(process=True)


def main(argv: Sequence[str] | None = None, *, process: bool = False) -> int:
    """Run the command line `argv` (default: `sys.argv[1:]`) and return the exit code.

    Exit codes: 0 nothing failed (and cancel-all verified), 1 something failed or is still
    open, 2 usage or configuration error, 74 the output could not be written, 130 Ctrl-C,
    143 SIGTERM, 141 stdout closed early. Called from a program of yours (`process=False`),
    it leaves your signal handlers as they were; `process=True` is for a process that ends
    with the command (`console`). An interrupted prompt or `--from-file -` leaves its stdin
    reader thread blocked, and that thread takes the next line of stdin (docs/cli.md).
    """
    import signal  # noqa: PLC0415 - only what the first instant needs

    try:
        if process:
            signal.signal(signal.SIGTERM, _terminated)  # until the event loop takes over
        from .process import run_main  # noqa: PLC0415 - asyncio: inside the `try`

        return run_main(lambda: run(argv), process=process)
    except KeyboardInterrupt:  # Ctrl-C before the event loop handled it
        return 128 + signal.SIGINT
    except _Terminated:
        return 128 + signal.SIGTERM
    finally:
        if process:
            # The process is about to exit: a late signal must neither print a traceback nor
            # kill it (the loop, closing, restored the default handlers).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)


async def run(argv: Sequence[str] | None = None) -> int:
    """The command as a coroutine: parse `argv`, do the work, return the exit code.

    Cancelling it (Ctrl-C under `main`) makes a bulk command report what was done so far
    (`"interrupted": true` with --json) before `CancelledError` propagates.
    """
    from .commands import run_command  # noqa: PLC0415 - see the module's docstring

    return await run_command(argv)


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of `frontoffice` and its subcommands."""
    from .commands import make_parser as make  # noqa: PLC0415

    return make()
