"""Packaging: every third-party module the library imports is declared, the base install needs
only `dependencies`, CI's lower-bounds constraints pin exactly the declared minimums, and the
version is the same in the package, its metadata, `--version` and the CHANGELOG."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import frontoffice_async

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "frontoffice_async"
LOWER_BOUNDS = ROOT / ".ci" / "lower-bounds.txt"
#: aiohttp 3.14 carries a security fix: no declared minimum may fall below it.
AIOHTTP_FLOOR = Version("3.14")

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
RUNTIME = [Requirement(text) for text in PROJECT["dependencies"]]
EXTRAS = {
    extra: [Requirement(text) for text in texts]
    for extra, texts in PROJECT["optional-dependencies"].items()
}


def _names(requirements: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in requirements}


def third_party_imports(path: Path) -> set[str]:
    """Top-level names of the non-stdlib modules `path` imports (outside TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test).endswith("TYPE_CHECKING")
        for statement in block.body
        for node in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {n for n in found if n not in sys.stdlib_module_names and n != "frontoffice_async"}


@cache
def _provided() -> dict[str, list[str]]:
    return dict(packages_distributions())  # reads every installed distribution: once


def distributions(modules: set[str]) -> dict[str, set[str]]:
    """The installed distribution(s) that provide each module."""
    provided = _provided()
    return {m: {canonicalize_name(d) for d in provided.get(m, [])} for m in modules}


def test_every_imported_module_is_declared_somewhere() -> None:
    declared = _names(RUNTIME).union(*(_names(reqs) for reqs in EXTRAS.values()))
    for path in sorted(PACKAGE.rglob("*.py")):
        for module, dists in distributions(third_party_imports(path)).items():
            assert dists, f"{path.relative_to(ROOT)} imports {module}, which nothing provides"
            assert dists & declared, (
                f"{path.relative_to(ROOT)} imports {module} ({', '.join(sorted(dists))}): "
                "not declared in pyproject.toml"
            )


def test_the_base_install_imports_only_runtime_dependencies() -> None:
    """What the public names load (they load on first use) imports only `dependencies`,
    never an extra."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import json, sys, frontoffice_async as f; "
            "[getattr(f, name) for name in f.__all__]; "
            "print(json.dumps([m.__file__ for n, m in sys.modules.items() "
            "if n.split('.')[0] == 'frontoffice_async']))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    files = [Path(f) for f in json.loads(loaded.stdout)]
    assert PACKAGE / "client.py" in files
    runtime = _names(RUNTIME)
    imported: set[str] = set()
    for path in files:
        for module, dists in distributions(third_party_imports(path)).items():
            assert dists & runtime, (
                f"{path.relative_to(ROOT)} is part of the base install but imports {module}, "
                "which is not a runtime dependency"
            )
            imported.add(module)
    # A direct import is declared even when another dependency would pull it in anyway.
    assert {"aiohttp", "attrs", "cattrs", "yarl", "multidict"} <= imported


def test_each_runtime_dependency_has_one_minimum() -> None:
    for requirement in RUNTIME:
        [spec] = requirement.specifier
        assert spec.operator == ">=", requirement
        assert requirement.marker is None and not requirement.extras, requirement
    [aiohttp] = [r for r in RUNTIME if r.name == "aiohttp"]
    assert Version(next(iter(aiohttp.specifier)).version) >= AIOHTTP_FLOOR


def test_lower_bounds_pin_exactly_the_declared_minimums() -> None:
    pins: dict[str, Version] = {}
    for line in LOWER_BOUNDS.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            pin = Requirement(text)
            [spec] = pin.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(pin.name)] = Version(spec.version)
    minimums = {
        canonicalize_name(r.name): Version(next(iter(r.specifier)).version) for r in RUNTIME
    }
    assert pins == minimums


def test_the_install_docs_name_every_extra_for_what_it_adds() -> None:
    """docs/quickstart.md lists every extra; the command comes with every install, and the
    `cli` extra adds only rich (the docs say so: it once claimed `[cli]` added the command)."""
    page = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    install = page.split("## Install\n", 1)[1].split("\n## ", 1)[0]
    assert sorted(re.findall(r"`\[(\w+)\]`", install)) == sorted(EXTRAS)
    assert PROJECT["scripts"]["frontoffice"] == "frontoffice_async.cli:console"
    assert _names(EXTRAS["cli"]) == {"rich"}


#: A release heading of CHANGELOG.md (Keep a Changelog 1.1.0): `## [0.2.0] - 2026-12-06`.
_RELEASE = re.compile(r"^## \[(?P<version>[^]]+)\] - (?P<date>\d{4}-\d{2}-\d{2})$", re.MULTILINE)


def changelog_releases() -> list[tuple[Version, str]]:
    """The CHANGELOG's release headings, top to bottom: (version, date)."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    headings = re.findall(r"^## .*$", text, re.MULTILINE)
    releases = [_RELEASE.fullmatch(h) for h in headings if h != "## [Unreleased]"]
    assert all(releases), f"CHANGELOG.md: a heading is not `## [X.Y.Z] - YYYY-MM-DD`: {headings}"
    return [(Version(m["version"]), m["date"]) for m in releases if m is not None]


def test_the_changelog_lists_releases_newest_first() -> None:
    releases = changelog_releases()
    assert [str(v) for v, _ in releases][-1:] == ["0.1.0"]
    assert releases == sorted(releases, reverse=True), "newest version and date first"
    assert len({v for v, _ in releases}) == len(releases)


def test_the_version_is_the_same_everywhere() -> None:
    """`frontoffice_async.__version__`, the installed metadata (`pip show`), `--version` and the
    newest CHANGELOG release agree."""
    [(newest, _), *_] = changelog_releases()
    assert frontoffice_async.__version__ == str(newest)
    assert importlib.metadata.version("frontoffice-async") == str(newest), (
        "the installed metadata is from an older install: reinstall (make clean && make test, "
        "or pip install -e .)"
    )
    shown = subprocess.run(
        [sys.executable, "-m", "frontoffice_async", "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert shown.stdout == f"frontoffice {newest}\n"
