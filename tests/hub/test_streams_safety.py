"""The OpenOrders hub, safely: the token reaches no error, no redirect and no tracer; hub texts
stay on one line; the hub keeps the base URL's path prefix; the client's lifecycle rules it."""

from __future__ import annotations

import asyncio
import socket
import traceback
from typing import Any
from urllib.parse import quote, quote_plus

import aiohttp
import pytest

from frontoffice_async import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    FrontOfficeClient,
    FrontOfficeError,
    HubError,
    PermissionDeniedError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
    TokenProviderError,
)
from frontoffice_async._http.answers import mask
from frontoffice_async.errors import ClientClosedError
from frontoffice_async.testing import DEFAULT_ACCOUNT_ID, FrontOfficeSimulator

from .._scripted_hub import PING, RS, Conn, ScriptedHubs, item, message, open_order
from ..support import frame_locals

TOKEN = "tok-SENTINEL-7c21e9"
ORDER = open_order()
SNAPSHOT = item([ORDER])


async def no_sleep(delay: float) -> None:
    await asyncio.sleep(0)


def hub_client(url: str, **kwargs: Any) -> FrontOfficeClient:
    kwargs.setdefault("token", TOKEN)
    kwargs.setdefault("sleep", no_sleep)
    return FrontOfficeClient(url, account_id=DEFAULT_ACCOUNT_ID, **kwargs)


def chain(error: BaseException) -> list[BaseException]:
    """The error and everything reachable from it: causes, contexts, group members."""
    seen: dict[int, BaseException] = {}
    stack = [error]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen[id(current)] = current
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
    return list(seen.values())


def assert_token_unreachable(error: BaseException, token: str = TOKEN) -> None:
    for reached in chain(error):
        texts = [str(reached), repr(reached), repr(reached.args)]
        texts += getattr(reached, "__notes__", [])
        texts += [str(getattr(reached, name, "")) for name in ("url", "body", "message")]
        texts += [str(dict(getattr(reached, "headers", None) or {}))]
        for text in texts:
            assert token not in text, (type(reached).__name__, text)
    assert token not in "".join(traceback.format_exception(error))


# --- the token reaches no error ----------------------------------------------------------------

ECHO = f"you sent {TOKEN}"
EXCHANGE = f"/frontoffice/ws/v4/account?access_token={TOKEN}"


async def refused_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("conn", "error"),
    [
        pytest.param(
            Conn(status=401, body=f'{{"title":"{ECHO}"}}', headers={"X-Echo": EXCHANGE}),
            AuthenticationError,
            id="401 echoing the token",
        ),
        pytest.param(Conn(status=403, body=ECHO), PermissionDeniedError, id="403"),
        pytest.param(Conn(status=500, body=f"<title>{ECHO}</title>"), ServerError, id="500"),
        pytest.param(
            Conn(status=302, headers={"Location": f"http://example.invalid{EXCHANGE}"}),
            APIStatusError,
            id="redirect",
        ),
        pytest.param(Conn(status=0), APIConnectionError, id="dropped upgrade"),
        pytest.param(Conn(handshake_reply=f'{{"error":"{ECHO}"}}' + RS), HubError, id="handshake"),
        pytest.param(Conn([message({"type": 7, "error": ECHO})]), HubError, id="Close"),
        pytest.param(
            Conn([message({"type": 3, "invocationId": "0", "error": ECHO})]),
            HubError,
            id="Completion",
        ),
        pytest.param(Conn([message({"type": 7})]), HubError, id="closes until attempts run out"),
        pytest.param(Conn([f"{ECHO} is not json" + RS]), ResponseValidationError, id="garbage"),
        pytest.param(Conn([PING]), APITimeoutError, id="silence"),
    ],
)
async def test_no_hub_error_reaches_the_token(
    hubs: ScriptedHubs, conn: Conn, error: type[FrontOfficeError]
) -> None:
    script = await hubs.start(conn)
    async with hub_client(script.url, retry=RetryPolicy(max_attempts=2)) as client:
        with pytest.raises(error) as excinfo:
            await client.open_orders(timeout=0.3)
    assert type(excinfo.value) is error
    assert script.queries[0] == {"access_token": TOKEN}  # it did go out, in the query only
    assert_token_unreachable(excinfo.value)


# A token the client accepts, with characters every URL encoder writes differently.
ODD_TOKEN = "abc+def/ghi=jkl&x%41"
ODD_FORMS = {
    "raw": ODD_TOKEN,
    "quote, nothing safe": quote(ODD_TOKEN, safe=""),
    "quote": quote(ODD_TOKEN),
    "quote_plus": quote_plus(ODD_TOKEN),
    "lower-case hex": quote(ODD_TOKEN, safe="").lower(),
    "partly encoded": ODD_TOKEN.replace("+", "%2B").replace("&", "%26"),
}


