"""What went wrong on one hub connection, as the errors its caller acts on.

Every text that comes from the hub or from aiohttp is masked (the upgrade URL carries the token
in its query), put on one line and clipped before it reaches an error; so is a record that does
not parse (`typed`).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

import aiohttp

from .. import _converter
from .._http import answers
from .._http.tokens import Credential
from ..errors import (
    APIConnectionError,
    APITimeoutError,
    FrontOfficeError,
    HubError,
    ResponseValidationError,
)
from .protocol import Failure
from .transport import Dropped

__all__ = ["Report", "typed"]

T = TypeVar("T")


class Report:
    """Builds the errors of one connection (`attempt`: which of its caller's run it is)."""

    __slots__ = ("attempt", "credential", "safe_url")

    def __init__(self, safe_url: str, attempt: int) -> None:
        self.safe_url = safe_url
        self.attempt = attempt
        self.credential: Credential | None = None
        """The credential the upgrade carried: its token is hidden in every text shown."""

    @property
    def token(self) -> str:
        """The raw token of `credential` (for the upgrade's query and masking only)."""
        credential = self.credential
        return "" if credential is None else credential.value.removeprefix("Bearer ")

    def upgrade_failure(self, exc: BaseException) -> Failure:
        """A failed upgrade (`Dropped`, a connect timeout of aiohttp's, a 101 that is no
        websocket, a transport error), as a `Failure` the caller may retry."""
        if isinstance(exc, Dropped):
            error = APIConnectionError(
                self.scrub(exc.what), method="GET", url=self.safe_url, attempts=self.attempt
            )
            return Failure(error, cause=exc.cause)
        if isinstance(exc, TimeoutError):
            return Failure(self.connection_error(exc), cause="timeout", timed_out=True)
        if isinstance(exc, aiohttp.WSServerHandshakeError):
            error = APIConnectionError(
                f"the hub's answer is not a websocket upgrade: {answers.one_line(exc.message)}",
                method="GET",
                url=self.safe_url,
                attempts=self.attempt,
            )
            return Failure(error, cause="bad upgrade")
        return Failure(self.connection_error(exc), cause=type(exc).__name__)

    def silence(self, what: str) -> Failure:
        """The hub said nothing (or took too long to) for `what`."""
        error = APITimeoutError(what, method="GET", url=self.safe_url, attempts=self.attempt)
        return Failure(error, cause="timeout", timed_out=True)

    def socket_closed(self, items: int) -> Failure:
        """The websocket closed under us without a SignalR Close message."""
        error: FrontOfficeError
        if items:
            error = APIConnectionError(
                "the hub closed the websocket without a SignalR Close message",
                method="GET",
                url=self.safe_url,
                attempts=self.attempt,
            )
        else:
            error = HubError(self.ended("the hub closed the websocket", items))
        return Failure(error, cause="websocket closed")

    def ended(self, what: str, items: int) -> str:
        """`what`, saying that the snapshot never came when no item did."""
        if items:
            return what
        count = "1 connection" if self.attempt == 1 else f"{self.attempt} connections"
        return f"{what} before sending the snapshot ({count})"

    def connection_error(self, exc: BaseException) -> APIConnectionError:
        """A transport failure, translated, with the token masked in its text."""
        error = answers.connection_error(
            exc, method="GET", url=self.safe_url, attempts=self.attempt
        )
        text = str(error.args[0])
        if self.scrub(text) != text:
            error = type(error)(
                self.scrub(text), method="GET", url=self.safe_url, attempts=self.attempt
            )
        return error

    def invalid_message_error(self, raw: str, what: str) -> ResponseValidationError:
        """The hub sent something that is not the protocol (`what` it was)."""
        kept = answers.BODY_KEPT
        return ResponseValidationError(
            f"the hub sent {what}",
            url=self.safe_url,
            body=answers.clip(self.scrub(raw[: 2 * kept]), kept),
            attempts=self.attempt,
        )

    def text(self, value: object) -> str:
        """A text from the hub, as it may appear in an error: one line, clipped, no token."""
        return answers.one_line(self.scrub(str(value)))

    def scrub(self, text: str) -> str:
        """`text` without the token, raw or percent-encoded (as the upgrade URL carries it)."""
        return answers.mask(text, (self.token,))


def typed(records: list[Any], cls: type[T], *, url: object, secrets: Collection[str]) -> list[T]:
    """The hub's records as `cls` records; one that does not parse raises
    `ResponseValidationError` naming it, with `secrets` masked (a record may quote a token)."""
    try:
        return _converter.structure_list(records, cls, path="item", url=url)
    except ResponseValidationError as exc:
        error = exc
    raise answers.scrub(error, secrets)  # out here: no cause or context to show it unmasked
