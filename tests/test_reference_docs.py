"""The API reference cannot drift: every public name has its own entry in docs/reference.md,
and every entry is a public name (the page says names it does not list are private); and it
shows attributes as types, not as the code that assigns them."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import griffe
import pytest

import frontoffice_async
import frontoffice_async.testing

REFERENCE = Path(__file__).resolve().parent.parent / "docs" / "reference.md"
#: A mkdocstrings entry: `::: dotted.path` alone on its line, then its indented options.
_ENTRY = re.compile(
    r"^::: (?P<path>[\w.]+)[ \t]*$\n?(?P<options>(?:[ \t]+\S.*\n?)*)", re.MULTILINE
)
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


# --- attributes assigned in __init__ ----------------------------------------------------------
#
# griffe (which mkdocstrings uses) reads `self.remaining = list(remaining)` in `__init__` as an
# attribute whose value is that code, with no type; mkdocstrings then renders
# `remaining = list(remaining)`. So an entry whose class assigns public attributes in
# `__init__` sets `show_attribute_values: false`, and each such attribute needs a type, which
# griffe takes from an annotated assignment: `self.remaining: list[OpenOrder] = list(...)`
# (or from an annotation in the class body).

#: Attributes still without a type. Annotate their assignments, then remove them here.
UNTYPED: dict[str, set[str]] = {}


_HIDES_VALUES = re.compile(r"^\s+show_attribute_values: false$", re.MULTILINE)


def hides_attribute_values(path: str) -> bool:
    """Whether the entry of `path` has the option `show_attribute_values: false`."""
    for match in _ENTRY.finditer(REFERENCE.read_text(encoding="utf-8")):
        if match["path"] == path:
            return _HIDES_VALUES.search(match["options"]) is not None
    raise AssertionError(f"no entry for {path}")


@cache
def _package() -> griffe.Module:
    loaded = griffe.load("frontoffice_async", search_paths=[str(REFERENCE.parent.parent)])
    assert isinstance(loaded, griffe.Module)
    return loaded


def set_in_init(path: str) -> dict[str, griffe.Attribute]:
    """The public attributes that the class at `path` assigns in its `__init__`, as griffe
    reads them (empty for anything that is not a class)."""
    obj = _package()[path.removeprefix("frontoffice_async.")]
    target = obj.final_target if isinstance(obj, griffe.Alias) else obj
    if not isinstance(target, griffe.Class) or "__init__" not in target.members:
        return {}
    init = target.members["__init__"]
    start, end = init.lineno or 0, init.endlineno or 0
    return {
        name: member
        for name, member in target.members.items()
        if isinstance(member, griffe.Attribute)
        and not name.startswith("_")
        and start <= (member.lineno or 0) <= end
    }


@pytest.mark.parametrize("path", sorted(set(entries()) - _MODULE_ENTRIES))
def test_attributes_assigned_in_init_render_as_types_not_code(path: str) -> None:
    assigned = set_in_init(path)
    if not assigned:
        assert path not in UNTYPED, f"{path} assigns nothing in __init__: drop it from UNTYPED"
        return
    assert hides_attribute_values(path), (
        f"docs/reference.md renders the code that assigns {sorted(assigned)}: give "
        f"`::: {path}` the option `show_attribute_values: false`"
    )
    untyped = {name for name, member in assigned.items() if member.annotation is None}
    assert untyped == UNTYPED.get(path, set()), (
        f"{path}: attributes without a type (annotate the assignment in __init__, "
        f"`self.name: T = ...`): {sorted(untyped)}; update UNTYPED to match"
    )
