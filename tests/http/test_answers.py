"""Reading what a server said, defensively: Retry-After, error bodies, transport failures."""

from __future__ import annotations

import json
import traceback
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from frontoffice_async import (
    APIConnectionError,
    APITimeoutError,
    BadRequestError,
    FrontOfficeError,
    OrderNotActiveError,
    ResponseValidationError,
    ServerError,
)
from frontoffice_async._http.answers import (
    connection_error,
    describe_body,
    keep,
    lighten,
    mask,
    one_line,
    retry_after_seconds,
    scrub,
    status_error,
)

from ..support import errors_in, sample

NOW = 1_750_000_000.0


def http_date(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp, UTC), usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        (" 2 ", 2.0),
        ("0", 0.0),
        ("007", 7.0),
        ("9" * 400, float("inf")),  # valid, and far too long: never "retry now"
        # RFC 9110 allows only ASCII digits or an HTTP-date; everything else is ignored.
        ("0.25", None),
        ("1_0", None),
        ("+3", None),
        ("-0", None),
        ("-1", None),
        ("\u0663", None),  # ARABIC-INDIC DIGIT THREE: isdigit(), but not ASCII
        ("\uff13", None),  # FULLWIDTH DIGIT THREE
        ("nan", None),
        ("inf", None),
        ("1e3", None),
        ("soon", None),
        ("", None),
        (http_date(NOW + 5), 5.0),
        (http_date(NOW - 5), 0.0),  # already past: no wait
    ],
)
def test_retry_after(value: str, expected: float | None) -> None:
    assert retry_after_seconds({"Retry-After": value}, now=NOW) == expected


def test_retry_after_absent() -> None:
    assert retry_after_seconds({}) is None


@pytest.mark.parametrize(
    ("body", "message", "trace"),
    [
        (
            b'{"title": "Bad", "detail": "Order X is final", "traceId": "t-1"}',
            "Order X is final",
            "t-1",
        ),
        (b'{"errors": [{"message": "Incorrect parameters"}]}', "Incorrect parameters", None),
        (
            b'{"title": "Invalid", "errors": {"orderId": ["bad id"]}}',
            "Invalid (orderId: bad id)",
            None,
        ),
        (b'{"message": "Order is locked"}', "Order is locked", None),
        (b"<html><title> 502 Bad\nGateway </title></html>", "502 Bad Gateway", None),
        (b"", "", None),
        (b'{"detail": "line one\\r\\nInjected: line"}', "line one Injected: line", None),
        (b'{"traceId": "a\\nb", "detail": "x"}', "x", "a b"),
        (b"[" * 100_000 + b"]" * 100_000, "[" * 199 + "\u2026", None),  # nested: no crash
    ],
)
def test_describe_body(body: bytes, message: str, trace: str | None) -> None:
    assert describe_body(body.decode()) == (message, trace)


def test_html_scan_is_linear_on_hostile_markup() -> None:
    text = "<" * 2_000_000
    message, _ = describe_body(text)
    assert len(message) <= 200


def test_one_line_folds_every_kind_of_line_break() -> None:
    assert one_line("a\r\nb\x0bc\x0cd\u2028e\tf") == "a b c d e f"
    assert len(one_line("x" * 10_000)) == 200


def test_status_error_classes_depend_on_the_endpoint() -> None:
    def kind(status: int, order_id: str | None = None) -> str:
        error = status_error(
            status=status,
            method="DELETE",
            url="u",
            headers={},
            body=b"",
            attempts=1,
            order_id=order_id,
        )
        return type(error).__name__

    assert kind(400, order_id="X") == "BadRequestError"  # empty: says nothing of the order
    assert kind(404, order_id="X") == "OrderNotFoundError"
    assert kind(400) == BadRequestError.__name__
    assert kind(404) == "APIStatusError"  # not an order endpoint
    assert kind(599) == ServerError.__name__
    assert kind(700) == "APIStatusError"


def test_transport_failures_are_translated() -> None:
    timeout = connection_error(TimeoutError(), method="GET", url="u", attempts=2)
    assert isinstance(timeout, APITimeoutError) and timeout.attempts == 2
    reset = connection_error(aiohttp.ServerDisconnectedError(), method="GET", url="u", attempts=1)
    assert type(reset) is APIConnectionError
    assert "closed the connection" in str(reset)


