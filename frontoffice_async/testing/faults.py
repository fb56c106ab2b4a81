"""Fault plans for the simulator: which request or hub stream fails, how, reproducibly.

A `FaultPlan` is a frozen value; the simulator asks it for the fault of each eligible request,
of each hub connection (for its OpenOrders stream) and of each connection's OpenPositions
stream.
"""

from __future__ import annotations

import hashlib
import math
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from frontoffice_async.testing._fault import Fault, FaultKind, check_delay, check_retry_after
from frontoffice_async.testing._hub_faults import HubFault, HubFaultKind

__all__ = ["Fault", "FaultKind", "FaultPlan", "HubFault", "HubFaultKind"]

# The endpoint names a plan may target: the `endpoint` values of `RecordedRequest`.
# The defaults are the REST endpoints a bot calls on an account: the transient kinds change
# nothing there, so a retrying client absorbs them on a close as on a cancel.
_DEFAULT_ENDPOINTS = frozenset(
    {
        "accounts",
        "place_order",
        "cancel_order",
        "place_stop_order",
        "cancel_stop_order",
        "close_all_positions",
        "close_position",
    }
)
_FAULT_ENDPOINTS: frozenset[str] = _DEFAULT_ENDPOINTS | {"access_token", "hub"}
_K = TypeVar("_K")


#: The kinds `FaultPlan.uniform` spreads its rate over by default: the transient failures a
#: retrying client should absorb without side effects.
_TRANSIENT_KINDS = (
    FaultKind.RATE_LIMITED,
    FaultKind.SERVER_ERROR,
    FaultKind.BAD_GATEWAY,
    FaultKind.UNAVAILABLE,
    FaultKind.RESET,
)


def _need_mapping(name: str, value: object, of: str) -> None:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping of {of}, got {type(value).__name__}")


def _need_list(name: str, value: object, of: str) -> None:
    # One Fault where a list belongs is the usual slip: say so rather than "not iterable".
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of {of}, got {type(value).__name__}")


def _convert_rates(rates: Mapping[Any, float]) -> Mapping[FaultKind, float]:
    _need_mapping("rates", rates, "FaultKind to a probability")
    converted: dict[FaultKind, float] = {}
    for key, rate in rates.items():
        try:
            kind = FaultKind(key)
        except ValueError:
            raise ValueError(f"rates: unknown fault kind {key!r}") from None
        converted[kind] = rate
    # Declaration order, so the cumulative draw does not depend on the caller's dict order.
    return types.MappingProxyType({k: converted[k] for k in FaultKind if k in converted})


def _convert_scripts(
    scripts: Mapping[str, Sequence[Fault | None]],
) -> Mapping[str, tuple[Fault | None, ...]]:
    _need_mapping("scripts", scripts, "order or position id to a list of Fault or None")
    for key, value in scripts.items():
        _need_list(f"scripts[{key!r}]", value, "Fault or None, one per request")
    return types.MappingProxyType({key: tuple(value) for key, value in scripts.items()})


def _convert_sequence(entries: Iterable[Fault | None]) -> tuple[Fault | None, ...]:
    _need_list("sequence", entries, "Fault or None, one per request")
    return tuple(entries)


def _convert_endpoints(names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str):
        raise TypeError("endpoints must be a collection of endpoint names, not one str")
    _need_list("endpoints", names, "endpoint names")
    endpoints = frozenset(names)
    for name in endpoints:
        if not isinstance(name, str):
            raise TypeError(f"endpoints must hold endpoint names (str), got {name!r}")
    return endpoints


def _convert_hub(entries: Iterable[HubFault | None]) -> tuple[HubFault | None, ...]:
    _need_list("hub", entries, "HubFault or None, one per hub connection")
    return tuple(entries)


def _convert_positions_hub(entries: Iterable[HubFault | None]) -> tuple[HubFault | None, ...]:
    _need_list("positions_hub", entries, "HubFault or None, one per OpenPositions stream")
    return tuple(entries)


def _convert_hub_rates(rates: Mapping[HubFault, float]) -> Mapping[HubFault, float]:
    _need_mapping("hub_rates", rates, "HubFault to a probability")
    # The caller's order is kept: the cumulative draw walks it.
    return types.MappingProxyType(dict(rates))


def _convert_positions_hub_rates(rates: Mapping[HubFault, float]) -> Mapping[HubFault, float]:
    _need_mapping("positions_hub_rates", rates, "HubFault to a probability")
    return types.MappingProxyType(dict(rates))


