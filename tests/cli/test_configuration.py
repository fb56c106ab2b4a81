"""Configuration mistakes: a refused setting is named, never shown (it may be the token)."""

from __future__ import annotations

import json

import pytest

from frontoffice_async.testing import FrontOfficeSimulator

from ..support import Run

#: A realistic bearer token (a JWT), the kind of value a swapped variable puts in the open.
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjRkOWYifQ"
    ".eyJzdWIiOiJ0cmFkZXItNDIiLCJhdWQiOiJmcm9udG9mZmljZSIsImV4cCI6NDEwMjQ0NDgwMH0"
    ".Xb3k9_qL2mZr7-VtN0cPw4sYhJ1uGaEeKfD6iT8oBxQ"
)
ACCOUNT = "685a7eaa360f9e7416221a61"
COMMANDS = [["accounts"], ["cancel", "01K2PF9XS29WN4JZRHMCTTQYJB"], ["cancel-all", "--yes"]]


def shows_part_of(text: str, secret: str, size: int = 8) -> bool:
    """Whether `text` holds `size` characters of `secret` in a row, in any case."""
    text, secret = text.casefold(), secret.casefold()
    return any(secret[i : i + size] in text for i in range(len(secret) - size + 1))


@pytest.mark.parametrize("json_output", [False, True], ids=["plain", "json"])
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
@pytest.mark.parametrize(
    ("base_url", "token", "account"),
    [
        ("{jwt}", "{url}", ACCOUNT),  # base URL and token swapped
        ("{jwt}", ACCOUNT, "{url}"),  # all three rotated
        ("Bearer {jwt}", "{url}", ACCOUNT),  # the header pasted as the URL
        ("{jwt}:443", "{url}", ACCOUNT),
        ("{url}/{jwt}", "{url}", ACCOUNT),  # pasted onto the URL: a "path prefix"
        ("http://{jwt}", "{url}", ACCOUNT),  # a JWT is a well-formed host name
    ],
    ids=["swapped", "rotated", "bearer", "port", "path", "host"],
)
async def test_a_token_in_the_base_url_variable_is_never_printed(
    sim: FrontOfficeSimulator,
    invoke: Run,
    monkeypatch: pytest.MonkeyPatch,
    base_url: str,
    token: str,
    account: str,
    command: list[str],
    json_output: bool,
) -> None:
    url = sim.url
    for name, value in (
        ("FRONTOFFICE_BASE_URL", base_url),
        ("FRONTOFFICE_TOKEN", token),
        ("FRONTOFFICE_ACCOUNT_ID", account),
    ):
        monkeypatch.setenv(name, value.format(jwt=JWT, url=url))
    code, out, err = await invoke(*command, *(["--json"] if json_output else []))
    assert not shows_part_of(out, JWT), out
    assert not shows_part_of(err, JWT), err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("error: --base-url (or FRONTOFFICE_BASE_URL) ")
    if json_output:
        assert json.loads(out)["error"]["type"] == "UsageError"
    else:
        assert out == ""
    assert sim.stats.requests == 0


@pytest.mark.parametrize("json_output", [False, True], ids=["plain", "json"])
async def test_a_token_given_as_base_url_flag_is_never_printed(
    sim: FrontOfficeSimulator, invoke: Run, json_output: bool
) -> None:
    code, out, err = await invoke(
        "accounts", "--base-url", JWT, *(["--json"] if json_output else [])
    )
    assert code == 2
    assert not shows_part_of(out + err, JWT)


async def test_swapped_variables_are_named_as_such(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTOFFICE_BASE_URL", JWT)
    monkeypatch.setenv("FRONTOFFICE_TOKEN", sim.url)
    code, _, err = await invoke("accounts")
    assert code == 2
    assert "swapped" in err


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example", "must be an http(s) URL with a host"),
        ("http://[::1", "is not a valid URL: Invalid IPv6 URL"),
        ("http://a b", "has no valid host name"),
    ],
)
async def test_bad_base_url_is_one_line_naming_the_option(
    sim: FrontOfficeSimulator, invoke: Run, url: str, reason: str
) -> None:
    code, _, err = await invoke("accounts", "--base-url", url)
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith(f"error: --base-url (or FRONTOFFICE_BASE_URL) {reason}")


async def test_a_url_as_token_is_refused_before_sending(
    sim: FrontOfficeSimulator, invoke: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTOFFICE_TOKEN", sim.url)
    code, out, err = await invoke("cancel-all", "--yes")
    assert code == 2
    assert out == ""
    assert err == "error: --token (or FRONTOFFICE_TOKEN) holds a URL, not a token\n"
    assert sim.stats.requests == 0
