"""The `simulate` command: the loopback simulator, standalone, until Ctrl-C or SIGTERM.

It puts orders, positions and stop orders on its accounts and prints how to reach it, and the
ids of its positions and stop orders (no endpoint lists stop orders: a user who wants to try
`flatten --stop-orders` needs them). The simulator is imported only when the command runs.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import output
from .common import EXIT_OK, UsageError, add_options, non_negative_int, port_number, rate, seconds
from .process import divert_signals
from .scene import spread_orders, spread_positions, spread_stop_orders

if TYPE_CHECKING:
    from frontoffice_async.testing import FrontOfficeSimulator

__all__ = ["add_command"]


def add_command(commands: Any) -> None:
    """Register `simulate` on the CLI's subparsers (`commands`)."""
    simulate = commands.add_parser(
        "simulate",
        help="run the loopback Front Office simulator until Ctrl-C or SIGTERM",
        description="Run the Front Office simulator on 127.0.0.1 until Ctrl-C or SIGTERM "
        "(then it closes cleanly and exits 0), and print the environment to point "
        "`frontoffice` (or your bot) at it. Its token is a throwaway test token.",
    )
    arg = simulate.add_argument
    arg(
        "--port",
        metavar="P",
        type=port_number,
        default=8765,
        help="port, 0: any free one (default: %(default)s)",
    )
    arg(
        "--orders",
        metavar="N",
        type=non_negative_int,
        default=100,
        help="open orders to create, spread over the accounts (default: %(default)s)",
    )
    arg(
        "--positions",
        metavar="N",
        type=non_negative_int,
        default=0,
        help="open positions (CFD and Perpetual), spread over the accounts (default: %(default)s)",
    )
    arg(
        "--stop-orders",
        metavar="N",
        type=non_negative_int,
        default=0,
        help="stop orders waiting for their price, spread over the accounts; their ids are "
        "printed (default: %(default)s)",
    )
    arg("--accounts", nargs="+", metavar="ID", help="account ids (default: two demo accounts)")
    arg(
        "--fault-rate",
        metavar="R",
        type=rate,
        default=0.0,
        help="chance of a transient fault per request (default: %(default)s)",
    )
    arg(
        "--latency",
        metavar="S",
        type=seconds,
        default=0.0,
        help="seconds added to every response (default: %(default)s)",
    )
    arg(
        "--seed",
        metavar="N",
        type=int,
        default=0,
        help="seed of faults, ids and token (default: %(default)s)",
    )
    add_options(simulate, ["json"], helps={"json": "print the simulator's environment as JSON"})
    simulate.set_defaults(handler=_cmd_simulate, command="simulate")


async def _cmd_simulate(args: argparse.Namespace) -> int:
    from frontoffice_async.testing import FaultPlan, FrontOfficeSimulator  # noqa: PLC0415

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
        raise UsageError(f"cannot listen on port {args.port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    try:
        # Ctrl-C or SIGTERM (how a container runtime stops a process) ends the wait, so the
        # simulator closes cleanly (hub clients are told) and the command exits 0.
        with divert_signals(stop.set):
            await spread_orders(sim, args.orders)
            positions = await spread_positions(sim, args.positions)
            stops = await spread_stop_orders(sim, args.stop_orders)
            _print_simulator(sim, args, positions, stops)
            await stop.wait()
    finally:
        requests = sim.stats.requests
        await sim.close()
        output.note(f"simulator stopped after {requests} requests")
    return EXIT_OK


def _print_simulator(
    sim: FrontOfficeSimulator,
    args: argparse.Namespace,
    positions: Mapping[str, list[str]],
    stops: Mapping[str, list[str]],
) -> None:
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
            "positions": {a: ids for a, ids in positions.items() if ids},
            "stop_orders": {a: ids for a, ids in stops.items() if ids},
            "env": env,
        }
        output.print_json(document)
        return
    counts = f"open orders: {args.orders}, positions: {args.positions}, stop orders: "
    lines = [
        f"Front Office simulator listening on {sim.url}",
        f"accounts: {', '.join(output.printable(a) for a in account_ids)}",
        f"{counts}{args.stop_orders}, fault rate {args.fault_rate:g}",
        f"token: {sim.token}  (a throwaway test token)",
    ]
    # One `ACCOUNT_ID ID` a line: the lines of stop orders are a `flatten --stop-orders` file.
    for title, made in (("positions", positions), ("stop orders", stops)):
        pairs = [f"{a} {i}" for a, ids in made.items() for i in ids]
        if pairs:
            lines += [f"\n{title} (account id, {title[:-1]} id):", *pairs]
    lines += [
        "\nPoint the CLI or your bot at it:\n",
        *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
        "\nPress Ctrl-C to stop.",
    ]
    output.say("\n".join(lines))
