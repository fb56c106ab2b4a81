"""A trading bot under `client.guard()`, run as a real process by tests/stop/test_guard.py and
bench/_guard.py: what it does is in argv[1] (JSON), its token in FO_BOT_TOKEN.

It prints one JSON line once the guard is ready (`{"guard_pid": N}`), then does what it was
told: `wait` (until killed), `block` (its event loop, with `time.sleep`, then says whether
its guard is alive), `raise` (an exception leaves the `async with`), `leave` (cleanly).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from frontoffice_async import FrontOfficeClient


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def main(plan: dict[str, Any]) -> None:
    async with (
        FrontOfficeClient(
            plan["url"],
            token=os.environ["FO_BOT_TOKEN"],
            account_id=plan["account"],
            snapshot_settle=plan.get("settle"),
        ) as client,
        client.guard(
            timeout=plan["timeout"],
            stop_order_ids=plan.get("stop_order_ids", ()),
            journal=plan.get("journal"),
        ) as guard,
    ):
        say(guard_pid=guard.pid)
        then = plan["then"]
        if then == "wait":
            await asyncio.sleep(3600)
        elif then == "block":
            say(blocking=True)
            time.sleep(plan["block"])  # noqa: ASYNC251 - the hang under test
            await asyncio.sleep(0.2)  # the watcher hears of the guard's exit
            say(alive=guard.alive, trigger=guard.trigger)
        elif then == "raise":
            raise RuntimeError("the strategy failed")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="bot log: %(message)s")
    asyncio.run(main(json.loads(sys.argv[1])))