@pytest.mark.parametrize("form", ODD_FORMS.values(), ids=ODD_FORMS.keys())
async def test_no_hub_error_reaches_an_encoded_token(hubs: ScriptedHubs, form: str) -> None:
    conn = Conn(status=400, body=f"bad token {form} for ", echo=True, headers={"X-Echo": form})
    script = await hubs.start(conn)
    async with hub_client(script.url, token=ODD_TOKEN) as client:
        with pytest.raises(BadRequestError) as excinfo:
            await client.open_orders(timeout=5)
    error = excinfo.value
    # The page quoted the request line: the token as the upgrade URL carried it, and `form`.
    assert script.queries[0] == {"access_token": ODD_TOKEN}
    assert str(error).startswith("400 bad token [hidden] for /frontoffice/ws/v4/account?")
    assert "access_token=[hidden] (GET " in str(error)
    assert error.headers["X-Echo"] == "[hidden]"
    for leaked in {*ODD_FORMS.values(), "def/ghi", "ghi%3Djkl"}:
        assert_token_unreachable(error, leaked)


def test_mask_hides_every_encoding_and_nothing_else() -> None:
    secret = "a b+c/é"
    text = " | ".join(
        [secret, quote(secret), quote_plus(secret), quote(secret, safe="").lower(), "a b+c/"]
    )
    assert mask(text, [secret]) == "[hidden] | [hidden] | [hidden] | [hidden] | a b+c/"
    assert mask("no secret here", ["", "zzz"]) == "no secret here"


async def test_a_refused_connection_does_not_reach_the_token() -> None:
    async with hub_client(await refused_port(), retry=RetryPolicy.none()) as client:
        with pytest.raises(APIConnectionError) as excinfo:
            await client.open_orders(timeout=5)
    assert_token_unreachable(excinfo.value)


@pytest.mark.parametrize(
    ("provider_error", "error"),
    [
        pytest.param(ValueError("boom"), TokenProviderError, id="provider raises"),
        pytest.param(None, APITimeoutError, id="provider too slow"),
    ],
)
async def test_token_provider_failures_on_the_hub(
    hubs: ScriptedHubs, provider_error: Exception | None, error: type[FrontOfficeError]
) -> None:
    script = await hubs.start(Conn([SNAPSHOT]))

    async def provider() -> str:
        if provider_error is not None:
            raise provider_error
        await asyncio.sleep(10)
        return TOKEN

    async with hub_client(script.url, token=provider) as client:
        with pytest.raises(error) as excinfo:
            await client.open_orders(timeout=0.05)
    if provider_error is not None:
        assert excinfo.value.__cause__ is provider_error
    assert script.attempts == 0
    assert_token_unreachable(excinfo.value)


async def test_a_refresh_that_fails_after_a_401_does_not_reach_the_token(
    hubs: ScriptedHubs,
) -> None:
    """The provider fails while the 401's aiohttp error (its text holds the URL) is recent."""
    script = await hubs.start(Conn(status=401))
    calls = 0

    async def provider() -> str:
        nonlocal calls
        calls += 1
        if calls > 1:
            raise OSError("the vault is down")
        return TOKEN

    async with hub_client(script.url, token=provider) as client:
        with pytest.raises(TokenProviderError) as excinfo:
            await client.open_orders(timeout=5)
    assert isinstance(excinfo.value.__cause__, OSError)
    assert excinfo.value.attempts == 1
    assert script.attempts == 1
    assert_token_unreachable(excinfo.value)


async def test_hub_texts_are_one_line(hubs: ScriptedHubs) -> None:
    injected = "nope\r\nInjected-Log-Line: yes\n" + "x" * 1000
    script = await hubs.start(Conn([message({"type": 3, "invocationId": "0", "error": injected})]))
    async with hub_client(script.url) as client:
        with pytest.raises(HubError) as excinfo:
            await client.open_orders(timeout=5)
    text = str(excinfo.value)
    assert "\n" not in text and "\r" not in text
    assert "nope Injected-Log-Line: yes" in text
    assert len(text) < 300


# --- redirects, path prefix, tracing -------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_refused_and_the_token_stays_home(
    hubs: ScriptedHubs, status: int
) -> None:
    elsewhere = await hubs.start(Conn([SNAPSHOT]))
    location = f"{elsewhere.url}/frontoffice/ws/v4/account?access_token={TOKEN}"
    script = await hubs.start(Conn(status=status, headers={"Location": location}))
    async with hub_client(script.url) as client:
        with pytest.raises(APIStatusError, match="redirect, which is not followed") as excinfo:
            await client.open_orders(timeout=5)
    assert excinfo.value.status == status
    assert excinfo.value.headers["Location"] == "[hidden]"
    assert script.attempts == 1  # final: a redirect is never retried
    assert elsewhere.attempts == 0  # the other host got no connection
    assert_token_unreachable(excinfo.value)


