"""The folder shows the design (docs/architecture.md), and the tests mirror it.

`lint-imports` (in `make test`) checks who may import whom inside the package; this checks
what it cannot: which entries the package has, that each private folder says what it may
import, and that a test reaches into a private folder only from that folder's tests.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "frontoffice_async"
TESTS = Path(__file__).resolve().parent

#: The entries of `frontoffice_async/`: a new one is a design decision, made here on purpose.
ENTRIES = {
    "__init__.py",
    "__main__.py",  # `python -m frontoffice_async`
    "_converter.py",
    "_version.py",  # the one version string (build backend, User-Agent, --version)
    "auth.py",
    "bulk.py",
    "client.py",
    "errors.py",
    "models.py",
    "py.typed",
    "retry.py",
    "streams.py",  # the deprecated alias of 0.1's module, removed in 0.3
    "_http",
    "_hub",
    "_stop",
    "cli",
    "testing",
}

#: The private packages a test folder may import (and whatever is public).
ALLOWED = {
    "http": {"_http"},
    "hub": {"_hub", "_http"},
    "stop": {"_stop", "_http", "_converter"},
    "cli": set(),
    "testing": set(),
    "adversary": set(),  # adversary review: public API only
    "": {"_converter"},  # tests/ itself: the converter is a module, not a folder
}


def test_the_package_has_the_designed_entries() -> None:
    found = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert found == ENTRIES


@pytest.mark.parametrize("folder", ["_http", "_hub", "_stop", "cli", "testing"])
def test_each_folder_says_what_it_is(folder: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
    assert doc, folder
    if folder.startswith("_"):
        assert "May import" in doc, folder


def private_imports(path: Path) -> set[str]:
    """The private packages of ours a test module imports (`_http`, `_hub`, ...)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = [*name.split("."), ""]
            if parts[0] == "frontoffice_async" and parts[1][:1] == "_" and parts[1][:2] != "__":
                found.add(parts[1])
    return found


@pytest.mark.parametrize(
    "path",
    sorted(TESTS.rglob("test_*.py")),
    ids=lambda p: str(p.relative_to(TESTS)),
)
def test_tests_reach_into_a_private_folder_only_from_its_own(path: Path) -> None:
    folder = path.parent.relative_to(TESTS).parts
    allowed = ALLOWED[folder[0] if folder else ""]
    assert private_imports(path) <= allowed


def test_the_cli_contract_forbids_every_private_module_of_the_simulator() -> None:
    """import-linter cannot match `testing._*`, so the contract lists them: all of them."""
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())
    [contract] = [
        c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "cli-public-api"
    ]
    listed = {
        m for m in contract["forbidden_modules"] if m.startswith("frontoffice_async.testing.")
    }
    private = {
        f"frontoffice_async.testing.{p.stem}"
        for p in (PACKAGE / "testing").glob("_*.py")
        if p.stem != "__init__"
    }
    assert listed == private