def _check_hub_rates(name: str, rates: Mapping[HubFault, float]) -> None:
    for fault, rate in rates.items():
        if not isinstance(fault, HubFault):
            raise TypeError(f"{name} keys must be HubFault values, got {fault!r}")
        _check_rate(f"{name}[{fault!r}]", rate)
    total = math.fsum(rates.values())
    if total > 1.0 + 1e-9:
        raise ValueError(f"{name} must add up to at most 1, got {total!r}")


def _check_no_refuse(name: str, faults: Iterable[HubFault | None]) -> None:
    for fault in faults:
        if fault is not None and fault.kind is HubFaultKind.REFUSE:
            raise ValueError(
                f"{name} cannot hold {fault!r}: a refusal answers the websocket upgrade, "
                "before the client names a stream; put it in hub or hub_rates"
            )


def _check_entries(
    name: str, entries: Iterable[object], kind: type[Fault] | type[HubFault] = Fault
) -> None:
    for index, entry in enumerate(entries):
        if entry is not None and not isinstance(entry, kind):
            raise TypeError(f"{name}[{index}] must be a {kind.__name__} or None, got {entry!r}")


def _check_rate(name: str, rate: object) -> None:
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise TypeError(f"{name} must be a number, got {rate!r}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {rate!r}")


