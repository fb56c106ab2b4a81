"""Deprecated alias: `OpenOrdersStream` is importable from `frontoffice_async` itself.

This module moved into the private hub package in 0.2.0 and will be removed in 0.3.0.
"""

import warnings

from ._hub.streams import OpenOrdersStream

__all__ = ["OpenOrdersStream"]

warnings.warn(
    "frontoffice_async.streams is deprecated; import OpenOrdersStream from frontoffice_async",
    DeprecationWarning,
    stacklevel=2,
)
