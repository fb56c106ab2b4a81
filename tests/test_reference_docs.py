"""The API reference cannot drift: every public name has its own entry in docs/reference.md,
and every entry is a public name (the page says names it does not list are private)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import frontoffice_async
import frontoffice_async.testing

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
#: A mkdocstrings entry: `::: dotted.path` alone on its line.
_ENTRY = re.compile(r"^::: (?P<path>[\w.]+)[ \t]*$", re.MULTILINE)
#: Entries for modules as a whole (their docstrings), not for a name.
_MODULE_ENTRIES = {"frontoffice_async.testing", "frontoffice_async.testing.pytest_plugin"}

PUBLIC = [f"frontoffice_async.{name}" for name in frontoffice_async.__all__] + [
    f"frontoffice_async.testing.{name}" for name in frontoffice_async.testing.__all__
]


def entries() -> list[str]:
    return [match["path"] for match in _ENTRY.finditer(REFERENCE.read_text(encoding="utf-8"))]


def test_the_reference_has_entries() -> None:
    """The pattern finds the page's entries (a broken one would pass the tests below)."""
    assert len(entries()) >= 40
    assert "frontoffice_async.FrontOfficeClient" in entries()


@pytest.mark.parametrize("path", PUBLIC)
def test_every_public_name_has_an_entry(path: str) -> None:
    assert path in entries(), f"docs/reference.md has no `::: {path}`"


def test_every_entry_is_a_public_name_listed_once() -> None:
    listed = [path for path in entries() if path not in _MODULE_ENTRIES]
    assert sorted(set(listed) - set(PUBLIC)) == []
    assert sorted(path for path in set(listed) if listed.count(path) > 1) == []
