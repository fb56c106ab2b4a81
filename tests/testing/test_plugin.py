"""The pytest plugin as users get it: loaded by entry point, in real pytest sessions.

The examples of docs/simulator.md that are test modules (fenced with a `title=`) run here in a
pytest session of their own, with the configuration the page shows, so they cannot rot.
"""

from __future__ import annotations

import importlib.metadata
import re
import textwrap
from pathlib import Path

import pytest

from frontoffice_async.testing import pytest_plugin

pytest_plugins = ["pytester"]

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"
_TITLED_FENCE = re.compile(
    r'^```(?P<lang>\w+) title="(?P<title>[^"]+)"\n(?P<body>.*?)^```$', re.MULTILINE | re.DOTALL
)
# Enough for a fresh interpreter to import aiohttp and pytest and run a few tests.
SESSION_TIMEOUT = 120


def titled_blocks() -> dict[str, str]:
    """The page's code blocks that carry a file name, by that name."""
    text = DOCS_PAGE.read_text(encoding="utf-8")
    return {m["title"]: m["body"] for m in _TITLED_FENCE.finditer(text)}


def test_the_docs_show_the_files_this_module_runs() -> None:
    blocks = titled_blocks()
    assert set(blocks) >= {"pyproject.toml", "tests/test_my_bot.py", "tests/test_panic.py"}
    assert 'asyncio_mode = "auto"' in blocks["pyproject.toml"]


def test_the_docs_pytest_examples_pass_in_their_own_session(pytester: pytest.Pytester) -> None:
    for name, body in titled_blocks().items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    # No conftest.py and no -p: the entry point alone brings the fixtures.
    result = pytester.runpytest_inprocess("-W", "error")
    result.assert_outcomes(passed=8, warnings=0)


def test_strict_mode_and_a_leftover_pytest_plugins_line(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["frontoffice_async.testing.pytest_plugin"]\n')
    pytester.makepyfile(
        test_strict=textwrap.dedent(
            """
            import pytest

            @pytest.mark.asyncio
            async def test_fixture(frontoffice_simulator):
                assert frontoffice_simulator.url.startswith("http://127.0.0.1:")

            @pytest.mark.asyncio
            async def test_factory(frontoffice_simulator_factory):
                sim = await frontoffice_simulator_factory(seed=3)
                assert sim.open_order_ids() == []
            """
        )
    )
    result = pytester.runpytest_inprocess("-o", "asyncio_default_fixture_loop_scope=function")
    result.assert_outcomes(passed=2)


def test_without_pytest_asyncio_the_fixtures_say_what_to_install(
    pytester: pytest.Pytester,
) -> None:
    # A pytest_asyncio that cannot be imported, and pytest-asyncio's own plugin off.
    broken = pytester.mkpydir("pytest_asyncio")
    (broken / "__init__.py").write_text('raise ImportError("not installed")\n')
    pytester.makepyfile(
        test_needs_it=textwrap.dedent(
            """
            def test_unrelated():
                assert True

            def test_simulator(frontoffice_simulator):
                raise AssertionError("unreachable")

            def test_factory(frontoffice_simulator_factory):
                raise AssertionError("unreachable")
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:asyncio", "-p", "no:cacheprovider", timeout=SESSION_TIMEOUT
    )
    # The session runs; only the tests that need the fixtures fail, saying why.
    result.assert_outcomes(passed=1, errors=2)
    output = result.stdout.str()
    hint = "fixture needs pytest-asyncio, which is not installed: "
    hint += "pip install 'frontoffice-async[testing]'"
    assert f"the frontoffice_simulator {hint}" in output
    assert f"the frontoffice_simulator_factory {hint}" in output


def test_the_entry_point_names_the_module() -> None:
    # Named after the module, so a `pytest_plugins` line finds it registered already.
    [entry] = [
        ep
        for ep in importlib.metadata.entry_points(group="pytest11")
        if ep.value == pytest_plugin.__name__
    ]
    assert entry.name == pytest_plugin.__name__
    extras = importlib.metadata.metadata("frontoffice-async").get_all("Provides-Extra") or []
    assert "testing" in extras
