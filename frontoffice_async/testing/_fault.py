"""`Fault` and `FaultKind`: one failure to inflict on one request, for `FaultPlan`.

Re-exported by `frontoffice_async.testing` and `frontoffice_async.testing.faults`.
"""

from __future__ import annotations

import enum
import math
import types
from collections.abc import Mapping

import attrs

__all__ = ["Fault", "FaultKind", "check_delay", "check_retry_after"]


class FaultKind(enum.StrEnum):
    """What goes wrong with a request the plan picks."""

    #: 429 ProblemDetails, with `Retry-After` when the fault's `retry_after` is set.
    RATE_LIMITED = "rate_limited"
    #: 500 ProblemDetails JSON (or the fault's `status`, e.g. 504).
    SERVER_ERROR = "server_error"
    #: 502 with a proxy's HTML page as the body.
    BAD_GATEWAY = "bad_gateway"
    #: 503 with an empty body, and `Retry-After` when the fault's `retry_after` is set.
    UNAVAILABLE = "unavailable"
    #: The connection is closed without any response; nothing changes on the server.
    RESET = "reset"
    #: The response comes `delay` seconds late; the request is then handled normally.
    SLOW = "slow"
    #: The request takes effect, then the response body is cut in the middle of its JSON.
    MALFORMED = "malformed"
    #: The request takes effect, then the connection is closed without a response.
    LOST_RESPONSE = "lost_response"
    #: An arbitrary response (`Fault.response`); nothing changes on the server.
    RESPONSE = "response"
    #: The answer of a request that took effect, but nothing changes on the server: a close
    #: or cancel the platform accepted and never carried out.
    NOT_APPLIED = "not_applied"


def check_retry_after(name: str, value: float | str | None) -> None:
    """A `Retry-After`: None, a str sent verbatim, or a finite number of seconds >= 0."""
    if value is None or isinstance(value, str):
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, a str or None, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def check_delay(name: str, value: float | None) -> None:
    """A delay: None, or a finite number of seconds >= 0."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


# The fields each kind uses; a non-default value in another field is a mistake worth reporting.
_FAULT_FIELDS: dict[FaultKind, frozenset[str]] = {
    FaultKind.RATE_LIMITED: frozenset({"retry_after"}),
    FaultKind.SERVER_ERROR: frozenset({"status"}),
    FaultKind.BAD_GATEWAY: frozenset({"status"}),
    FaultKind.UNAVAILABLE: frozenset({"retry_after", "status"}),
    FaultKind.RESET: frozenset(),
    FaultKind.SLOW: frozenset({"delay"}),
    FaultKind.MALFORMED: frozenset(),
    FaultKind.LOST_RESPONSE: frozenset(),
    FaultKind.RESPONSE: frozenset({"status", "body", "headers"}),
    FaultKind.NOT_APPLIED: frozenset(),
}
_FAULT_DEFAULTS: dict[str, object] = {
    "retry_after": None,
    "delay": None,
    "status": None,
    "body": b"",
    "headers": {},
}
# Kinds whose `status` overrides their usual 5xx answer: only another 5xx makes sense.
_SERVER_ERROR_KINDS = frozenset(
    {FaultKind.SERVER_ERROR, FaultKind.BAD_GATEWAY, FaultKind.UNAVAILABLE}
)


def _freeze_headers(headers: Mapping[str, str] | None) -> Mapping[str, str]:
    return types.MappingProxyType(dict(headers or {}))


@attrs.frozen
class Fault:
    """One failure to inflict on one request.

    Build it with the named constructors, e.g. `Fault.rate_limited(retry_after=1)`,
    `Fault.reset()` or `Fault.response(418, b"teapot")`. A field the kind does not use
    (`Fault(FaultKind.RESET, status=500)`) is a ValueError, as is a status other than a 5xx
    for SERVER_ERROR, BAD_GATEWAY and UNAVAILABLE.
    """

    kind: FaultKind = attrs.field(converter=FaultKind)
    #: `Retry-After` for RATE_LIMITED and UNAVAILABLE: seconds, or a str sent verbatim.
    retry_after: float | str | None = None
    #: Seconds SLOW waits before answering; None uses the plan's `slow_delay`.
    delay: float | None = None
    #: Status of a RESPONSE fault (100..599); for SERVER_ERROR (default 500), BAD_GATEWAY
    #: (502) and UNAVAILABLE (503) another 5xx, such as 504.
    status: int | None = None
    #: Body of a RESPONSE fault.
    body: bytes = b""
    #: Extra headers of a RESPONSE fault.
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_freeze_headers, hash=False)

    def __attrs_post_init__(self) -> None:
        used = _FAULT_FIELDS[self.kind]
        for name, default in _FAULT_DEFAULTS.items():
            if name not in used and getattr(self, name) != default:
                raise ValueError(f"{name} does not apply to a {self.kind.name} fault")
        check_retry_after("retry_after", self.retry_after)
        check_delay("delay", self.delay)
        if self.status is not None and (
            isinstance(self.status, bool)
            or not isinstance(self.status, int)
            or not 100 <= self.status <= 599
        ):
            raise ValueError(f"status must be an HTTP status 100..599, got {self.status!r}")
        if self.kind is FaultKind.RESPONSE and self.status is None:
            raise ValueError("status is required for a RESPONSE fault")
        if self.kind in _SERVER_ERROR_KINDS and self.status is not None and self.status < 500:
            raise ValueError(
                f"status of a {self.kind.name} fault must be a 5xx, got {self.status!r}; "
                "Fault.response(status, body) answers anything else"
            )
        if not isinstance(self.body, bytes):
            raise TypeError(f"body must be bytes, got {type(self.body).__name__}")

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 0.05) -> Fault:
        """A 429 answer, with `Retry-After: retry_after` unless it is None."""
        return cls(FaultKind.RATE_LIMITED, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        """A ProblemDetails answer with a 5xx `status` (500 by default)."""
        return cls(FaultKind.SERVER_ERROR, status=status)

    @classmethod
    def bad_gateway(cls) -> Fault:
        """A 502 answer whose body is a proxy's HTML page."""
        return cls(FaultKind.BAD_GATEWAY)

    @classmethod
    def unavailable(cls, retry_after: float | str | None = None) -> Fault:
        """A 503 answer with an empty body, and `Retry-After` unless it is None."""
        return cls(FaultKind.UNAVAILABLE, retry_after=retry_after)

    @classmethod
    def reset(cls) -> Fault:
        """Close the connection without answering; the request has no effect."""
        return cls(FaultKind.RESET)

    @classmethod
    def slow(cls, delay: float | None = None) -> Fault:
        """Answer normally after `delay` seconds (None: the plan's `slow_delay`)."""
        return cls(FaultKind.SLOW, delay=delay)

    @classmethod
    def malformed(cls) -> Fault:
        """Apply the request, then answer with a truncated JSON body."""
        return cls(FaultKind.MALFORMED)

    @classmethod
    def lost_response(cls) -> Fault:
        """Apply the request, then close the connection without answering."""
        return cls(FaultKind.LOST_RESPONSE)

    @classmethod
    def not_applied(cls) -> Fault:
        """Answer as if the request took effect (200, the usual body), but change nothing.

        A position close or bulk close is acknowledged and the positions stay open; a
        cancel answers the order as Cancelled and it stays active; a placed order is
        answered and never exists. Only a later snapshot tells.
        """
        return cls(FaultKind.NOT_APPLIED)

    @classmethod
    def response(
        cls, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> Fault:
        """Answer with exactly this status, body and headers; the request has no effect."""
        return cls(FaultKind.RESPONSE, status=status, body=body, headers=headers or {})
