"""The `simulate` and `demo` commands: the loopback simulator, standalone or cancelled in bulk.

`demo` shows the whole library at work: a snapshot per account, one client, retries over
transient faults, a progress bar, the summary, and a check that no order was left open.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from typing import TYPE_CHECKING, Any

from . import _cli_output as output
from . import cli
from .client import FrontOfficeClient
from .retry import RetryPolicy

if TYPE_CHECKING:
    from .testing import FrontOfficeSimulator

__all__ = ["add_commands"]

#: Demo retries: faults are 10% per request, so 8 attempts make a failed id a ~1e-8 event,
#: and a small backoff keeps the whole run to a few seconds.
DEMO_RETRY = RetryPolicy(max_attempts=8, base_delay=0.005, max_delay=0.2, deadline=10.0)
DEMO_CONCURRENCY = 64
_MARKETS = ("spot.eth_usdt", "spot.btc_usdt")


def add_commands(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register `simulate` and `demo` on the CLI's subparsers (`commands`)."""
    simulate = commands.add_parser(
        "simulate",
        parents=[common],
        help="run the loopback Front Office simulator until Ctrl-C",
        description="Run the Front Office simulator on 127.0.0.1 until Ctrl-C, and print the "
        "environment to point `frontoffice` (or your bot) at it. Its token is a throwaway "
        "test token.",
    )
    simulate.add_argument(
        "--port", metavar="P", type=_port, default=8765, help="port (0: any free one)"
    )
    simulate.add_argument(
        "--orders",
        metavar="N",
        type=_count,
        default=100,
        help="open orders to create, spread over accounts",
    )
    simulate.add_argument(
        "--accounts", nargs="+", metavar="ID", help="account ids (default: two demo accounts)"
    )
    simulate.add_argument(
        "--fault-rate",
        metavar="R",
        type=_rate,
        default=0.0,
        help="chance of a transient fault per request",
    )
    simulate.add_argument(
        "--latency",
        metavar="S",
        type=_seconds,
        default=0.0,
        help="seconds added to every response",
    )
    simulate.add_argument(
        "--seed", metavar="N", type=int, default=0, help="seed of faults, ids and token"
    )
    simulate.set_defaults(handler=_cmd_simulate)

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="cancel ~2,000 orders on an in-process simulator with faults, and verify",
        description="Start the simulator in-process with open orders on two accounts and "
        "transient faults, cancel them all through one client, print the summary, and check "
        "on the simulator that none is left open. Needs no configuration.",
    )
    demo.add_argument(
        "--orders", metavar="N", type=_count, default=2000, help="open orders (default 2000)"
    )
    demo.add_argument(
        "--fault-rate",
        metavar="R",
        type=_rate,
        default=0.1,
        help="transient fault chance (default 0.1)",
    )
    demo.add_argument(
        "--latency",
        metavar="S",
        type=_seconds,
        default=0.003,
        help="response latency (default 0.003 s)",
    )
    demo.add_argument("--seed", metavar="N", type=int, default=0, help="seed of faults and ids")
    demo.set_defaults(handler=_cmd_demo)


async def _cmd_simulate(args: argparse.Namespace) -> int:
    from .testing import FaultPlan, FrontOfficeSimulator  # noqa: PLC0415

    kwargs: dict[str, Any] = {}
    if args.accounts:
        kwargs["accounts"] = tuple(args.accounts)
    faults = FaultPlan.uniform(args.fault_rate, seed=args.seed) if args.fault_rate else None
    sim = FrontOfficeSimulator(
        faults=faults, latency=args.latency, seed=args.seed, port=args.port, **kwargs
    )
    try:
        await sim.start()
    except OSError as exc:
        raise cli.UsageError(f"cannot listen on port {args.port}: {exc.strerror or exc}") from None
    try:
        _spread_orders(sim, args.orders)
        _print_simulator(sim, args)
        await asyncio.Event().wait()  # serve until cancelled (Ctrl-C)
    finally:
        sys.stderr.write(f"simulator stopped after {sim.stats.requests} requests\n")
        await sim.close()
    return cli.EXIT_OK  # pragma: no cover - only a cancellation ends the wait


