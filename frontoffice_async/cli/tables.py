"""Tables that fit the line: columns are dropped or abbreviated, a row is never wrapped.

A trader reads `cancel-all --dry-run` in whatever terminal is at hand, often 80 columns: a
row folded onto three lines makes thousands of orders unreadable. Each table says which
columns may go, or be abbreviated, and in what order (`Drop`, `Shrink`); `layout` applies
those steps until a row fits. Plain text and rich draw the same layout, so both fit.
"""

from __future__ import annotations

import os
import textwrap
import unicodedata
from collections.abc import Callable, Sequence
from typing import NamedTuple, TextIO

__all__ = [
    "DEFAULT_WIDTH",
    "Drop",
    "Shrink",
    "Step",
    "cells",
    "clip",
    "layout",
    "line_width",
    "pad",
    "wrap",
]

#: The width of a line when the output is not a terminal (a pipe, a file) and `COLUMNS` is
#: not set: what a terminal has by default, so that `| less` or a saved report fits too.
DEFAULT_WIDTH = 80


class Drop(NamedTuple):
    """Leave the column out."""

    column: str


class Shrink(NamedTuple):
    """Abbreviate the column's cells (`…` at the end), down to `least` cells at most."""

    column: str
    least: int


Step = Drop | Shrink


def line_width(out: TextIO) -> int:
    """Columns a line may take: `COLUMNS` if set, else the terminal's, else `DEFAULT_WIDTH`."""
    columns = os.environ.get("COLUMNS", "").strip()
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    try:
        if out.isatty():
            return os.get_terminal_size(out.fileno()).columns or DEFAULT_WIDTH
    except (AttributeError, OSError, ValueError):  # no descriptor, closed, not a terminal
        pass
    return DEFAULT_WIDTH


def cells(text: str) -> int:
    """Terminal cells `text` takes: wide (East Asian) characters take two, combining none."""
    if text.isascii():
        return len(text)
    return sum(_cell(c) for c in text)


def _cell(char: str) -> int:
    if unicodedata.combining(char):
        return 0
    return 2 if unicodedata.east_asian_width(char) in {"W", "F"} else 1


def clip(text: str, width: int, mark: str = "…") -> str:
    """`text` in at most `width` cells, ending in `mark` when cut."""
    if cells(text) <= width:
        return text
    room = max(width - cells(mark), 0)
    kept: list[str] = []
    used = 0
    for char in text:
        used += _cell(char)
        if used > room:
            break
        kept.append(char)
    return "".join(kept) + mark


def pad(text: str, width: int, *, right: bool) -> str:
    """`text` padded with spaces to `width` cells, on the left when `right`-aligned."""
    spaces = " " * max(width - cells(text), 0)
    return spaces + text if right else text + spaces


def wrap(text: str, width: int) -> list[str]:
    """`text` (a title, a sentence) in lines of at most `width` cells, cut between words."""
    if cells(text) <= width:
        return [text]
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False) or [""]


def layout(
    names: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int,
    overhead: Callable[[int], int],
    steps: Sequence[Step] = (),
) -> tuple[list[int], list[int]]:
    """The columns to show (indexes) and every column's width, so that a row fits `width`.

    `overhead(n)`: the cells a row of `n` columns takes besides their content (indent,
    gaps, borders). `steps` are applied in order, each only while a row is still too wide;
    a `Shrink` takes only what is needed. When every step is spent, the row is as narrow as
    the table allows (an id is never cut).
    """
    widths = [max([cells(n), *(cells(row[i]) for row in rows)]) for i, n in enumerate(names)]
    shown = list(range(len(names)))

    def excess() -> int:
        return sum(widths[i] for i in shown) + overhead(len(shown)) - width

    for step in steps:
        if excess() <= 0:
            break
        index = names.index(step.column)
        if index not in shown:
            continue
        if isinstance(step, Drop):
            shown.remove(index)
        else:
            widths[index] = min(widths[index], max(step.least, widths[index] - excess()))
    return shown, widths
