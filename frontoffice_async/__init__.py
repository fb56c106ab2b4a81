"""Asyncio client for the Front Office trading API: cancel one order, thousands, or all.

Example:
    >>> from frontoffice_async import FrontOfficeClient
    >>> async with FrontOfficeClient(base_url, token=token, account_id=account) as client:
    ...     await client.cancel_order("01K2PF9XS29WN4JZRHMCTTQYJB")
"""

from ._version import __version__
from .auth import OfflineTokenAuth, TokenProvider
from .bulk import BulkCancelResult, CancelOutcome
from .client import FrontOfficeClient
from .errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    BulkCancelError,
    ClientClosedError,
    ConflictError,
    FrontOfficeError,
    HubError,
    InvalidAccountIdError,
    InvalidOrderIdError,
    OrderNotActiveError,
    OrderNotFoundError,
    OrdersStillOpenError,
    PermissionDeniedError,
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
    Order,
    OrderSide,
    OrderSource,
    OrderStatus,
    OrderType,
    PriceTrigger,
    StopOrder,
    StopOrderStatus,
    TimeInForce,
)
from .retry import RetryBudget, RetryEvent, RetryPolicy
from .streams import OpenOrdersStream

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "Account",
    "AccountType",
    "AuthenticationError",
    "BadRequestError",
    "BulkCancelError",
    "BulkCancelResult",
    "CancelOutcome",
    "ClientClosedError",
    "ConflictError",
    "FrontOfficeClient",
    "FrontOfficeError",
    "HubError",
    "InvalidAccountIdError",
    "InvalidOrderIdError",
    "OfflineTokenAuth",
    "OpenOrder",
    "OpenOrdersEvent",
    "OpenOrdersStream",
    "Order",
    "OrderNotActiveError",
    "OrderNotFoundError",
    "OrderSide",
    "OrderSource",
    "OrderStatus",
    "OrderType",
    "OrdersStillOpenError",
    "PermissionDeniedError",
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
