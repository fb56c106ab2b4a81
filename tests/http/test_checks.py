"""`normalise_base_url`: what it accepts, and that a refused value is never shown."""

from __future__ import annotations

import pytest

from frontoffice_async._http.checks import normalise_base_url

#: A realistic bearer token (a JWT: header, payload, signature), as it would be pasted where
#: the base URL belongs when two environment variables are swapped.
JWT = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjRkOWYifQ"
    ".eyJzdWIiOiJ0cmFkZXItNDIiLCJhdWQiOiJmcm9udG9mZmljZSIsImV4cCI6NDEwMjQ0NDgwMH0"
    ".Xb3k9_qL2mZr7-VtN0cPw4sYhJ1uGaEeKfD6iT8oBxQ"
)


def shows_part_of(text: str, secret: str, size: int = 8) -> bool:
    """Whether `text` holds any `size` characters of `secret` in a row, in any case (a host
    is lowercased by the URL parser)."""
    text, secret = text.casefold(), secret.casefold()
    return any(secret[i : i + size] in text for i in range(len(secret) - size + 1))


@pytest.mark.parametrize(
    "template",
    [
        "{t}",  # FRONTOFFICE_BASE_URL and FRONTOFFICE_TOKEN swapped
        "Bearer {t}",  # the header pasted
        "{t}:443",
        "https:{t}",
        "http:/{t}",
        "//{t}",
        "ftp://{t}",
        "http://h:{t}",  # port
        "http://[{t}",  # IPv6
        "http://{t}\u2100",  # yarl quotes the netloc in this one's message
        "http://{t}\uff03x",
        "http://h\\{t}",
        "http:// {t}",  # parsed, with a space in the host
        "http://{t}",  # parsed: a JWT is a syntactically valid host name
        "https://{t}.",
        "https://broker.example/{t}",  # in the path prefix, shown in every error's URL
        "https://user:{t}@broker.example",
        "https://broker.example/?token={t}",
        "https://broker.example/#{t}",
    ],
)
def test_a_refused_base_url_is_never_shown(template: str) -> None:
    value = template.format(t=JWT)
    with pytest.raises(ValueError, match=r"^base_url ") as caught:
        normalise_base_url(value)
    error = caught.value
    assert not shows_part_of(str(error), JWT), str(error)
    assert not shows_part_of(repr(error), JWT)
    # Not chained either: a traceback would print the parser's own message.
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("eyJhbGciOi.eyJzdWIiOi.c2ln", "looks like a token"),
        ("ftp://broker.example", "must be an http(s) URL with a host"),
        ("broker.example", "must be an http(s) URL with a host"),
        ("http://[::1", "not a valid URL: Invalid IPv6 URL"),  # yarl's reason, which is safe
        ("http://a b.example", "host"),
        ("http://a..b", "host"),
        ("http://ex%41mple.com", "host"),
        ("http://" + "a" * 64 + ".example", "host"),
        ("https://u:p@broker.example", "must not carry credentials"),
    ],
)
def test_refusals_say_why(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=r"^base_url ") as caught:
        normalise_base_url(value)
    assert reason in str(caught.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://broker.example", "https://broker.example"),
        ("https://broker.example/", "https://broker.example"),
        (" https://broker.example/prefix/ ", "https://broker.example/prefix"),
        ("HTTP://Broker.Example:8443", "http://broker.example:8443"),
        ("http://127.0.0.1:8765", "http://127.0.0.1:8765"),
        ("http://[::1]:8765", "http://[::1]:8765"),
        ("http://localhost", "http://localhost"),
        ("http://my_service:80/api", "http://my_service/api"),  # compose service names
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("https://broker.example.", "https://broker.example."),
    ],
)
def test_accepted_base_urls(value: str, expected: str) -> None:
    assert normalise_base_url(value) == expected


def test_a_base_url_that_is_not_a_str() -> None:
    with pytest.raises(TypeError, match="base_url must be a str, got bytes"):
        normalise_base_url(b"https://broker.example")