def test_mask_hides_a_token_of_any_length() -> None:
    # A short test token is the client's own secret too: it is masked, not judged too short.
    assert mask("token 'k3y9' is invalid", ["k3y9"]) == "token '[hidden]' is invalid"
    assert mask("access_token=k3%79", ["k3y9"]) == "access_token=k3%79"  # not k3y9
    assert mask("access_token=k3%799", ["k3y9"]) == "access_token=[hidden]"


# --- which 400 from a cancel endpoint means "not active" -------------------------------------

_VALIDATION = b'{"title": "One or more validation errors occurred.", "status": 400'


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # Says nothing about the order: a failure (the order may still be live).
        pytest.param(b"", BadRequestError, id="empty"),
        pytest.param(b" \r\n", BadRequestError, id="blank"),
        pytest.param(b"{}", BadRequestError, id="json-without-a-message"),
        pytest.param(
            _VALIDATION + b', "errors": {"accountId": ["The accountId header is required."]}}',
            BadRequestError,
            id="validation-of-another-field",
        ),
        pytest.param(
            _VALIDATION + b', "errors": {"$.x-api-version": ["bad"], "id": ["bad"]}}',
            BadRequestError,
            id="validation-of-request-fields",
        ),
        pytest.param(_VALIDATION + b"}", BadRequestError, id="validation-title-alone"),
        pytest.param(
            b'{"type": "https://docs.api-versioning.org/problems#unsupported",'
            b' "title": "Unsupported API version", "status": 400,'
            b' "detail": "The HTTP resource does not support the API version \'4.0\'."}',
            BadRequestError,
            id="api-version-problem-details",
        ),
        pytest.param(
            b'{"error": {"code": "UnsupportedApiVersion", "message": "The HTTP resource that'
            b" matches the request URI does not support the API version '4.0'.\"}}",
            BadRequestError,
            id="api-version-error-object",
        ),
        pytest.param(
            b'{"code": "UnsupportedApiVersion", "message": "no"}',
            BadRequestError,
            id="api-version-code",
        ),
        pytest.param(
            b'{"errors": [{"message": "unsupported api-version 4.0"}], "message": "Unsupported'
            b' API Version"}',
            BadRequestError,
            id="api-version-message",
        ),
        pytest.param(b"<html><title>400 Bad Request</title></html>", BadRequestError, id="html"),
        # Speaks about the order: it is final.
        pytest.param(
            sample("error_problem_details_400.json"), OrderNotActiveError, id="platform-sample"
        ),
        pytest.param(sample("error_legacy_400.json"), OrderNotActiveError, id="legacy-sample"),
        pytest.param(
            _VALIDATION + b', "errors": {"$.orderId": ["The order is not active."]}}',
            OrderNotActiveError,
            id="validation-of-the-order",
        ),
        pytest.param(
            _VALIDATION + b', "detail": "Order X cannot be cancelled in status Expired."}',
            OrderNotActiveError,
            id="validation-title-with-a-detail",
        ),
        pytest.param(
            b'{"title": "Bad Request", "detail": "Order X is final"}',
            OrderNotActiveError,
            id="problem-details-with-detail",
        ),
        pytest.param(b'{"title": "Order is final"}', OrderNotActiveError, id="title-only"),
        pytest.param(b'{"message": "Order is locked"}', OrderNotActiveError, id="plain-message"),
    ],
)
def test_a_400_is_not_active_only_when_it_speaks_about_the_order(
    body: bytes, expected: type[BadRequestError]
) -> None:
    error = status_error(
        status=400, method="DELETE", url="u", headers={}, body=body, attempts=1, order_id="X"
    )
    assert type(error) is expected
    # The same body from an endpoint that is not a cancel is a plain 400, always.
    plain = status_error(status=400, method="GET", url="u", headers={}, body=body, attempts=1)
    assert type(plain) is BadRequestError


# --- masking: short tokens alone, long tokens everywhere -------------------------------------

LONG = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl-_x"


