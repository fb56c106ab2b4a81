"""The public surface: what `__init__` exports, and that every public name is documented."""

from __future__ import annotations

import inspect
import sys

import pytest

import frontoffice_async
import frontoffice_async.testing

EXPECTED = {
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Account",
    "AccountFlatten",
    "AccountType",
    "AuthenticationError",
    "BadRequestError",
    "BulkCancelError",
    "BulkCancelResult",
    "CancelNotConfirmedError",
    "CancelOutcome",
    "ClientClosedError",
    "ConflictError",
    "FlattenError",
    "FlattenResult",
    "FrontOfficeClient",
    "FrontOfficeError",
    "Guard",
    "GuardError",
    "HubError",
    "InvalidAccountIdError",
    "InvalidOrderIdError",
    "InvalidPositionIdError",
    "OfflineTokenAuth",
    "OpenOrder",
    "OpenOrdersEvent",
    "OpenOrdersStream",
    "OpenPosition",
    "Order",
    "OrderNotActiveError",
    "OrderNotFoundError",
    "OrderSide",
    "OrderSource",
    "OrderStatus",
    "OrderType",
    "OrdersStillOpenError",
    "PermissionDeniedError",
    "PositionsCloseAck",
    "PositionsResult",
    "PositionsStillOpenError",
    "PriceTrigger",
    "RateLimitError",
    "ResponseValidationError",
    "RetryBudget",
    "RetryEvent",
    "RetryPolicy",
    "ServerError",
    "StopOrder",
    "StopOrderStatus",
    "TimeInForce",
    "TokenProvider",
    "TokenProviderError",
    "__version__",
}


def test_all_is_pinned() -> None:
    assert set(frontoffice_async.__all__) == EXPECTED
    assert len(frontoffice_async.__all__) == len(EXPECTED)  # no duplicates


def test_every_export_exists() -> None:
    for name in frontoffice_async.__all__:
        assert hasattr(frontoffice_async, name), name


def _public_members(cls: type) -> list[tuple[str, object]]:
    """Methods and properties a user reaches through the class (enum members excluded)."""
    return [
        (member, value)
        for member, value in vars(cls).items()
        if not member.startswith("_")
        and (inspect.isfunction(value) or isinstance(value, property | classmethod))
    ]


def test_every_public_name_has_a_docstring() -> None:
    undocumented = []
    for module in (frontoffice_async, frontoffice_async.testing):
        for name in module.__all__:
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue
            if not (obj.__doc__ or "").strip():
                undocumented.append(name)
            if inspect.isclass(obj):
                for member, value in _public_members(obj):
                    doc = getattr(value, "__doc__", None) or ""
                    if not doc.strip():
                        undocumented.append(f"{name}.{member}")
    assert undocumented == []


def test_contract_names_from_the_design() -> None:
    client = frontoffice_async.FrontOfficeClient
    for method in (
        "cancel_order",
        "cancel_stop_order",
        "list_accounts",
        "cancel_orders",
        "iter_cancel_orders",
        "open_orders",
        "cancel_all_orders",
        "cancel_stop_orders",
        "stream_open_orders",
        "with_options",
        "close",
    ):
        assert callable(getattr(client, method)), method
    policy = frontoffice_async.RetryPolicy()
    assert (policy.max_attempts, policy.base_delay, policy.max_delay) == (4, 0.1, 5.0)
    assert policy.retry_statuses == frozenset({429, 500, 502, 503, 504})
    assert policy.retry_connection_errors is True
    assert (policy.max_retry_after, policy.deadline) == (30.0, 30.0)
    assert issubclass(frontoffice_async.APITimeoutError, frontoffice_async.APIConnectionError)
    assert issubclass(frontoffice_async.BulkCancelError, ExceptionGroup)
    assert issubclass(frontoffice_async.InvalidOrderIdError, ValueError)
    assert issubclass(frontoffice_async.OrderNotActiveError, frontoffice_async.BadRequestError)
    assert issubclass(frontoffice_async.ClientClosedError, RuntimeError)
    for name in ("HubError", "TokenProviderError", "OrdersStillOpenError"):
        assert issubclass(getattr(frontoffice_async, name), frontoffice_async.FrontOfficeError)
    result = frontoffice_async.BulkCancelResult[frontoffice_async.Order]([])
    for attribute in ("remaining", "verified", "unreadable", "not_active", "as_dict"):
        assert hasattr(result, attribute), attribute


def test_public_modules_export_only_public_names() -> None:
    from frontoffice_async import auth, bulk, client, errors, models, retry  # noqa: PLC0415

    for module in (auth, bulk, client, errors, models, retry):
        # A public module's `__all__` is its share of the package's: machinery it keeps for
        # its siblings (`retry.decide`) is not in it.
        assert set(module.__all__) <= set(frontoffice_async.__all__), module.__name__
        for name in module.__all__:
            assert not name.startswith("_"), f"{module.__name__}.{name}"
            obj = getattr(module, name)
            if inspect.isclass(obj) or inspect.isfunction(obj):  # aliases carry no docstring
                assert (obj.__doc__ or "").strip(), f"{module.__name__}.{name}"


def test_models_are_frozen_slotted_and_import_no_cattrs() -> None:
    from frontoffice_async import models  # noqa: PLC0415

    source = inspect.getsource(models)
    assert "cattrs" not in source
    for cls in (models.Order, models.StopOrder, models.OpenOrder, models.Account):
        assert "__slots__" in vars(cls)
        assert cls.__setattr__ is not object.__setattr__  # frozen


def test_the_streams_module_of_0_1_is_a_deprecated_alias() -> None:
    sys.modules.pop("frontoffice_async.streams", None)
    with pytest.warns(DeprecationWarning, match="import OpenOrdersStream from frontoffice_async"):
        from frontoffice_async import streams  # noqa: PLC0415

    assert streams.OpenOrdersStream is frontoffice_async.OpenOrdersStream
    assert streams.__all__ == ["OpenOrdersStream"]
