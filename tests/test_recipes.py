"""The recipes of docs/web.md (tests/recipes/), run against the simulator: a FastAPI app with
a panic button, an aiohttp app, and OpenTelemetry tracing that never records the token.

docs/web.md shows the recipe files and the sections of this file marked `# docs: start NAME`
... `# docs: end NAME`, in blocks that tests/test_docs.py checks are exactly these texts.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer
from asgi_lifespan import LifespanManager
from opentelemetry.instrumentation.aiohttp_client import create_trace_config
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from yarl import URL

from frontoffice_async import FrontOfficeClient, OfflineTokenAuth, OrderNotFoundError
from frontoffice_async.testing import Fault, FaultPlan, FrontOfficeSimulator
from frontoffice_async.testing.pytest_plugin import SimulatorFactory

from .recipes import aiohttp_app, fastapi_app, tracing

WEB_PAGE = Path(__file__).resolve().parent.parent / "docs" / "web.md"
UNKNOWN_ID = "01K2ZZZZZZZZZZZZZZZZZZZZZZ"
ORDERS = "/frontoffice/api/v3/orders/"
STOP_ORDERS = "/frontoffice/api/v3/stop-orders/"
HUB_PREFIX = "/frontoffice/ws/"


# docs: start settings
@pytest.fixture
def simulator(
    frontoffice_simulator: FrontOfficeSimulator, monkeypatch: pytest.MonkeyPatch
) -> FrontOfficeSimulator:
    """The simulator, with the settings the app reads pointing at it."""
    monkeypatch.setenv("FRONTOFFICE_BASE_URL", frontoffice_simulator.url)
    monkeypatch.setenv("FRONTOFFICE_TOKEN", frontoffice_simulator.token)
    monkeypatch.setenv("FRONTOFFICE_ACCOUNT_ID", frontoffice_simulator.account_ids[0])
    return frontoffice_simulator


# docs: end settings


def test_the_page_shows_every_recipe_file_and_test_section() -> None:
    """The page shows each recipe file and each marked section of this file, in a block
    marked `same-as` (tests/test_docs.py checks that the block is exactly that text)."""
    page = WEB_PAGE.read_text(encoding="utf-8")
    recipes = sorted(p.name for p in (Path(__file__).parent / "recipes").glob("[!_]*.py"))
    assert recipes == ["aiohttp_app.py", "fastapi_app.py", "tracing.py"]
    for name in recipes:
        assert f"<!-- same-as: tests/recipes/{name} -->\n```python\n" in page
    sections = re.findall(r"^# docs: start ([\w-]+)$", Path(__file__).read_text(), re.MULTILINE)
    assert sections == ["settings", "fastapi-test", "aiohttp-test", "tracing-test"]
    for section in sections:
        assert f"<!-- same-as: tests/test_recipes.py:{section} -->\n```python\n" in page


# --- FastAPI: lifespan, cancel route, panic button ----------------------------------------------


# docs: start fastapi-test
async def test_panic_cancels_every_open_order(simulator: FrontOfficeSimulator) -> None:
    simulator.add_orders(25)
    app = fastapi_app.app
    async with (
        LifespanManager(app) as manager,  # runs the lifespan: the client opens...
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://app"
        ) as http,
    ):
        response = await http.post("/panic")
    assert app.state.frontoffice.closed  # ...and closes with the app

    assert response.status_code == 200
    result = response.json()  # BulkCancelResult.as_dict()
    assert result["verified"] is True
    assert result["counts"] == {"cancelled": 25, "not_found": 0, "not_active": 0, "failed": 0}
    assert simulator.open_order_ids() == []


# docs: end fastapi-test


async def _fastapi(
    simulator: FrontOfficeSimulator, *requests: tuple[str, str]
) -> list[httpx.Response]:
    """Run the FastAPI app's whole life around `requests` (sent concurrently)."""
    app = fastapi_app.app
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://app"
        ) as http,
    ):
        client = app.state.frontoffice
        assert isinstance(client, FrontOfficeClient)
        assert not client.closed
        responses = await asyncio.gather(*(http.request(m, url) for m, url in requests))
        assert app.state.frontoffice is client  # one client for the app's whole life
    assert app.state.frontoffice.closed
    return list(responses)


async def test_fastapi_cancel_route_shares_one_client(simulator: FrontOfficeSimulator) -> None:
    ids = simulator.add_orders(20)
    responses = await _fastapi(
        simulator, *(("DELETE", f"/orders/{i}") for i in ids), ("DELETE", f"/orders/{UNKNOWN_ID}")
    )
    assert [r.status_code for r in responses] == [200] * 20 + [404]
    assert [(r.json()["order_id"], r.json()["status"]) for r in responses[:20]] == [
        (i, "Cancelled") for i in ids
    ]
    assert simulator.open_order_ids() == []
    assert len(simulator.requests) == 21