@pytest.mark.parametrize(
    ("text", "secret", "expected"),
    [
        # A short token is masked where it stands alone...
        pytest.param(
            "token 'k3y9' is invalid", "k3y9", "token '[hidden]' is invalid", id="quoted"
        ),
        pytest.param("Bearer k3y9", "k3y9", "Bearer [hidden]", id="bearer"),
        pytest.param("?access_token=k3y9&x=1", "k3y9", "?access_token=[hidden]&x=1", id="query"),
        pytest.param("access_token=k3%799", "k3y9", "access_token=[hidden]", id="encoded"),
        pytest.param("k3y9", "k3y9", "[hidden]", id="whole"),
        pytest.param("a+b", "a+b", "[hidden]", id="plus"),
        pytest.param("x=a%2Bb;", "a+b", "x=[hidden];", id="plus-encoded"),
        # ... and ids and hosts that contain it stay readable.
        pytest.param("http://127.0.0.1:8080/x", "0", "http://127.0.0.1:8080/x", id="host"),
        pytest.param("order 01K2PF9X cancelled", "K2", "order 01K2PF9X cancelled", id="id"),
        pytest.param("k3y9k3y9", "k3y9", "k3y9k3y9", id="repeated-in-a-word"),
        pytest.param("access_token=k3%79", "k3y9", "access_token=k3%79", id="not-the-token"),
        pytest.param("test tokens test", "test", "[hidden] tokens [hidden]", id="common-word"),
        # A long token is masked everywhere, raw or percent-encoded in any case.
        pytest.param(f"x{LONG}y", LONG, "x[hidden]y", id="long-inside-a-word"),
        pytest.param(f"a={LONG}.{LONG}", LONG, "a=[hidden].[hidden]", id="long-twice"),
        pytest.param(
            "t=" + LONG.replace(".", "%2e").replace("-", "%2D"), LONG, "t=[hidden]", id="long-hex"
        ),
        pytest.param(
            "".join(f"%{ord(c):02x}" for c in LONG), LONG, "[hidden]", id="long-all-encoded"
        ),
    ],
)
def test_mask(text: str, secret: str, expected: str) -> None:
    assert mask(text, [secret]) == expected


def test_masking_keeps_a_short_token_of_a_host_readable_in_an_error() -> None:
    error = connection_error(
        aiohttp.ClientResponseError(None, (), message="bad line from 127.0.0.1"),  # type: ignore[arg-type]
        method="GET",
        url="http://127.0.0.1/x",
        attempts=1,
        secrets=("0", "1"),
    )
    assert "127.0.0.1" in str(error)


# --- masking before clipping: no part of a token survives a clip -----------------------------

#: A 93-character token, like the platform's, of characters the filler below never uses.
TOKEN93 = (
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0cmFkZXIiLCJleHAiOjE3NTAwMDAwMDB9.Sig_xyzABCD"
)
assert len(TOKEN93) == 93
#: Every clip a peer's text goes through: the excerpt, the message, the trace id, the body
#: kept, the light body and text of a bulk outcome, one_line's scan, the HTML scan.
BOUNDARIES = (80, 100, 200, 256, 400, 512, 800, 4096, 64 * 1024)
FILLER = st.text(alphabet=" \n\t#*!é€😀", min_size=0, max_size=40)


def reachable_texts(error: BaseException) -> list[str]:
    """Everything a user, a logger or an error tracker can read from `error`."""
    texts = ["".join(traceback.format_exception(error))]
    for item in errors_in(error):
        texts += [str(item), repr(item), repr(item.args), repr(getattr(item, "__notes__", ""))]
        texts += [repr(v) for v in vars(item).values()]
        if isinstance(item, FrontOfficeError):
            texts.append(json.dumps(item.as_dict()))
    return texts


def assert_no_fragment(error: BaseException, token: str = TOKEN93) -> None:
    windows = {token[i : i + 8] for i in range(len(token) - 7)}
    for text in reachable_texts(error):
        leaked = [w for w in windows if w in text]
        assert not leaked, f"{leaked[:3]} leaked in {text[:200]!r}"


def raised(error: BaseException) -> BaseException:
    """`error` with a traceback, as a caller catches it."""
    try:
        raise error
    except BaseException as caught:
        return caught


