"""The progress bar of bulk work: drawn by rich on stderr, only when stderr is a terminal."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from . import output

if TYPE_CHECKING:
    from frontoffice_async import CancelOutcome

__all__ = ["ProgressBar", "progress_bar", "show_progress"]


def show_progress(args: argparse.Namespace) -> bool:
    """Draw a progress bar: only on a terminal, never with --json or --no-progress."""
    return not args.json and not args.no_progress and output.is_terminal(sys.stderr)


def progress_bar(args: argparse.Namespace) -> ProgressBar | None:
    """A progress bar on stderr if one should and can be drawn."""
    return ProgressBar() if show_progress(args) and output.have_rich() else None


class ProgressBar:
    """A rich progress bar on stderr: ids dealt with, failures so far, elapsed time."""

    def __init__(self) -> None:
        from rich.console import Console  # noqa: PLC0415
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=Console(file=sys.stderr),
        )
        self._task: Any = None
        self._total: int | None = None
        self._done = 0
        self._failed = 0

    def start(self, total: int | None, description: str = "cancelling") -> None:
        """Show the bar for `total` outcomes (None: not known in advance)."""
        self._total = total
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, failed=0)

    def advance(self, outcome: CancelOutcome[Any]) -> None:
        """One more outcome (the `on_each` of a `BulkRun`)."""
        if self._task is None:
            return
        self._done += 1
        self._failed += outcome.failed
        if self._total is not None and self._done > self._total:
            self._total = self._done  # cancel-all's later rounds add orders
        self._progress.update(
            self._task, completed=self._done, total=self._total, failed=self._failed
        )

    def stop(self) -> None:
        """Stop drawing (the bar stays at its last state); safe to call twice."""
        if self._task is not None:
            self._task = None
            self._progress.stop()
