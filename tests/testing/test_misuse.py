"""Misuse of the simulator's API gets a clear TypeError/ValueError/RuntimeError at once.

Cases from the adversarial review: each was accepted silently, or failed with a message that
named neither the argument nor the mistake.
"""

from __future__ import annotations

from typing import Any

import pytest

from frontoffice_async import cli
from frontoffice_async.testing import (
    DEFAULT_ACCOUNT_ID,
    Fault,
    FaultKind,
    FaultPlan,
    FrontOfficeSimulator,
    HubFault,
)

SECRET = "secret value"  # a token with a space: refused, and never echoed


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"accounts": None}, TypeError, "accounts must be a collection"),
        ({"accounts": "685a7eaa360f9e7416221a61"}, TypeError, "not one str"),
        ({"accounts": [1]}, TypeError, "accounts"),
        ({"accounts": ["a b"]}, ValueError, "accounts: account id 'a b' holds spaces"),
        ({"accounts": ["a\n"]}, ValueError, "control"),
        ({"accounts": ["compte-é"]}, ValueError, "non-ASCII"),
        ({"accounts": ["x" * 129]}, ValueError, "1 to 128"),
        ({"token": SECRET}, ValueError, "token must be plain ASCII"),
        ({"token": "tok\n"}, ValueError, "token must be plain ASCII"),
        ({"token": "tök"}, ValueError, "token must be plain ASCII"),
        ({"token": ""}, ValueError, "token must not be empty"),
        ({"token": 5}, TypeError, "token must be a str"),
        ({"offline_token": SECRET}, ValueError, "offline_token must be plain ASCII"),
        ({"seed": "x"}, TypeError, "seed must be an int"),
        ({"seed": None}, TypeError, "seed must be an int"),
        ({"seed": 1.5}, TypeError, "seed must be an int"),
        ({"seed": True}, TypeError, "seed must be an int"),
        ({"host": None}, TypeError, "host must be a str"),
        ({"host": 123}, TypeError, "host must be a str"),
        ({"host": " "}, ValueError, "host must not be empty"),
    ],
)
def test_constructor_refuses(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as caught:
        FrontOfficeSimulator(**kwargs)
    assert SECRET not in str(caught.value)


def test_plain_ascii_ids_and_tokens_are_fine() -> None:
    sim = FrontOfficeSimulator(accounts=["acc-1_B.x", "x" * 128], token="tok.en-_~+/=")
    assert sim.account_ids == ("acc-1_B.x", "x" * 128)
    assert sim.token == "tok.en-_~+/="


async def test_simulate_refuses_an_account_the_cli_could_not_use(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`simulate --accounts 'a b'` used to print an environment the CLI then rejected."""
    assert await cli.run(["simulate", "--port", "0", "--accounts", "a b"]) == 2
    captured = capsys.readouterr()
    assert "holds spaces" in captured.err
    assert "FRONTOFFICE_ACCOUNT_ID" not in captured.out


def test_issue_and_revoke_token_refuse_the_wrong_types() -> None:
    sim = FrontOfficeSimulator()
    with pytest.raises(TypeError, match="account_ids must be a collection of account ids, not"):
        sim.issue_token(DEFAULT_ACCOUNT_ID)
    with pytest.raises(TypeError, match="account_ids"):
        sim.issue_token(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="account_ids"):
        sim.issue_token([5])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown account id 'nope'"):
        sim.issue_token(["nope"])
    with pytest.raises(TypeError, match="token must be a str"):
        sim.revoke_token(None)  # type: ignore[arg-type]
    narrow = sim.issue_token([DEFAULT_ACCOUNT_ID])
    sim.revoke_token(narrow)
    sim.revoke_token("never issued")  # ignored, as documented


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"order_ids": "ab", "count": 2}, TypeError, "order_ids must be a list"),
        ({"order_ids": 5}, TypeError, "order_ids must be a list"),
        ({"status": None}, TypeError, "status must be a str"),
        ({"status": ""}, ValueError, "status must not be empty"),
        ({"market_id": 5}, TypeError, "market_id must be a str"),
        ({"market_id": ""}, ValueError, "market_id must not be empty"),
        ({"order_ids": ["fresh", "taken"], "count": 2}, ValueError, "'taken' already exists"),
    ],
)
def test_add_orders_refuses(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    sim = FrontOfficeSimulator()
    sim.add_orders(1, order_ids=["taken"])
    with pytest.raises(error, match=message):
        sim.add_orders(**{"count": 1, **kwargs})
    assert list(sim.orders) == ["taken"]  # nothing added, not even "fresh"


def test_an_unknown_status_is_allowed_on_purpose() -> None:
    sim = FrontOfficeSimulator()
    [order_id] = sim.add_orders(1, status="SomethingNew")
    assert sim.orders[order_id].status == "SomethingNew"
    assert sim.open_order_ids() == []  # not active: cancelling it gives 400


async def test_a_closed_simulator_refuses_changes_and_stays_readable() -> None:
    sim = FrontOfficeSimulator()
    before = sim.add_orders(1)  # before start: setting the scene
    positions = sim.add_positions(1)
    async with sim:
        order_id = sim.add_orders(1)[0]
        stop_id = sim.add_stop_orders(1)[0]
    for change in (
        lambda: sim.add_orders(1),
        lambda: sim.add_stop_orders(1),
        lambda: sim.update_order(order_id, status="Working"),
        sim.issue_token,
        lambda: sim.revoke_token(sim.token),
        lambda: setattr(sim, "faults", FaultPlan()),
        lambda: sim.add_positions(1),
        lambda: sim.activate_stop_order(stop_id),
        sim.stop_out_on_close,
        lambda: sim.forbid_account(DEFAULT_ACCOUNT_ID),
        lambda: sim.allow_account(DEFAULT_ACCOUNT_ID),
    ):
        with pytest.raises(RuntimeError, match="closed"):
            change()
    assert sim.open_position_ids() == positions
    assert list(sim.positions) == positions
    assert sim.open_stop_order_ids() == [stop_id]
    assert sim.open_order_ids() == [*before, order_id]
    assert sim.orders[order_id].status == "Pending"
    assert sim.requests == []
    assert sim.stats.requests == 0
    assert sim.faults == FaultPlan()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scripts": {"id": Fault.reset()}}, r"scripts\['id'\] must be a list of Fault or None"),
        ({"scripts": None}, "scripts must be a mapping"),
        ({"scripts": [("id", [Fault.reset()])]}, "scripts must be a mapping"),
        ({"endpoints": None}, "endpoints must be a list of endpoint names, got NoneType"),
        ({"endpoints": [5]}, "endpoints must hold endpoint names"),
        ({"sequence": Fault.reset()}, "sequence must be a list of Fault or None"),
        ({"sequence": None}, "sequence must be a list"),
        ({"hub": HubFault.close()}, "hub must be a list of HubFault or None"),
        ({"hub": None}, "hub must be a list"),
        ({"rates": None}, "rates must be a mapping"),
        ({"hub_rates": None}, "hub_rates must be a mapping"),
        ({"hub_rates": [HubFault.drop()]}, "hub_rates must be a mapping"),
        ({"positions_hub": None}, "positions_hub must be a list"),
        ({"positions_hub_rates": None}, "positions_hub_rates must be a mapping"),
    ],
)
def test_fault_plan_names_the_argument(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        FaultPlan(**kwargs)


def test_fault_status_and_fields_must_apply() -> None:
    with pytest.raises(ValueError, match="5xx"):
        Fault.server_error(status=200)
    with pytest.raises(ValueError, match="5xx"):
        Fault(FaultKind.UNAVAILABLE, status=429)
    with pytest.raises(ValueError, match="5xx"):
        Fault(FaultKind.BAD_GATEWAY, status=404)
    with pytest.raises(ValueError, match="status does not apply to a RESET fault"):
        Fault(FaultKind.RESET, status=500)
    with pytest.raises(ValueError, match="delay does not apply to a RATE_LIMITED fault"):
        Fault(FaultKind.RATE_LIMITED, delay=1)
    with pytest.raises(ValueError, match="body does not apply to a SLOW fault"):
        Fault(FaultKind.SLOW, body=b"x")
    with pytest.raises(ValueError, match="retry_after does not apply to a SERVER_ERROR"):
        Fault(FaultKind.SERVER_ERROR, retry_after=1)
    # What each kind does use stays allowed.
    assert Fault.server_error(504).status == 504
    assert Fault(FaultKind.BAD_GATEWAY, status=504).status == 504
    assert Fault(FaultKind.UNAVAILABLE, status=503, retry_after=2).retry_after == 2
    assert Fault.response(200, b"{}", {"X-A": "b"}).headers == {"X-A": "b"}
    assert Fault.response(418).status == 418


def test_close_with_error_needs_an_error() -> None:
    with pytest.raises(ValueError, match=r"needs an error text; HubFault.close\(\)"):
        HubFault.close_with_error(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="error"):
        HubFault.close_with_error("")
    assert HubFault.close_with_error().error == "Connection closed with an error."
