"""aiohttp: one FrontOfficeClient for the app's life, made and closed by `cleanup_ctx`.

Settings come from the environment, as for the CLI. Run it as a script to serve on :8080.
"""

import os
from collections.abc import AsyncIterator

from aiohttp import web

from frontoffice_async import FrontOfficeClient, FrontOfficeError, OrderNotFoundError

FRONTOFFICE = web.AppKey("frontoffice", FrontOfficeClient)


async def frontoffice_client(app: web.Application) -> AsyncIterator[None]:
    async with FrontOfficeClient(
        os.environ["FRONTOFFICE_BASE_URL"],
        token=os.environ["FRONTOFFICE_TOKEN"],
        account_id=os.environ["FRONTOFFICE_ACCOUNT_ID"],
    ) as client:
        app[FRONTOFFICE] = client
        yield  # the app serves requests here; the client closes on shutdown


async def cancel(request: web.Request) -> web.Response:
    client = request.app[FRONTOFFICE]
    try:
        order = await client.cancel_order(request.match_info["order_id"])
    except OrderNotFoundError:
        raise web.HTTPNotFound() from None
    except FrontOfficeError as exc:
        return web.json_response({"error": str(exc)}, status=502)
    return web.json_response({"order_id": order.order_id, "status": order.status})


def make_app() -> web.Application:
    app = web.Application()
    app.cleanup_ctx.append(frontoffice_client)
    app.router.add_delete("/orders/{order_id}", cancel)
    return app


if __name__ == "__main__":
    web.run_app(make_app())