async def test_the_hub_url_keeps_the_base_urls_path_prefix(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT]), prefix="/broker/api-gw")
    async with hub_client(script.url + "/broker/api-gw/") as client:
        orders = await client.open_orders(timeout=5)
        stream = client.stream_open_orders()
    assert [order.order_id for order in orders] == [ORDER["orderId"]]
    assert stream.safe_url == (
        script.url.replace("http", "ws", 1) + "/broker/api-gw/frontoffice/ws/v4/account"
    )


def recording_trace() -> tuple[aiohttp.TraceConfig, list[str]]:
    urls: list[str] = []
    trace = aiohttp.TraceConfig()

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        urls.append(str(params.url))

    trace.on_request_start.append(on_start)
    return trace, urls


async def test_the_hub_upgrade_is_not_traced(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT]))
    trace, urls = recording_trace()
    async with hub_client(script.url, trace_configs=[trace]) as client:
        await client.open_orders(timeout=5)
        async with client.stream_open_orders() as stream:
            await anext(stream)
    assert urls == []  # a tracer records full URLs, and the upgrade's holds the token


async def test_a_borrowed_session_lends_its_connector_only(hubs: ScriptedHubs) -> None:
    """Its tracers, middlewares and raise_for_status do not touch the hub; it stays open."""
    script = await hubs.start(Conn(status=503), Conn([SNAPSHOT]))
    trace, urls = recording_trace()
    seen: list[str] = []

    async def theirs(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        seen.append(str(request.url))
        return await handler(request)

    async with aiohttp.ClientSession(
        trace_configs=[trace], middlewares=(theirs,), raise_for_status=True
    ) as session:
        async with hub_client(script.url, session=session) as client:
            orders = await client.open_orders(timeout=5)
            hub_session = client._hub.transport._session
            assert hub_session is not None and hub_session.connector is session.connector
        assert not session.closed and hub_session.closed
        assert not session.connector.closed  # type: ignore[union-attr]
    assert [order.order_id for order in orders] == [ORDER["orderId"]]
    assert urls == [] and seen == []
    assert script.attempts == 2


async def test_a_closed_borrowed_session_is_a_clear_error(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT]))
    session = aiohttp.ClientSession()
    await session.close()
    async with hub_client(script.url, session=session) as client:
        with pytest.raises(ClientClosedError, match="session= is closed"):
            await client.open_orders(timeout=5)
    assert script.attempts == 0


# --- lifecycle ---------------------------------------------------------------------------------


async def test_after_close_the_hub_refuses_like_every_call(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT]))
    client = hub_client(script.url)
    async with client:
        stream = client.stream_open_orders()  # made before close, entered after
        await client.open_orders(timeout=5)
    with pytest.raises(RuntimeError, match="closed"):
        client.stream_open_orders()
    with pytest.raises(RuntimeError, match="closed"):
        await client.open_orders()
    with pytest.raises(ClientClosedError):
        async with stream:
            pass
    assert client._hub.transport._session is None
    assert script.attempts == 1


@pytest.mark.parametrize(
    "wait",
    [
        pytest.param("stream", id="stream waiting for an update"),
        pytest.param("snapshot", id="snapshot waiting for the hub"),
        pytest.param("backoff", id="reconnect backing off"),
        pytest.param("token", id="waiting for the token provider"),
    ],
)
async def test_closing_the_client_ends_hub_waits_at_once(hubs: ScriptedHubs, wait: str) -> None:
    script = await hubs.start(Conn([SNAPSHOT] if wait == "stream" else [PING]))
    before = asyncio.all_tasks()
    sleeping = asyncio.Event()

    async def long_sleep(delay: float) -> None:
        sleeping.set()
        await asyncio.sleep(60)

    async def slow_token() -> str:
        sleeping.set()
        await asyncio.sleep(60)
        return TOKEN

    kwargs: dict[str, Any] = {}
    if wait == "backoff":
        script = await hubs.start(Conn([message({"type": 7})]))
        kwargs["sleep"] = long_sleep
    if wait == "token":
        kwargs["token"] = slow_token
    client = hub_client(script.url, **kwargs)

    async def use_the_hub() -> object:
        if wait == "stream":
            async with client.stream_open_orders() as stream:
                await anext(stream)
                sleeping.set()
                return await anext(stream)
        return await client.open_orders(timeout=None)

    async with client:
        task = asyncio.create_task(use_the_hub())
        if wait in ("stream", "backoff", "token"):
            await asyncio.wait_for(sleeping.wait(), 5)
        else:
            await asyncio.wait_for(script.invoked.wait(), 5)
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        started = loop.time()
    took = loop.time() - started  # the client's close
    with pytest.raises(ClientClosedError, match="closed"):
        await asyncio.wait_for(task, 1.0)
    assert took < 0.5
    assert not task.cancelled()
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()


