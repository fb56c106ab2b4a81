"""Run every Python example of the documentation, so the docs cannot drift from the code.

Conventions for docs/*.md:

- A fenced block whose info string starts with `python` is executed. Fence a block that must
  not run as `text`, `pycon`, `console` (or any other language), or put the HTML comment
  `<!-- no-test -->` on the line just before its fence (e.g. a recipe included from
  tests/recipes/, which tests/test_recipes.py runs).
- Each block runs in a fresh namespace against a fresh `FrontOfficeSimulator`, with these names
  bound: `BASE_URL` (`simulator.url`), `TOKEN` (`simulator.token`), `ACCOUNT_ID` (the first
  account), `ORDER_ID` (one open order), `ORDER_IDS` (ten more open orders), `OFFLINE_TOKEN`
  (an offline token the simulator exchanges for access tokens) and `simulator` itself.
  `__name__` is `"__docs__"`, so an `if __name__ == "__main__":` tail does not run.
- A block may use top-level `await`, `async with` and `async for`: it is compiled with
  `ast.PyCF_ALLOW_TOP_LEVEL_AWAIT` and awaited in the test's event loop. A block without a
  top-level `await` runs in a worker thread, so a script ending in `asyncio.run(main())` works.
- A block preceded by `<!-- continue -->` continues the block before it on the same page: its
  test runs that block first, in the same namespace (a recipe shown in two parts).

Tests are parametrized by (page, block number), counted from 1 over the executed blocks of a
page, so a failure names the block: `test_doc_block[bulk.md#3]`.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async.testing import FrontOfficeSimulator

DOCS = Path(__file__).resolve().parent.parent / "docs"
NO_TEST = "<!-- no-test -->"
CONTINUE = "<!-- continue -->"
OFFLINE_TOKEN = "offline-0123456789abcdef"

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    #: 1-based number among the page's executed blocks (0 for blocks that are not run).
    number: int
    #: 1-based line of the opening fence.
    line: int
    info: str
    source: str
    #: The HTML comment on the line before the fence, if any.
    marker: str | None
    #: The executed block this one continues (`<!-- continue -->`), if any.
    previous: Block | None = None

    @property
    def id(self) -> str:
        return f"{self.page}#{self.number}"

    @property
    def executed(self) -> bool:
        return self.info.split(" ", 1)[0].lower() == "python" and self.marker != NO_TEST


def parse_blocks(page: Path) -> list[Block]:
    """Every fenced block of `page`, in order, with executed ones numbered from 1."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    number = 0
    last_executed: Block | None = None
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"].strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (
            lines[i].strip().startswith(fence[0] * len(fence))
            and lines[i].strip().strip(fence[0]) == ""
        ):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        i += 1  # the closing fence
        marker = _marker_before(lines, start)
        block = Block(
            page=page.name,
            number=0,
            line=start + 1,
            info=info,
            source=textwrap.dedent("\n".join(body)) + "\n",
            marker=marker,
        )
        if block.executed:
            number += 1
            previous = last_executed if marker == CONTINUE else None
            if marker == CONTINUE and previous is None:
                raise ValueError(f"{page.name}:{start + 1}: {CONTINUE} with no block before it")
            block = Block(
                page=block.page,
                number=number,
                line=block.line,
                info=block.info,
                source=block.source,
                marker=marker,
                previous=previous,
            )
            last_executed = block
        blocks.append(block)
    return blocks


def _marker_before(lines: list[str], index: int) -> str | None:
    """The HTML comment on the nearest non-blank line above line `index`, if any."""
    for j in range(index - 1, -1, -1):
        text = lines[j].strip()
        if text:
            return text if text.startswith("<!--") and text.endswith("-->") else None
    return None


def all_blocks() -> list[Block]:
    return [block for page in sorted(DOCS.glob("*.md")) for block in parse_blocks(page)]


EXECUTED = [block for block in all_blocks() if block.executed]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what an example does to logging (`basicConfig`, levels, handlers)."""
    loggers = [logging.getLogger(), logging.getLogger("frontoffice_async")]
    saved = [(lg, lg.level, list(lg.handlers), lg.propagate) for lg in loggers]
    yield
    for lg, level, handlers, propagate in saved:
        for handler in lg.handlers:
            if handler not in handlers:
                handler.close()
        lg.setLevel(level)
        lg.handlers[:] = handlers
        lg.propagate = propagate


async def run_block(block: Block, namespace: dict[str, Any]) -> None:
    """Execute one block (after the block it continues) in `namespace`."""
    if block.previous is not None:
        await run_block(block.previous, namespace)
    # Pad with blank lines so tracebacks show the line number in the Markdown page.
    source = "\n" * block.line + block.source
    filename = str(DOCS / block.page)
    code = compile(source, filename, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        result = eval(code, namespace)  # noqa: S307 -- our own documentation
        await result
    else:
        await asyncio.to_thread(exec, code, namespace)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("block", EXECUTED, ids=[block.id for block in EXECUTED])
async def test_doc_block(block: Block) -> None:
    async with FrontOfficeSimulator(offline_token=OFFLINE_TOKEN) as simulator:
        namespace: dict[str, Any] = {
            "__name__": "__docs__",
            "BASE_URL": simulator.url,
            "TOKEN": simulator.token,
            "ACCOUNT_ID": simulator.account_ids[0],
            "ORDER_ID": simulator.add_orders(1)[0],
            "ORDER_IDS": simulator.add_orders(10),
            "OFFLINE_TOKEN": OFFLINE_TOKEN,
            "simulator": simulator,
        }
        await run_block(block, namespace)


def test_docs_have_examples() -> None:
    """The harness finds the pages' examples (a broken parser would pass vacuously)."""
    pages = {block.page for block in EXECUTED}
    assert {"quickstart.md", "cancelling.md", "bulk.md", "retries.md"} <= pages
    assert len(EXECUTED) >= 20


def test_markers_precede_python_blocks() -> None:
    """A `no-test`/`continue` marker sits right above a Python block, or it is a typo."""
    for block in all_blocks():
        if block.marker in (NO_TEST, CONTINUE):
            assert block.info.split(" ", 1)[0].lower() == "python", (
                f"{block.page}:{block.line}: {block.marker} above a {block.info!r} block"
            )
