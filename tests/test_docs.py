"""Run every Python example of the documentation and check what it prints, so the docs cannot
drift from the code; build the site strictly, as `make docs` does.

Conventions for docs/*.md:

- A fenced block whose info string starts with `python` is executed. Fence a block that must
  not run as `text`, `pycon`, `console` (or any other language), or put the HTML comment
  `<!-- no-test -->` on the line just before its fence.
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
- **Printed output is checked.** A `print(...)` whose (last) line ends with a comment states
  what it prints: `print(result.not_found)  # ['no-such-order']`. The whole comment is the
  expected text, compared with what the call really printed (its arguments joined by `sep`,
  without `end`); in it, `...` stands for any text, for what varies between runs (ports, URLs,
  ids, timings): `print(client)  # <FrontOfficeClient http://127.0.0.1:... not started>`
  (keep it apart from a literal dot: in `0....s` the wildcard is the first three dots). A
  print that runs several times (in a loop) must match every time. A note for the reader goes
  on a comment line of its own, never after the expected output. A print that runs must carry
  an expected-output comment (`# ...` alone says "anything": use it rarely); a print that the
  simulator never reaches (an `except` branch not taken) must carry none, since nothing could
  check it.
- A block preceded by `<!-- same-as: PATH -->` shows the file PATH (relative to the
  repository), or with `<!-- same-as: PATH:NAME -->` the part of it between the lines
  `# docs: start NAME` and `# docs: end NAME`. Another test runs that file (the recipes of
  docs/web.md: tests/recipes/ and tests/test_recipes.py), so the block is not executed here;
  `test_shown_code_is_the_file` checks that it is exactly that text, so a reader of the raw
  Markdown sees the code that runs. After changing such a file, `python -m tests.test_docs`
  copies it into the pages.

Tests are parametrized by (page, block number), counted from 1 over the executed blocks of a
page, so a failure names the block: `test_doc_block[bulk.md#3]`.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import difflib
import inspect
import io
import json
import logging
import re
import shutil
import subprocess
import sys
import textwrap
import tokenize
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async import APITimeoutError, BulkCancelResult, CancelOutcome, Order
from frontoffice_async.testing import FrontOfficeSimulator

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NO_TEST = "<!-- no-test -->"
CONTINUE = "<!-- continue -->"
OFFLINE_TOKEN = "offline-0123456789abcdef"
#: In an expected-output comment: any text.
WILDCARD = "..."

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_SAME_AS = re.compile(r"^<!-- same-as: (?P<path>[\w./-]+?)(?::(?P<section>[\w-]+))? -->$")


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
    #: Lines of the page this block spans, closing fence included (0-based, end exclusive).
    span: tuple[int, int] = (0, 0)

    @property
    def id(self) -> str:
        return f"{self.page}#{self.number}"

    @property
    def is_python(self) -> bool:
        return self.info.split(" ", 1)[0].lower() == "python"

    @property
    def shows(self) -> re.Match[str] | None:
        """The `same-as` marker: the file (and section) this block shows."""
        return None if self.marker is None else _SAME_AS.match(self.marker)

    @property
    def executed(self) -> bool:
        return self.is_python and self.marker != NO_TEST and self.shows is None


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
            span=(start, i),
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
                span=block.span,
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
SHOWN = [block for block in all_blocks() if block.shows is not None]


# --- printed output -------------------------------------------------------------------------


@dataclass(frozen=True)
class PrintCall:
    """A `print(...)` call of a block, and the output its comment states (None: no comment)."""

    page: str
    #: 1-based page lines of the call's first and last line.
    first: int
    last: int
    expected: str | None


def print_calls(block: Block) -> list[PrintCall]:
    """The `print(...)` calls of `block` (and of the blocks it continues)."""
    earlier = [] if block.previous is None else print_calls(block.previous)
    comments = {
        token.start[0]: token.string[1:].strip()
        for token in tokenize.generate_tokens(io.StringIO(block.source).readline)
        if token.type == tokenize.COMMENT
    }
    calls = [
        PrintCall(
            page=block.page,
            first=block.line + node.lineno,
            last=block.line + (node.end_lineno or node.lineno),
            expected=comments.get(node.end_lineno or node.lineno),
        )
        for node in ast.walk(ast.parse(block.source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "print"
    ]
    return earlier + sorted(calls, key=lambda call: call.first)


def _is_print(func: ast.expr) -> bool:
    return isinstance(func, ast.Name) and func.id == "print"


def output_matches(expected: str, printed: str) -> bool:
    """Whether `printed` is `expected`, where each `...` of `expected` stands for any text."""
    pattern = ".*?".join(re.escape(part) for part in expected.split(WILDCARD))
    return re.fullmatch(pattern, printed, re.DOTALL) is not None


class PrintRecorder:
    """A `print` for the blocks' namespace: prints as usual, and keeps what each line of the
    page printed (calls from the library, e.g. `print` passed as a callback, are not kept)."""

    def __init__(self, filename: str) -> None:
        self._filename = filename
        self.printed: defaultdict[int, list[str]] = defaultdict(list)

    def __call__(self, *values: object, sep: str | None = " ", **kwargs: Any) -> None:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        if caller is not None and caller.f_code.co_filename == self._filename:
            text = (" " if sep is None else sep).join(str(value) for value in values)
            self.printed[caller.f_lineno].append(text)
        del frame, caller
        builtins.print(*values, sep=sep, **kwargs)

    def of(self, call: PrintCall) -> list[str]:
        """What `call` printed, each time it ran."""
        return [text for line in range(call.first, call.last + 1) for text in self.printed[line]]


def print_problems(calls: list[PrintCall], recorder: PrintRecorder) -> list[str]:
    """Where what the page says a print prints is not what it printed."""
    problems = []
    for call in calls:
        where = f"{call.page}:{call.last}"
        printed = recorder.of(call)
        if call.expected is None:
            if printed:
                problems.append(
                    f"{where}: printed {printed[0]!r} but states no expected output "
                    f"(end the line with `# {printed[0]}`, using `...` for what varies)"
                )
        elif not printed:
            problems.append(
                f"{where}: states `# {call.expected}` but never printed "
                "(a print the example does not reach must carry no expected output)"
            )
        else:
            problems.extend(
                f"{where}: states `# {call.expected}` but printed {text!r}"
                for text in printed
                if not output_matches(call.expected, text)
            )
    return problems


# --- running the blocks ---------------------------------------------------------------------


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


def page_filename(block: Block) -> str:
    """The file name a block's code is compiled under: its page, so tracebacks point there."""
    return str(DOCS / block.page)


