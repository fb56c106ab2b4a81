"""The simulator's aiohttp application: the REST endpoints and the hub over one scene."""

from __future__ import annotations

import asyncio

import attrs
from aiohttp import web

from frontoffice_async.testing import _arguments as args
from frontoffice_async.testing import _wire
from frontoffice_async.testing._dispenser import FaultDispenser
from frontoffice_async.testing._hub import HubEndpoint
from frontoffice_async.testing._hub_streams import order_stream, position_stream
from frontoffice_async.testing._log import RequestLog
from frontoffice_async.testing._responder import Responder
from frontoffice_async.testing._rest import RestApi
from frontoffice_async.testing._rest_orders import OrdersApi
from frontoffice_async.testing._rest_positions import PositionsApi
from frontoffice_async.testing._scene import Scene

__all__ = ["Settings", "build_application"]


@attrs.frozen(kw_only=True)
class Settings:
    """The simulator's settings the endpoints use, checked: a bad one raises TypeError or
    ValueError naming it (never showing a token)."""

    seed: int
    latency: float
    offline_token: str | None
    access_token_ttl: float
    ping_interval: float
    client_timeout: float | None

    def __attrs_post_init__(self) -> None:
        if self.offline_token is not None:
            args.check_token("offline_token", self.offline_token)
        args.check_seconds("latency", self.latency, allow_zero=True)
        args.check_seconds("access_token_ttl", self.access_token_ttl, allow_zero=False)
        args.check_seconds("ping_interval", self.ping_interval, allow_zero=False)
        if self.client_timeout is not None:
            args.check_seconds("client_timeout", self.client_timeout, allow_zero=False)
        args.check_seed(self.seed)


def build_application(
    scene: Scene,
    *,
    log: RequestLog,
    dispenser: FaultDispenser,
    closing: asyncio.Event,
    settings: Settings,
) -> web.Application:
    """The application serving `scene`: every route, the log middleware, the hub shutdown.

    `closing` ends pending sleeps (latency, SLOW faults) when the simulator closes.
    """
    responder = Responder(
        dispenser=dispenser, closing=closing, trace_ids=_wire.TraceIds(settings.seed)
    )
    rest = RestApi(
        groups=[
            OrdersApi(book=scene.book, responder=responder),
            PositionsApi(
                positions=scene.positions,
                orders=scene.book,
                responder=responder,
                stop_outs=scene.stop_outs,
            ),
        ],
        tokens=scene.tokens,
        responder=responder,
        account_ids=scene.account_ids,
        forbidden=scene.forbidden,
        latency=settings.latency,
        offline_token=settings.offline_token,
        access_token_ttl=settings.access_token_ttl,
    )
    hub = HubEndpoint(
        streams=[order_stream(scene.book), position_stream(scene.positions)],
        tokens=scene.tokens,
        responder=responder,
        dispenser=dispenser,
        forbidden=scene.forbidden,
        ping_interval=settings.ping_interval,
        client_timeout=settings.client_timeout,
    )
    app = web.Application(middlewares=[log.middleware])
    app.add_routes(rest.routes())
    app.add_routes(hub.routes())
    app.on_shutdown.append(hub.shutdown)
    return app