async def test_fastapi_cancel_route_maps_other_errors_to_502(
    simulator: FrontOfficeSimulator,
) -> None:
    [order_id] = simulator.add_orders(1)
    simulator.faults = FaultPlan(scripts={order_id: [Fault.response(403)]})
    [response] = await _fastapi(simulator, ("DELETE", f"/orders/{order_id}"))
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["type"], error["status"]) == ("PermissionDeniedError", 403)
    assert simulator.token not in response.text
    assert simulator.open_order_ids() == [order_id]


async def test_panic_with_a_market_cancels_only_that_market(
    simulator: FrontOfficeSimulator,
) -> None:
    eth = simulator.add_orders(6, market_id="spot.eth_usdt")
    btc = simulator.add_orders(4, market_id="spot.btc_usdt")
    [response] = await _fastapi(simulator, ("POST", "/panic?market_id=spot.eth_usdt"))
    assert response.status_code == 200
    result = response.json()
    assert result["verified"] is True
    assert sorted(o["order_id"] for o in result["outcomes"]) == sorted(eth)
    assert {o["category"] for o in result["outcomes"]} == {"cancelled"}
    assert result["filtered_out"] == {"spot.btc_usdt": 4}
    assert sorted(simulator.open_order_ids()) == sorted(btc)


async def test_panic_reports_502_and_what_is_left_when_an_order_stays_open(
    simulator: FrontOfficeSimulator,
) -> None:
    ids = simulator.add_orders(5)
    stuck = ids[0]
    # 409 "busy": a failure (the order may be live) that is not resent within a call, so
    # each of the three rounds tries it once and it is still open at the end.
    simulator.faults = FaultPlan(scripts={stuck: [Fault.response(409)] * 3})
    [response] = await _fastapi(simulator, ("POST", "/panic"))
    assert response.status_code == 502
    result = response.json()
    assert result["verified"] is False
    assert result["rounds"] == 3
    assert result["counts"] == {"cancelled": 4, "not_found": 0, "not_active": 0, "failed": 1}
    [failed] = [o for o in result["outcomes"] if o["category"] == "failed"]
    assert failed["order_id"] == stuck
    assert failed["error"]["type"] == "ConflictError"
    assert [o["order_id"] for o in result["remaining"]] == [stuck]
    assert simulator.open_order_ids() == [stuck]
    assert len(simulator.requests_for(stuck)) == 3


async def test_panic_without_a_snapshot_is_a_502_that_names_no_token(
    simulator: FrontOfficeSimulator,
) -> None:
    ids = simulator.add_orders(3)
    simulator.revoke_token(simulator.token)
    [response] = await _fastapi(simulator, ("POST", "/panic"))
    assert response.status_code == 502
    error = response.json()["error"]
    assert (error["type"], error["status"]) == ("AuthenticationError", 401)
    assert simulator.token not in response.text
    assert sorted(simulator.open_order_ids()) == sorted(ids)


# --- aiohttp: cleanup_ctx -----------------------------------------------------------------------


# docs: start aiohttp-test
async def test_aiohttp_app_cancels_through_one_client(simulator: FrontOfficeSimulator) -> None:
    ids = simulator.add_orders(20)
    app = aiohttp_app.make_app()
    async with TestClient(TestServer(app)) as http:  # runs cleanup_ctx: the client opens...
        responses = await asyncio.gather(*(http.delete(f"/orders/{i}") for i in ids))
        assert [r.status for r in responses] == [200] * 20
        assert [(await r.json())["status"] for r in responses] == ["Cancelled"] * 20

        response = await http.delete(f"/orders/{UNKNOWN_ID}")
        assert response.status == 404
    assert app[aiohttp_app.FRONTOFFICE].closed  # ...and closes with the app
    assert simulator.open_order_ids() == []


# docs: end aiohttp-test


async def test_aiohttp_app_maps_other_errors_to_502(simulator: FrontOfficeSimulator) -> None:
    [order_id] = simulator.add_orders(1)
    simulator.faults = FaultPlan(scripts={order_id: [Fault.response(403)]})
    async with TestClient(TestServer(aiohttp_app.make_app())) as http:
        response = await http.delete(f"/orders/{order_id}")
        assert response.status == 502
        text = await response.text()
    assert "403" in text
    assert simulator.token not in text
    assert simulator.open_order_ids() == [order_id]


# --- OpenTelemetry ------------------------------------------------------------------------------


class SecretInSpanError(AssertionError):
    """A secret (token) was found in a recorded span."""


def assert_no_secret(spans: Sequence[ReadableSpan], secrets: Iterable[str]) -> None:
    """No span's name, attributes, events, links, status or resource holds a secret."""
    secrets = [s for s in secrets if s]
    assert secrets
    for span in spans:
        texts = [span.name, span.to_json()]  # the JSON holds every field of the span
        texts += [str(v) for v in (span.attributes or {}).values()]
        for event in span.events:
            texts += [event.name, *(str(v) for v in (event.attributes or {}).values())]
        for secret in secrets:
            if any(secret in text for text in texts):
                raise SecretInSpanError(f"span {span.name!r} records a token: {texts[1]}")