async def test_a_stream_left_open_over_close_raises_on_its_next_read(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT, item([])]))
    client = hub_client(script.url)
    async with client, client.stream_open_orders() as stream:
        await anext(stream)
        await client.close()
        with pytest.raises(ClientClosedError, match="closed"):
            await anext(stream)
    assert stream._connection is None or stream._connection._ws is None


async def test_a_cancelled_snapshot_hangs_up(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([PING]))
    async with hub_client(script.url) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.open_orders(timeout=None), 0.05)
        assert client._hub.transport._connections == set()
        await asyncio.sleep(0.02)  # let the server read what the client sent last
    assert script.messages()[2:] == [{"type": 5, "invocationId": "0"}]


async def test_a_caller_that_stops_waiting_keeps_its_stream(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT, PING]))
    async with hub_client(script.url) as client, client.stream_open_orders() as stream:
        await anext(stream)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.05)
        assert stream._connection is not None  # still connected: a caller's timeout is theirs
    assert script.attempts == 1


async def test_leaving_the_stream_unentered_or_twice_is_a_clear_error(hubs: ScriptedHubs) -> None:
    script = await hubs.start(Conn([SNAPSHOT]))
    async with hub_client(script.url) as client:
        stream = client.stream_open_orders()
        with pytest.raises(RuntimeError, match="async with"):
            await anext(stream)
        async with stream:
            pass
        with pytest.raises(RuntimeError, match="only once"):
            async with stream:
                pass


@pytest.mark.parametrize(
    ("name", "value"),
    [("server_timeout", 0), ("handshake_timeout", -1.0), ("server_timeout", True)],
)
async def test_stream_knobs_are_checked(hubs: ScriptedHubs, name: str, value: float) -> None:
    script = await hubs.start(Conn([SNAPSHOT]))
    async with hub_client(script.url) as client:
        knobs: dict[str, Any] = {name: value}
        with pytest.raises(ValueError, match=name):
            client.stream_open_orders(**knobs)
        with pytest.raises(ValueError, match="timeout"):
            await client.open_orders(timeout=0)


# --- no frame's locals hold the token (issue 19, item 7) ---------------------------------------

FRAME_TOKEN = "tok-HUB-FRAME-SENTINEL-0b5c7d2e9f1a3b4c"


async def _upgrade_refused_then_provider_fails(hubs: ScriptedHubs) -> BaseException:
    script = await hubs.start(Conn(status=401))
    answers = [FRAME_TOKEN + "-2", FRAME_TOKEN + "-1"]

    async def provider() -> str:
        if answers:
            return answers.pop()
        raise ConnectionError("vault down")

    async with hub_client(script.url, token=provider) as client:
        with pytest.raises(AuthenticationError) as caught:
            await client.open_orders(timeout=5)
    return caught.value


async def _snapshot_never_comes(hubs: ScriptedHubs) -> BaseException:
    script = await hubs.start(Conn())  # upgrades, then says nothing
    async with hub_client(script.url, token=FRAME_TOKEN) as client:
        with pytest.raises(APITimeoutError) as caught:
            await client.open_orders(timeout=0.2)
    return caught.value


@pytest.mark.parametrize(
    "provoke",
    [_upgrade_refused_then_provider_fails, _snapshot_never_comes],
    ids=["401-refresh-401", "deadline"],
)
async def test_no_frame_local_of_the_hub_holds_the_token(hubs: ScriptedHubs, provoke: Any) -> None:
    error = await provoke(hubs)
    # The library's frames (the scripted hub in the test's own frame records the queries).
    leaks = [w for w, text in frame_locals(error, ours=True) if "HUB-FRAME-SENTINEL" in text]
    assert leaks == []
    assert "HUB-FRAME-SENTINEL" not in "".join(traceback.format_exception(error))


async def test_snapshots_of_many_accounts_do_not_starve_the_rest_requests(
    frontoffice_simulator: FrontOfficeSimulator,
) -> None:
    """A websocket holds its connection while open: with the client's own session the hub has
    a connector of its own, so 110 snapshots in their windows leave the REST pool free."""
    sim = frontoffice_simulator
    [order_id] = sim.add_orders(1)
    async with FrontOfficeClient(
        sim.url, token=sim.token, account_id=DEFAULT_ACCOUNT_ID, snapshot_settle=1.0
    ) as client:
        snapshots = [asyncio.ensure_future(client.open_orders()) for _ in range(110)]
        await asyncio.sleep(0.2)  # they are open, in their windows
        await client.cancel_order(order_id)  # it used to wait for a websocket to close
        assert not any(s.done() for s in snapshots)  # before any window closed
        await asyncio.gather(*snapshots)