@attrs.frozen
class FaultPlan:
    """Which requests fail and how: scripts per order or position id, a sequence, rates.

    For each request on one of `endpoints` (after the token and `accountId` checks):

    1. if it names an order id (a cancel) or a position id (a position close) that has a
       script, the n-th request for that id gets the n-th
       entry (None = no fault), and no fault at all once the script is used up; a request
       that names no id (a bulk close, a placement, listing accounts) takes the script keyed
       by its endpoint name (`scripts={"close_all_positions": [Fault.lost_response()]}`);
    2. otherwise the n-th such request gets the n-th entry of `sequence`;
    3. after the sequence, each kind in `rates` strikes with its probability, drawn from
       `(seed, order id or endpoint, n)` so the outcome does not depend on arrival order.

    Hub connections (upgrades that pass the token check) have their own count: the n-th one
    gets the n-th entry of `hub`, and after that each `HubFault` in `hub_rates` strikes with
    its probability, drawn from `(seed, n)`. A REFUSE answers the upgrade and a SILENCE
    silences the whole connection; the other kinds strike the connection's first OpenOrders
    snapshot (OpenPositions is not touched by them).

    OpenPositions streams are counted apart: the n-th connection that invokes OpenPositions
    gets the n-th entry of `positions_hub` (then `positions_hub_rates`, drawn from
    `(seed, n)`) at that first invocation, whatever its other streams and connections do.
    REFUSE cannot be there (the upgrade comes before any stream is named); SILENCE silences
    the connection from that invocation on.

    For example:

    ```python
    FaultPlan(scripts={order_id: [Fault.rate_limited(), Fault.reset(), None]})
    FaultPlan.uniform(0.2, seed=7)
    FaultPlan(hub=[HubFault.close(), None, HubFault.refuse(503)])
    FaultPlan(hub_rates={HubFault.drop(): 0.1, HubFault.silence(): 0.05}, seed=3)
    FaultPlan(positions_hub=[HubFault.close()])  # before the first positions snapshot
    ```
    """

    rates: Mapping[FaultKind, float] = attrs.field(
        factory=dict, converter=_convert_rates, hash=False
    )
    scripts: Mapping[str, Sequence[Fault | None]] = attrs.field(
        factory=dict, converter=_convert_scripts, hash=False
    )
    sequence: Sequence[Fault | None] = attrs.field(default=(), converter=_convert_sequence)
    seed: int = 0
    #: `Retry-After` of rate-drawn RATE_LIMITED faults.
    retry_after: float | str | None = 0.05
    #: Delay of rate-drawn SLOW faults and of scripted ones without their own `delay`.
    slow_delay: float = 5.0
    endpoints: frozenset[str] = attrs.field(
        default=_DEFAULT_ENDPOINTS, converter=_convert_endpoints
    )
    #: Hub faults in connection order: the n-th hub connection gets the n-th entry.
    hub: Sequence[HubFault | None] = attrs.field(default=(), converter=_convert_hub)
    #: After `hub`: each fault strikes a hub connection with its probability.
    hub_rates: Mapping[HubFault, float] = attrs.field(
        factory=dict, converter=_convert_hub_rates, hash=False
    )
    #: OpenPositions faults: the n-th connection that invokes OpenPositions gets the n-th.
    positions_hub: Sequence[HubFault | None] = attrs.field(
        default=(), converter=_convert_positions_hub
    )
    #: After `positions_hub`: each fault strikes an OpenPositions stream with its probability.
    positions_hub_rates: Mapping[HubFault, float] = attrs.field(
        factory=dict, converter=_convert_positions_hub_rates, hash=False
    )

    def __attrs_post_init__(self) -> None:
        for kind, rate in self.rates.items():
            _check_rate(f"rates[{kind.name}]", rate)
        if FaultKind.RESPONSE in self.rates:
            raise ValueError("rates cannot hold RESPONSE; script Fault.response() instead")
        total = math.fsum(self.rates.values())
        if total > 1.0 + 1e-9:
            raise ValueError(f"rates must add up to at most 1, got {total!r}")
        for key, script in self.scripts.items():
            if not isinstance(key, str):
                raise TypeError(f"scripts keys must be order or position ids (str), got {key!r}")
            _check_entries(f"scripts[{key!r}]", script)
        _check_entries("sequence", self.sequence)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"seed must be an int, got {self.seed!r}")
        check_retry_after("retry_after", self.retry_after)
        check_delay("slow_delay", self.slow_delay)
        unknown = self.endpoints - _FAULT_ENDPOINTS
        if unknown:
            raise ValueError(
                f"endpoints: unknown endpoint(s) {sorted(unknown)}; "
                f"choose from {sorted(_FAULT_ENDPOINTS)}"
            )
        _check_entries("hub", self.hub, HubFault)
        _check_hub_rates("hub_rates", self.hub_rates)
        _check_entries("positions_hub", self.positions_hub, HubFault)
        _check_hub_rates("positions_hub_rates", self.positions_hub_rates)
        _check_no_refuse("positions_hub", self.positions_hub)
        _check_no_refuse("positions_hub_rates", self.positions_hub_rates)

    @classmethod
    def none(cls) -> FaultPlan:
        """A plan that never injects a fault."""
        return cls()

    @classmethod
    def uniform(
        cls,
        rate: float,
        *,
        seed: int = 0,
        kinds: Iterable[FaultKind] = _TRANSIENT_KINDS,
        slow_delay: float = 5.0,
        retry_after: float | str | None = 0.05,
    ) -> FaultPlan:
        """Fail each eligible request with probability `rate`, split evenly over `kinds`.

        The default kinds are the transient ones without side effects: RATE_LIMITED,
        SERVER_ERROR, BAD_GATEWAY, UNAVAILABLE and RESET.
        """
        chosen = [FaultKind(kind) for kind in dict.fromkeys(kinds)]
        if not chosen:
            raise ValueError("kinds must name at least one fault kind")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError(f"rate must be between 0 and 1, got {rate!r}")
        share = rate / len(chosen)
        return cls(
            rates=dict.fromkeys(chosen, share),
            seed=seed,
            slow_delay=slow_delay,
            retry_after=retry_after,
        )

    def draw(self, key: str, n: int) -> Fault | None:
        """The rate-drawn fault for the `n`-th request on `key` (an order or position id, or
        an endpoint).

        A pure function of `(seed, key, n)` and the rates: the same plan always answers the
        same, whatever else is going on.
        """
        if not self.rates:
            return None
        kind = _pick(self.rates, _unit_interval(f"{self.seed}:{key}:{n}"))
        return None if kind is None else self._fault_of_kind(kind)

    def draw_hub(self, n: int) -> HubFault | None:
        """The rate-drawn hub fault for the `n`-th hub connection (counted from 0).

        A pure function of `(seed, n)` and `hub_rates`, walked in the mapping's order.
        """
        if not self.hub_rates:
            return None
        return _pick(self.hub_rates, _unit_interval(f"{self.seed}:hub-connection:{n}"))

    def draw_positions_hub(self, n: int) -> HubFault | None:
        """The rate-drawn fault for the `n`-th OpenPositions stream (counted from 0).

        A pure function of `(seed, n)` and `positions_hub_rates`, independent of `draw_hub`.
        """
        if not self.positions_hub_rates:
            return None
        point = _unit_interval(f"{self.seed}:positions-stream:{n}")
        return _pick(self.positions_hub_rates, point)

    def _fault_of_kind(self, kind: FaultKind) -> Fault:
        if kind is FaultKind.RATE_LIMITED:
            return Fault(kind, retry_after=self.retry_after)
        if kind is FaultKind.SLOW:
            return Fault(kind, delay=self.slow_delay)
        return Fault(kind)


def _pick(rates: Mapping[_K, float], point: float) -> _K | None:
    """The entry of `rates` whose slice of [0, 1), laid end to end in order, holds `point`."""
    cumulative = 0.0
    for choice, rate in rates.items():
        cumulative += rate
        if point < cumulative:
            return choice
    return None


def _unit_interval(text: str) -> float:
    """A uniform float in [0, 1) derived from `text`, stable across runs and platforms."""
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64
