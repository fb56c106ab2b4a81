"""Asyncio client for the Front Office trading API: cancel one order, thousands, or all.

Example:
    >>> from frontoffice_async import FrontOfficeClient
    >>> async with FrontOfficeClient(base_url, token=token, account_id=account) as client:
    ...     await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJB")
"""

# The names load on first use (PEP 562), so `import frontoffice_async` and `frontoffice --help`
# do not pay for aiohttp and cattrs; type checkers and IDEs read the imports below.
from __future__ import annotations

import importlib

from ._version import __version__

# Not `from typing import TYPE_CHECKING`: importing typing alone costs more than the rest of
# this module; type checkers treat this constant as `typing.TYPE_CHECKING`.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._hub.streams import OpenOrdersStream
    from ._stop.guard import Guard
    from .auth import OfflineTokenAuth, TokenProvider
    from .bulk import (
        AccountFlatten,
        BulkCancelResult,
        CancelOutcome,
        FlattenResult,
        PositionsResult,
    )
    from .client import FrontOfficeClient
    from .errors import (
        APIConnectionError,
        APIStatusError,
        APITimeoutError,
        AuthenticationError,
        BadRequestError,
        BulkCancelError,
        CancelNotConfirmedError,
        ClientClosedError,
        ConflictError,
        FlattenError,
        FrontOfficeError,
        GuardError,
        HubError,
        InvalidAccountIdError,
        InvalidOrderIdError,
        InvalidPositionIdError,
        OrderNotActiveError,
        OrderNotFoundError,
        OrdersStillOpenError,
        PermissionDeniedError,
        PositionsStillOpenError,
        RateLimitError,
        ResponseValidationError,
        ServerError,
        TokenProviderError,
    )
    from .models import (
        Account,
        AccountType,
        OpenOrder,
        OpenOrdersEvent,
        OpenPosition,
        Order,
        OrderSide,
        OrderSource,
        OrderStatus,
        OrderType,
        PositionsCloseAck,
        PriceTrigger,
        StopOrder,
        StopOrderStatus,
        TimeInForce,
    )
    from .retry import RetryBudget, RetryEvent, RetryPolicy

__all__ = [
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
]

#: The modules that hold the public names, cheapest first.
_HOMES = ("errors", "models", "retry", "auth", "bulk", "_hub.streams", "_stop.guard", "client")


def __getattr__(name: str) -> Any:
    if name in __all__:
        for home in _HOMES:
            module = importlib.import_module(f".{home}", __name__)
            if name in module.__all__:
                value = getattr(module, name)
                globals()[name] = value  # the next lookup is a plain one
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