async def run_block(block: Block, namespace: dict[str, Any]) -> None:
    """Execute one block (after the block it continues) in `namespace`."""
    if block.previous is not None:
        await run_block(block.previous, namespace)
    # Pad with blank lines so tracebacks show the line number in the Markdown page.
    source = "\n" * block.line + block.source
    code = compile(source, page_filename(block), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    if code.co_flags & inspect.CO_COROUTINE:
        result = eval(code, namespace)  # noqa: S307 -- our own documentation
        await result
    else:
        await asyncio.to_thread(exec, code, namespace)


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("block", EXECUTED, ids=[block.id for block in EXECUTED])
async def test_doc_block(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block runs against the simulator, in a directory of its own (an example may write
    a file), and prints what its comments say."""
    monkeypatch.chdir(tmp_path)
    recorder = PrintRecorder(page_filename(block))
    async with FrontOfficeSimulator(offline_token=OFFLINE_TOKEN) as simulator:
        namespace: dict[str, Any] = {
            "__name__": "__docs__",
            "print": recorder,
            "BASE_URL": simulator.url,
            "TOKEN": simulator.token,
            "ACCOUNT_ID": simulator.account_ids[0],
            "ORDER_ID": simulator.add_orders(1)[0],
            "ORDER_IDS": simulator.add_orders(10),
            "OFFLINE_TOKEN": OFFLINE_TOKEN,
            "simulator": simulator,
        }
        await run_block(block, namespace)
    problems = print_problems(print_calls(block), recorder)
    assert not problems, "\n".join(problems)


def test_docs_have_examples() -> None:
    """The harness finds the pages' examples (a broken parser would pass vacuously)."""
    pages = {block.page for block in EXECUTED}
    assert {"quickstart.md", "cancelling.md", "bulk.md", "retries.md"} <= pages
    assert len(EXECUTED) >= 20
    stated = [call for block in EXECUTED for call in print_calls(block) if call.expected]
    assert len(stated) >= 30


def test_markers_precede_python_blocks() -> None:
    """A `no-test`/`continue`/`same-as` marker sits right above a Python block, or it is a
    typo."""
    for block in all_blocks():
        if block.marker in (NO_TEST, CONTINUE) or block.shows is not None:
            assert block.is_python, (
                f"{block.page}:{block.line}: {block.marker} above a {block.info!r} block"
            )
        elif block.marker is not None and "same-as" in block.marker:
            raise AssertionError(f"{block.page}:{block.line}: malformed {block.marker}")


@pytest.mark.parametrize(
    ("expected", "printed", "matches"),
    [
        ("10", "10", True),
        ("10", "100", False),
        ("[]", "[]", True),
        ("<X http://127.0.0.1:... open>", "<X http://127.0.0.1:8765 open>", True),
        ("<X http://127.0.0.1:... open>", "<X http://127.0.0.1:8765 not started>", False),
        ("... cancelled", "3/10 01K2 cancelled", True),
        ("a...b...c", "abc", True),
        ("a...b...c", "acb", False),
        ("1.5 (...)", "1.5 (x)", True),
        ("1.5 (x)", "1.5 (y)", False),
        ("...", "anything\nat all", True),
        ("Cancelled", "Cancelled ", False),
    ],
)
def test_expected_output_matching(expected: str, printed: str, *, matches: bool) -> None:
    assert output_matches(expected, printed) is matches


async def test_a_stale_expected_output_fails(tmp_path: Path) -> None:
    """The check itself: a wrong, a missing and an unreached expected output are reported."""
    page = tmp_path / "page.md"
    page.write_text(
        textwrap.dedent(
            """\
            ```python
            for n in (1, 2):
                print(n * 10)  # 10
            print("open")  # not started
            print("no comment")
            if False:
                print("never")  # never
            print("ok", 1, sep="-")  # ok-1
            ```
            """
        ),
        encoding="utf-8",
    )
    [block] = parse_blocks(page)
    block = Block(block.page, 1, block.line, block.info, block.source, None)
    recorder = PrintRecorder(page_filename(block))
    await run_block(block, {"__name__": "__docs__", "print": recorder})
    assert print_problems(print_calls(block), recorder) == [
        "page.md:3: states `# 10` but printed '20'",
        "page.md:4: states `# not started` but printed 'open'",
        "page.md:5: printed 'no comment' but states no expected output "
        "(end the line with `# no comment`, using `...` for what varies)",
        "page.md:7: states `# never` but never printed "
        "(a print the example does not reach must carry no expected output)",
    ]


def test_the_cli_page_shows_the_json_documents_as_they_are() -> None:
    """docs/cli.md's `--json` documents have exactly the keys `as_dict()` gives, in order."""
    error = APITimeoutError("timed out", method="DELETE", url="http://host/x", attempts=1)
    result: BulkCancelResult[Order] = BulkCancelResult([CancelOutcome("x", error=error)])
    document = result.as_dict()
    shown = [
        json.loads(block.source)
        for block in parse_blocks(DOCS / "cli.md")
        if block.info == "json" and '"counts"' in block.source
    ]
    assert len(shown) == 2, "docs/cli.md: the JSON output and the failed-run document"
    full, failed = shown
    assert list(full) == list(document)
    assert list(full["outcomes"][-1]) == list(document["outcomes"][0])
    assert list(full["outcomes"][-1]["error"]) == list(document["outcomes"][0]["error"])
    assert list(failed) == [*document, "error"]


# --- code shown from files ------------------------------------------------------------------


def shown_text(block: Block) -> str:
    """The text the block's `same-as` marker names: a whole file, or its section."""
    shows = block.shows
    assert shows is not None
    path = ROOT / shows["path"]
    text = path.read_text(encoding="utf-8")
    name = shows["section"]
    if name is None:
        return text.strip("\n") + "\n"
    start, end = f"# docs: start {name}\n", f"# docs: end {name}\n"
    assert text.count(start) == 1, f"{shows['path']} has no single line `{start.strip()}`"
    assert text.count(end) == 1, f"{shows['path']} has no single line `{end.strip()}`"
    section = text.split(start, 1)[1].split(end, 1)[0]
    return textwrap.dedent(section).strip("\n") + "\n"


@pytest.mark.parametrize(
    "block", SHOWN, ids=[f"{block.page}:{block.line}:{block.marker}" for block in SHOWN]
)
def test_shown_code_is_the_file(block: Block) -> None:
    """A block marked `same-as` is exactly the code that the suite runs."""
    wanted = shown_text(block)
    shown = block.source.strip("\n") + "\n"
    if shown != wanted:
        diff = difflib.unified_diff(
            shown.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            f"docs/{block.page}:{block.line}",
            str(block.marker),
        )
        pytest.fail(
            f"docs/{block.page}:{block.line} is not {block.marker}; "
            "`python -m tests.test_docs` copies the file into the page:\n" + "".join(diff)
        )


def sync_shown_blocks(page: Path) -> bool:
    """Rewrite the `same-as` blocks of `page` from their files; True if anything changed."""
    lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
    changed = False
    for block in reversed(parse_blocks(page)):
        if block.shows is None:
            continue
        start, end = block.span
        indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
        body = [indent + line if line.strip() else line for line in shown_text(block).splitlines()]
        new = [lines[start], *(line + "\n" for line in body), lines[end - 1]]
        if lines[start:end] != new:
            lines[start:end] = new
            changed = True
    if changed:
        page.write_text("".join(lines), encoding="utf-8")
    return changed


# --- the site -------------------------------------------------------------------------------

#: What `make docs` runs (and the README tells readers to run).
MAKE_DOCS = "$(BIN)/mkdocs build --strict --site-dir site"


def mkdocs_build(*args: str, cwd: Path = ROOT) -> tuple[int, str]:
    """`mkdocs build --strict *args` in `cwd` (the repository): exit code and output."""
    done = subprocess.run(  # noqa: S603 -- our own arguments
        [sys.executable, "-m", "mkdocs", "build", "--strict", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def warnings_in(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(("WARNING", "ERROR"))]


def test_make_docs_builds_the_site_strictly(tmp_path: Path) -> None:
    """`make docs`, the README's command, succeeds: the strict build passes with no warning.

    This is the docs build of `make test` (pytest keeps its output until it fails).
    """
    recipe = (ROOT / "Makefile").read_text(encoding="utf-8").split("\ndocs:", 1)[1]
    assert f"\t{MAKE_DOCS}\n" in recipe.split("\n\n", 1)[0], "`make docs` changed: update here"
    code, output = mkdocs_build("--site-dir", str(tmp_path / "site"))
    assert code == 0, output
    assert warnings_in(output) == [], output
    assert (tmp_path / "site" / "web" / "index.html").is_file()


def test_a_broken_anchor_fails_the_strict_build(tmp_path: Path) -> None:
    """The strict build can fail: a copy of the project's docs and mkdocs.yml (whose
    `validation` settings make a broken anchor a warning), with one broken anchor."""
    for name in ("mkdocs.yml", "CHANGELOG.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(DOCS, tmp_path / "docs")
    (tmp_path / "frontoffice_async").symlink_to(ROOT / "frontoffice_async")
    web = tmp_path / "docs" / "web.md"
    web.write_text(
        web.read_text(encoding="utf-8") + "\nSee [Bulk](bulk.md#no-such-heading).\n",
        encoding="utf-8",
    )
    code, output = mkdocs_build("--site-dir", str(tmp_path / "site"), cwd=tmp_path)
    assert code == 1, output
    assert warnings_in(output) == [
        "WARNING -  Doc file 'web.md' contains a link 'bulk.md#no-such-heading', but the doc "
        "'bulk.md' does not contain an anchor '#no-such-heading'."
    ], output


if __name__ == "__main__":
    # Copy the files that `same-as` blocks show into the pages.
    for path in sorted(DOCS.glob("*.md")):
        if sync_shown_blocks(path):
            sys.stdout.write(f"updated {path.relative_to(ROOT)}\n")
