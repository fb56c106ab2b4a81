"""FastAPI: one FrontOfficeClient for the app's life, a cancel route and a panic button.

Settings come from the environment, as for the CLI. Run with `uvicorn module:app`.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from frontoffice_async import FrontOfficeClient, FrontOfficeError, OrderNotFoundError


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with FrontOfficeClient(
        os.environ["FRONTOFFICE_BASE_URL"],
        token=os.environ["FRONTOFFICE_TOKEN"],
        account_id=os.environ["FRONTOFFICE_ACCOUNT_ID"],
    ) as client:
        app.state.frontoffice = client
        yield  # the app serves requests here; the client closes on shutdown


app = FastAPI(lifespan=lifespan)


def frontoffice(request: Request) -> FrontOfficeClient:
    """The app's one client, as a dependency."""
    client: FrontOfficeClient = request.app.state.frontoffice
    return client


Client = Annotated[FrontOfficeClient, Depends(frontoffice)]


@app.delete("/orders/{order_id}", response_model=None)
async def cancel(order_id: str, client: Client) -> dict[str, Any] | JSONResponse:
    try:
        order = await client.cancel_order(order_id)
    except OrderNotFoundError:
        raise HTTPException(status_code=404) from None
    except FrontOfficeError as exc:  # the CLI's error document: type, status, message...
        return JSONResponse({"error": exc.as_dict()}, status_code=502)
    return order.as_dict()


@app.post("/panic")
async def panic(client: Client, market_id: str | None = None) -> JSONResponse:
    """Cancel every open order of the account (of one market with `?market_id=`)."""
    try:
        result = await client.cancel_all_orders(market_id=market_id)
    except FrontOfficeError as exc:  # no snapshot (hub down, token refused): state unknown
        return JSONResponse({"error": exc.as_dict()}, status_code=502)
    # 200 only when a fresh snapshot showed nothing left and no cancel failed.
    done = result.verified and not result.failed
    return JSONResponse(result.as_dict(), status_code=200 if done else 502)