@settings(max_examples=200, deadline=None)
@given(
    boundary=st.sampled_from(BOUNDARIES),
    shift=st.integers(min_value=-100, max_value=10),
    filler=FILLER,
    where=st.sampled_from(["detail", "title", "message", "traceId", "errors", "html", "raw"]),
    status=st.sampled_from([400, 404, 409, 429, 502]),
    light=st.booleans(),
)
def test_no_part_of_a_token_survives_a_clip(
    boundary: int, shift: int, filler: str, where: str, status: int, light: bool
) -> None:
    """The token straddles every clip boundary, at every offset around it, behind filler that
    whitespace-collapsing and escaping shrink or grow."""
    pad = max(boundary + shift, 0)
    text = (filler * (pad // max(len(filler), 1) + 1))[:pad] if filler else "·" * pad
    value = text + TOKEN93 + " tail"
    if where == "html":
        body = f"<html><title>{value}</title><body>{value}</body></html>".encode()
    elif where == "raw":
        body = value.encode()
    elif where == "errors":
        body = json.dumps({"title": "Invalid", "errors": {"orderId": [value]}}).encode()
    else:
        body = json.dumps({where: value, "detail" if where != "detail" else "title": "x"}).encode()
    error = status_error(
        status=status,
        method="DELETE",
        url="http://h/x",
        headers={"X-Echo": value},
        body=body,
        attempts=1,
        order_id="X",
        secrets=(TOKEN93,),
    )
    if light:
        lighten(error)
    assert_no_fragment(raised(error))


@settings(max_examples=100, deadline=None)
@given(boundary=st.sampled_from((200, 800)), shift=st.integers(-100, 10), filler=FILLER)
def test_no_part_of_a_token_survives_a_clip_of_a_transport_error(
    boundary: int, shift: int, filler: str
) -> None:
    pad = max(boundary + shift, 0)
    text = (filler * (pad // max(len(filler), 1) + 1))[:pad] if filler else "·" * pad
    cause = aiohttp.ClientResponseError(None, (), message=text + TOKEN93)  # type: ignore[arg-type]
    error = connection_error(cause, method="GET", url="u", attempts=1, secrets=(TOKEN93,))
    error.__cause__ = None  # the cause is aiohttp's: its own text is not ours to clip
    assert_no_fragment(raised(error))


@settings(max_examples=100, deadline=None)
@given(shift=st.integers(-200, 10), filler=FILLER, light=st.booleans())
def test_no_part_of_a_token_survives_the_clip_of_a_2xx_body(
    shift: int, filler: str, light: bool
) -> None:
    pad = max(4096 + shift, 0)
    text = (filler * (pad // max(len(filler), 1) + 1))[:pad] if filler else "·" * pad
    error = ResponseValidationError("bad", url="u", body=text + TOKEN93 + "x" * 5000)
    scrub(error, (TOKEN93,))
    if light:
        lighten(error)
    assert len(error.body) <= 4096
    assert_no_fragment(raised(error))


def test_keep_masks_a_huge_text_by_its_head_only() -> None:
    text = "a" * 4000 + TOKEN93 + "b" * 10_000_000
    kept = keep(text, 4096, (TOKEN93,))
    assert kept.startswith("a" * 4000 + "[hidden]") and len(kept) == 4096
    # A text whose masked head shrinks: still nothing of a token cut at the scan's end.
    many = (TOKEN93 + " ") * 200
    assert "eyJhbGci" not in keep(many, 4096, (TOKEN93,)).replace("[hidden]", "")


# --- every exception aiohttp's client can raise has its own translation ----------------------


def _aiohttp_instance(name: str) -> BaseException:
    """One instance of `aiohttp.client_exceptions.<name>`, built as aiohttp builds it."""
    cls: Any = getattr(aiohttp.client_exceptions, name)  # constructors differ: built by hand
    key: Any = None
    if issubclass(cls, aiohttp.ClientConnectorCertificateError):
        made = cls(key, ValueError("self-signed certificate"))
    elif issubclass(cls, aiohttp.ClientConnectorError):
        made = cls(key, OSError(111, "Connection refused"))
    elif issubclass(cls, aiohttp.ServerFingerprintMismatch):
        made = cls(b"a", b"b", "host", 443)
    elif issubclass(cls, aiohttp.ClientResponseError):
        made = cls(None, (), status=502, message="Bad Gateway")
    elif issubclass(cls, aiohttp.InvalidURL):
        made = cls("http://[bad")
    else:
        made = cls("what aiohttp says")
    assert isinstance(made, BaseException)
    return made


@pytest.mark.parametrize("name", aiohttp.client_exceptions.__all__)
def test_every_aiohttp_client_exception_has_a_specific_message(name: str) -> None:
    exc = _aiohttp_instance(name)
    error = connection_error(exc, method="DELETE", url="http://x/o", attempts=1)
    assert isinstance(error, APIConnectionError)
    text = str(error.args[0])
    # Not the fallback of an exception this module does not know ("TypeName: str(exc)").
    assert not text.startswith(f"{name}:"), text
