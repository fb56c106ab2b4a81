"""The guard's pieces that need no process: its environment, the errors it reports, the
arguments `client.guard()` checks, its repr."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from frontoffice_async import (
    AuthenticationError,
    FrontOfficeClient,
    Guard,
    GuardError,
    InvalidOrderIdError,
    PermissionDeniedError,
    RetryPolicy,
)
from frontoffice_async._stop import guard as guard_module

from ..support import SENTINEL_TOKEN, client_for


def test_the_guard_gets_the_environment_without_the_token() -> None:
    environ = {
        "PATH": "/usr/bin",
        "FRONTOFFICE_TOKEN": "anything",
        "BOT_SECRET": f"Bearer {SENTINEL_TOKEN}",
        "FRONTOFFICE_BASE_URL": "http://127.0.0.1:1",
    }
    kept = guard_module.guard_environment((SENTINEL_TOKEN,), environ)
    assert kept == {"PATH": "/usr/bin", "FRONTOFFICE_BASE_URL": "http://127.0.0.1:1"}


@pytest.mark.parametrize(
    ("document", "expected", "status"),
    [
        ({"type": "AuthenticationError", "status": 401}, AuthenticationError, 401),
        ({"type": "PermissionDeniedError", "status": 403}, PermissionDeniedError, 403),
        ({"type": "GuardError", "message": "cannot act on x"}, GuardError, None),
        ({"type": "UsageError", "message": "bad hello"}, GuardError, None),
        ("not a document", GuardError, None),
    ],
)
def test_the_error_the_guard_reports_comes_back_typed(
    document: object, expected: type[Exception], status: int | None
) -> None:
    error = guard_module._rebuilt(document, ())
    assert type(error) is expected
    assert getattr(error, "status", None) == status


def test_an_error_the_guard_reports_never_shows_a_token() -> None:
    document = {"type": "ServerError", "status": 502, "message": f"echo {SENTINEL_TOKEN}"}
    error = guard_module._rebuilt(document, (SENTINEL_TOKEN,))
    assert SENTINEL_TOKEN not in str(error)


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"timeout": 0}, ValueError),
        ({"timeout": float("nan")}, ValueError),
        ({"timeout": "30"}, TypeError),
        ({"on_error": "ignore"}, ValueError),
        ({"on_stop": "ignore"}, ValueError),
        ({"accounts": "685a7eaa360f9e7416221a61"}, ValueError),
        ({"accounts": []}, ValueError),
        ({"accounts": "all", "stop_order_ids": ["01K2PF9XSP2HBBPPF04N95FVS3"]}, ValueError),
        ({"stop_order_ids": ["a/../b", ""]}, InvalidOrderIdError),
        ({"journal": sys.stderr}, TypeError),
        ({"rounds": 0}, ValueError),
        ({"market_id": ""}, ValueError),
    ],
)
async def test_arguments_are_checked_before_anything_starts(
    arguments: dict[str, Any], error: type[Exception]
) -> None:
    async with client_for("http://127.0.0.1:9") as client:
        with pytest.raises(error):
            client.guard(**arguments)


async def test_a_closed_client_starts_no_guard() -> None:
    client = client_for("http://127.0.0.1:9")
    await client.close()
    with pytest.raises(RuntimeError, match="closed"):
        client.guard()


async def test_the_guard_needs_an_account() -> None:
    async with FrontOfficeClient("http://127.0.0.1:9", token=SENTINEL_TOKEN) as client:
        with pytest.raises(ValueError, match="account"):
            client.guard()


def test_a_guard_shows_no_token_and_says_its_state() -> None:
    hello = guard_module.guard_hello(
        timeout=1,
        base_url="http://127.0.0.1:9",
        account_id="685a7eaa360f9e7416221a61",
        accounts=None,
        market_id=None,
        close_positions=True,
        stop_order_ids={},
        rounds=3,
        journal="guard.jsonl",
        concurrency=4,
        request_timeout=None,
        retry=RetryPolicy(),
        rate_limit=None,
        snapshot_settle=None,
        headers={},
    )
    assert hello["journal"] == str(Path("guard.jsonl").resolve())
    assert hello["client"]["retry"]["retry_methods"] == ["DELETE", "GET"]
    client = FrontOfficeClient("http://127.0.0.1:9", token=SENTINEL_TOKEN)
    guard = Guard(hello, client._http.tokens, on_error="flatten", on_stop="disarm")
    assert repr(guard) == "<Guard pid=None timeout=1.0 not started>"
    assert (guard.pid, guard.alive, guard.trigger, guard.returncode) == (None, False, None, None)
