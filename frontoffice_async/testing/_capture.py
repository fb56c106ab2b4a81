"""What the request log keeps of a request's headers and body: masked, clipped and shared.

A test asserts on what a client sent (`record.headers["accountId"]`, `record.body`), but the
log must never show a token, and a log of tens of thousands of requests must stay small: a
client sends the same headers on every request, so identical masked header sets (and bodies)
are kept once and shared by every record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["HIDDEN", "MAX_BODY_CHARS", "Capture"]

#: What stands in a logged header or body for a token.
HIDDEN = "[hidden]"
#: The longest body text a record keeps, in characters.
MAX_BODY_CHARS = 4096
# The longest header value, and the most headers, a record keeps. aiohttp already refuses
# lines over 8 KiB; these keep one odd client from costing more than a few KiB per record.
_MAX_HEADER_CHARS = 1024
_MAX_HEADERS = 64
# Distinct header sets and bodies kept for sharing; past that, new ones are kept per record.
_SHARED_LIMIT = 1024
# Headers whose whole value is a credential.
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "access_token"})

Headers = CIMultiDictProxy[str]
_EMPTY: Headers = CIMultiDictProxy(CIMultiDict())


class Capture:
    """Masks and clips headers and bodies, and shares the identical ones."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Secrets hidden in every request besides the request's own token (an offline token).
        self._secrets = tuple(secret for secret in secrets if secret)
        self._headers: dict[tuple[tuple[str, str], ...], Headers] = {}
        self._bodies: dict[str, str] = {}

    def headers(self, raw: Mapping[str, str], tokens: Iterable[str]) -> Headers:
        """A read-only, case-insensitive copy of `raw` with credentials hidden."""
        secrets = self._all_secrets(tokens)
        items = tuple(
            (name, _clip(_masked_header(name, value, secrets), _MAX_HEADER_CHARS))
            for name, value in list(raw.items())[:_MAX_HEADERS]
        )
        if not items:
            return _EMPTY
        shared = self._headers.get(items)
        if shared is not None:
            return shared
        headers = CIMultiDictProxy(CIMultiDict(items))
        if len(self._headers) < _SHARED_LIMIT:
            self._headers[items] = headers
        return headers

    def body(self, raw: bytes, tokens: Iterable[str]) -> str:
        """The body as text (undecodable bytes replaced), tokens hidden, then clipped."""
        # Masking comes before clipping: a clip could cut a token in two and let half show.
        # So a little more than can be kept is decoded: a token across the edge is hidden.
        secrets = self._all_secrets(tokens)
        margin = max((len(quote(secret, safe="")) for secret in secrets), default=0) + 1
        text = raw[: (MAX_BODY_CHARS + margin) * 4].decode("utf-8", errors="replace")
        text = _clip(mask(text, secrets), MAX_BODY_CHARS)
        shared = self._bodies.get(text)
        if shared is not None:
            return shared
        if len(self._bodies) < _SHARED_LIMIT:
            self._bodies[text] = text
        return text

    def _all_secrets(self, tokens: Iterable[str]) -> tuple[str, ...]:
        return (*(token for token in tokens if token), *self._secrets)


def mask(text: str, secrets: Iterable[str]) -> str:
    """`text` with each secret hidden, as it is and percent-encoded (either hex case)."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, HIDDEN)
        encoded = quote(secret, safe="")
        if encoded != secret and "%" in text:
            text = text.replace(encoded, HIDDEN).replace(encoded.lower(), HIDDEN)
    return text


def _masked_header(name: str, value: str, secrets: tuple[str, ...]) -> str:
    if name.lower() in _SECRET_HEADERS:
        # The scheme says how the client authenticated ("Bearer"); the rest is the secret.
        scheme, space, _ = value.strip().partition(" ")
        if space and scheme.isascii() and scheme.isalpha() and len(scheme) <= 16:
            return f"{scheme} {HIDDEN}"
        return HIDDEN
    return mask(value, secrets)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]