def _print_simulator(sim: FrontOfficeSimulator, args: argparse.Namespace) -> None:
    account_ids = list(sim.account_ids)
    env = {
        "FRONTOFFICE_BASE_URL": sim.url,
        # The one token the CLI ever prints: the simulator's own throwaway test token.
        "FRONTOFFICE_TOKEN": sim.token,
        "FRONTOFFICE_ACCOUNT_ID": account_ids[0],
    }
    if args.json:
        document = {
            "url": sim.url,
            "token": sim.token,
            "account_ids": account_ids,
            "orders": args.orders,
            "env": env,
        }
        output.print_json(document)
        return
    print(f"Front Office simulator listening on {sim.url}")
    print(f"accounts: {', '.join(account_ids)}")
    print(f"open orders: {args.orders}, fault rate {args.fault_rate:g}")
    print(f"token: {sim.token}  (a throwaway test token)")
    print("\nPoint the CLI or your bot at it:\n")
    for name, value in env.items():
        print(f"export {name}={shlex.quote(value)}")
    print("\nPress Ctrl-C to stop.", flush=True)


async def _cmd_demo(args: argparse.Namespace) -> int:
    from .testing import FaultPlan, FrontOfficeSimulator  # noqa: PLC0415

    concurrency = args.concurrency or DEMO_CONCURRENCY
    args.concurrency = concurrency
    faults = FaultPlan.uniform(args.fault_rate, seed=args.seed) if args.fault_rate else None
    async with FrontOfficeSimulator(faults=faults, latency=args.latency, seed=args.seed) as sim:
        _spread_orders(sim, args.orders)
        accounts = list(sim.account_ids)
        if not args.json:
            print(
                f"demo: simulator at {sim.url}, {args.orders} open orders on "
                f"{len(accounts)} accounts, {args.fault_rate:.0%} transient faults "
                f"(429/500/502/503/reset), {args.latency * 1000:g} ms latency; "
                f"cancel-all on each account through one client, concurrency {concurrency}",
                flush=True,
            )
        async with FrontOfficeClient(
            sim.url,
            token=sim.token,
            retry=DEMO_RETRY,
            timeout=args.timeout,
            concurrency=concurrency,
        ) as client:
            # Snapshots first, so the progress bar knows the total.
            snapshots = await asyncio.gather(
                *(client.open_orders(account_id=account) for account in accounts)
            )
            batches = [
                (account, [o.order_id for o in orders])
                for account, orders in zip(accounts, snapshots, strict=True)
            ]
            if not args.json:
                sizes = ", ".join(f"{a}: {len(ids)}" for a, ids in batches)
                print(f"snapshot: {sizes}", flush=True)
            tracker = await output.run_bulk(client, batches, args)
        left = sim.open_order_ids()
        failed = output.report(tracker, batches, args, left_open=len(left), verified=not left)
    if left:
        shown = ", ".join(left[:10]) + (", ..." if len(left) > 10 else "")
        sys.stderr.write(f"NOT verified: {len(left)} orders left open: {shown}\n")
        return cli.EXIT_FAILED
    if not args.json:
        print("verified: 0 orders left open", flush=True)
    return cli.EXIT_FAILED if failed else cli.EXIT_OK


def _spread_orders(sim: FrontOfficeSimulator, total: int) -> None:
    """`total` open orders, split evenly over the accounts, two markets and both sides."""
    accounts = list(sim.account_ids)
    slots = [(a, m, s) for a in accounts for m in _MARKETS for s in ("Buy", "Sell")]
    for index, (account, market, side) in enumerate(slots):
        n = total // len(slots) + (index < total % len(slots))
        if n:
            sim.add_orders(n, account_id=account, market_id=market, side=side)


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port: {value}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds >= 0, got {text}")
    return value