# docs: start tracing-test
def attribute(span: ReadableSpan, *names: str) -> Any:
    """The first of `names` the span has: the instrumentation uses the old HTTP semantic
    conventions by default and the stable ones under OTEL_SEMCONV_STABILITY_OPT_IN."""
    attributes = span.attributes or {}
    for name in names:
        if name in attributes:
            return attributes[name]
    raise AssertionError(f"span {span.name!r} has none of {names}: {dict(attributes)}")


def summary(span: ReadableSpan) -> tuple[str, str, int]:
    """(method, URL path, status) of an aiohttp client span."""
    method = attribute(span, "http.request.method", "http.method")
    url = URL(attribute(span, "url.full", "http.url"))
    status = attribute(span, "http.response.status_code", "http.status_code")
    return method, url.path, status


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    """Keeps the finished spans in memory, for the test to read."""
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    """A provider of the test's own (the global one is left alone)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


async def test_each_call_is_one_client_span(
    simulator: FrontOfficeSimulator,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    [order_id] = simulator.add_orders(1)
    async with tracing.make_client(tracer_provider) as client:
        await client.cancel_order(order_id)

    [span] = exporter.get_finished_spans()
    assert span.kind is SpanKind.CLIENT
    assert span.name == "DELETE"
    assert summary(span) == ("DELETE", f"/frontoffice/api/v3/orders/{order_id}", 200)


# docs: end tracing-test


async def test_spans_carry_method_path_and_status_and_never_the_token(
    simulator: FrontOfficeSimulator,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    ok, retried = simulator.add_orders(2)
    [stop] = simulator.add_stop_orders(1)
    # One 429 with `Retry-After: 0` before the cancel goes through: two requests, no wait.
    simulator.faults = FaultPlan(scripts={retried: [Fault.rate_limited(retry_after=0)]})
    async with tracing.make_client(tracer_provider) as client:
        await client.list_accounts()
        await client.cancel_order(ok)
        await client.cancel_order(retried)
        with pytest.raises(OrderNotFoundError):
            await client.cancel_order(UNKNOWN_ID)
        await client.cancel_stop_order(stop)
        result = await client.cancel_orders([UNKNOWN_ID, ok])

    assert len(simulator.requests_for(retried)) == 2
    assert result.not_found == [UNKNOWN_ID]
    assert result.not_active == [ok]  # cancelled above: final now
    spans = exporter.get_finished_spans()
    assert all(span.kind is SpanKind.CLIENT for span in spans)
    # A call is one span: its retries happen inside it, and it ends with the last answer.
    assert sorted(summary(span) for span in spans) == sorted(
        [
            ("GET", "/frontoffice/api/v3/accounts", 200),
            ("DELETE", ORDERS + ok, 200),
            ("DELETE", ORDERS + retried, 200),
            ("DELETE", ORDERS + UNKNOWN_ID, 404),
            ("DELETE", STOP_ORDERS + stop, 200),
            ("DELETE", ORDERS + UNKNOWN_ID, 404),
            ("DELETE", ORDERS + ok, 400),
        ]
    )
    assert_no_secret(spans, [simulator.token, f"Bearer {simulator.token}"])


async def test_an_offline_token_and_its_exchange_stay_out_of_spans(
    frontoffice_simulator_factory: SimulatorFactory,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    offline = "offline-SENTINEL-0c4f2a91"
    sim = await frontoffice_simulator_factory(offline_token=offline)
    [order_id] = sim.add_orders(1)
    async with FrontOfficeClient(
        sim.url,
        token=OfflineTokenAuth(offline),
        account_id=sim.account_ids[0],
        trace_configs=[create_trace_config(tracer_provider=tracer_provider)],
    ) as client:
        await client.cancel_order(order_id)
    spans = exporter.get_finished_spans()
    methods = sorted(summary(span)[0] for span in spans)
    assert methods == ["DELETE", "POST"]  # the exchange, then the cancel
    assert_no_secret(spans, [offline, sim.token])


async def test_the_hub_and_its_access_token_stay_out_of_spans(
    simulator: FrontOfficeSimulator,
    tracer_provider: TracerProvider,
    exporter: InMemorySpanExporter,
) -> None:
    ids = simulator.add_orders(3)
    async with tracing.make_client(tracer_provider) as client:
        open_now = await client.open_orders()
        result = await client.cancel_all_orders()
    assert sorted(o.order_id for o in open_now) == sorted(ids)
    assert result.verified
    assert len(result.cancelled) == 3

    spans = exporter.get_finished_spans()
    assert_no_secret(spans, [simulator.token])
    expected = [("DELETE", ORDERS + i, 200) for i in ids]
    assert sorted(summary(span) for span in spans) == sorted(expected)
    assert not any(summary(span)[1].startswith(HUB_PREFIX) for span in spans)
