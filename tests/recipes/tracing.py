"""OpenTelemetry: a client span for every call the FrontOfficeClient makes."""

import os

from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.trace import TracerProvider

from frontoffice_async import FrontOfficeClient


def make_client(tracer_provider: TracerProvider | None = None) -> FrontOfficeClient:
    """A traced client; `tracer_provider=None` means OpenTelemetry's global provider."""
    return FrontOfficeClient(
        os.environ["FRONTOFFICE_BASE_URL"],
        token=os.environ["FRONTOFFICE_TOKEN"],
        account_id=os.environ["FRONTOFFICE_ACCOUNT_ID"],
        trace_configs=[create_trace_config(tracer_provider=tracer_provider)],
    )
