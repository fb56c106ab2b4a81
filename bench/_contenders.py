"""The contenders of the CPU-per-cancel race, in report order; the first is the floor."""

from __future__ import annotations

from typing import Final

from frontoffice_async import _converter

from ._clients import (
    Contender,
    aiohttp_tenacity,
    fo_cancel_orders,
    fo_cancel_orders_stdlib,
    fo_gather,
    httpx_client,
    raw_aiohttp,
)
from ._peer import peer_aiohttp_retry, peer_hand

__all__ = ["CONTENDERS", "FLOOR", "LIBRARY", "PEERS", "SPEEDUPS", "STDLIB"]

FLOOR: Final = "raw_aiohttp"
#: True when orjson is installed, so the library modes run with the `speedups` extra.
SPEEDUPS: Final = _converter._SPEEDUPS
#: The library's two ways of cancelling many orders, as installed (with the `speedups` extra
#: when orjson is importable); each has the CPU targets.
LIBRARY: Final = ("fo_cancel_orders", "fo_gather")
#: `cancel_orders` as the base install runs it: JSON by the standard library.
STDLIB: Final = "fo_cancel_orders_stdlib"
_AS_INSTALLED: Final = ", speedups" if SPEEDUPS else ", speedups NOT installed"
#: The equal-work peer's variants; the targets compare with the cheaper one of each round.
PEERS: Final = ("peer_aiohttp_retry", "peer_hand")

CONTENDERS: Final[tuple[Contender, ...]] = (
    Contender(FLOOR, "raw aiohttp + json (floor)", raw_aiohttp),
    Contender(LIBRARY[0], "frontoffice_async cancel_orders" + _AS_INSTALLED, fo_cancel_orders),
    Contender(LIBRARY[1], "frontoffice_async gather(cancel_order)" + _AS_INSTALLED, fo_gather),
    Contender(STDLIB, "frontoffice_async cancel_orders, no speedups", fo_cancel_orders_stdlib),
    Contender(PEERS[0], "peer: aiohttp-retry + Order parse", peer_aiohttp_retry),
    Contender(PEERS[1], "peer: hand retry loop + Order parse", peer_hand),
    Contender("aiohttp_tenacity", "aiohttp + tenacity + json", aiohttp_tenacity),
    # ~1.2 ms of CPU per request at concurrency 64: a tenth of the ids keeps it in budget.
    Contender("httpx", "httpx AsyncClient + json", httpx_client, share=0.1),
)
