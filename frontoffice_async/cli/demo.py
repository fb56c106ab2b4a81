"""The `demo` command (and the registration of `simulate`, its standalone sibling).

`demo` shows the library at work: `flatten` of every account of a simulator that injects
faults (orders, positions, stop orders; a stop-out when positions close), through one client,
verified by the library's own last snapshots and then by asking the simulator itself. The
simulator is imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import flatreport, output, simulate
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    BulkRun,
    ReportedError,
    add_options,
    error_document,
    non_negative_int,
    rate,
    seconds,
)
from .progress import progress_bar
from .scene import spread_orders, spread_positions, spread_stop_orders

if TYPE_CHECKING:
    from frontoffice_async import FlattenResult, FrontOfficeClient
    from frontoffice_async.testing import FaultPlan, FrontOfficeSimulator

__all__ = ["add_commands"]

DEMO_CONCURRENCY = 64
#: One order in this many answers its first cancel with 409 (the platform is busy with it):
#: a failure for that round, which the next round of the flatten retries.
BUSY_EVERY = 100
#: Orders a stop-out places on each account when its positions close (mid-flatten).
STOP_OUT_ORDERS = 2
#: Seconds a snapshot's items are merged after its first. The in-process simulator sends a
#: snapshot as one item, so the library's default (0.5 s, for a real platform) would only
#: make the demo wait: three rounds read two snapshots each.
DEMO_SETTLE = 0.05


def add_commands(commands: Any) -> None:
    """Register `simulate` and `demo` on the CLI's subparsers (`commands`)."""
    simulate.add_command(commands)
    _add_demo(commands)


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="flatten an in-process simulator with faults, verified",
        description="Start the simulator in-process with open orders, positions and stop "
        "orders on two accounts, transient faults, a few orders busy (409) on their first "
        "cancel and a stop-out that places orders when positions close; run the library's "
        "flatten on every account through one client; print what it did per account, "
        "whether each was verified, and what the simulator says is left. Exit 0 only when "
        "verified. Needs no configuration.",
    )
    arg = demo.add_argument
    for flag, default, what in (
        ("--orders", 2000, "open orders"),
        ("--positions", 40, "open positions"),
        ("--stop-orders", 20, "stop orders"),
    ):
        arg(
            flag,
            metavar="N",
            type=non_negative_int,
            default=default,
            help=f"{what}, over both accounts (default: %(default)s)",
        )
    arg(
        "--fault-rate",
        metavar="R",
        type=rate,
        default=0.1,
        help="transient fault chance (default: %(default)s)",
    )
    arg(
        "--latency",
        metavar="S",
        type=seconds,
        default=0.003,
        help="response latency in seconds (default: %(default)s)",
    )
    arg(
        "--seed",
        metavar="N",
        type=int,
        default=0,
        help="seed of faults and ids (default: %(default)s)",
    )
    add_options(
        demo,
        ["concurrency", "timeout", "json", "no_progress"],
        helps={"concurrency": f"requests in flight at once (default {DEMO_CONCURRENCY})"},
    )
    demo.set_defaults(handler=_cmd_demo, command="demo")


# --- demo ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Scene:
    """What the demo put on the simulator, for the intro and the flatten."""

    busy: list[str] = dataclasses.field(default_factory=list)
    stops: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    activated: int = 0


async def _cmd_demo(args: argparse.Namespace) -> int:
    from frontoffice_async.testing import FrontOfficeSimulator  # noqa: PLC0415

    sim = FrontOfficeSimulator(latency=args.latency, seed=args.seed)
    run: list[BulkRun] = []  # one once the flatten starts
    try:
        async with sim:
            scene = await _set_scene(sim, args)
            sim.faults = _faults(args, scene.busy)
            result, left = await _run_demo(sim, args, scene, run)
    except asyncio.CancelledError:
        if not run:  # interrupted during the setup: say so, and nothing was cancelled
            _report_partial(None, sim, args, error=None)
        raise
    return EXIT_OK if result.verified and not any(left.values()) else EXIT_FAILED


async def _set_scene(sim: FrontOfficeSimulator, args: argparse.Namespace) -> _Scene:
    """Orders (one in 100 busy on its first cancel), positions, stop orders (the first of
    each account already triggered: its order rests among the others, the stop order is
    final), and a stop-out armed on each account for when its positions close."""
    scene = _Scene()
    scene.busy = (await spread_orders(sim, args.orders))[::BUSY_EVERY]
    positions = await spread_positions(sim, args.positions)
    scene.stops = await spread_stop_orders(sim, args.stop_orders)
    for account, ids in scene.stops.items():
        if ids:
            sim.activate_stop_order(ids[0])
            scene.activated += 1
        if positions[account]:
            sim.stop_out_on_close(account, count=STOP_OUT_ORDERS)
    return scene


async def _run_demo(
    sim: FrontOfficeSimulator, args: argparse.Namespace, scene: _Scene, runs: list[BulkRun]
) -> tuple[FlattenResult, dict[str, int]]:
    """flatten of every account of the simulator (`runs`: its outcomes as they come)."""
    from frontoffice_async import FrontOfficeError  # noqa: PLC0415

    concurrency = args.concurrency or DEMO_CONCURRENCY
    if not args.json:
        _print_intro(sim, args, scene, concurrency)
    bar = progress_bar(args)
    run = BulkRun(on_each=bar.advance if bar else None)
    runs.append(run)
    async with _demo_client(sim, args, concurrency) as client:
        if bar:
            bar.start(args.orders + args.stop_orders, "flattening")
        run.sending = True
        try:
            result = await client.flatten(
                "all", stop_order_ids=scene.stops, on_outcome=run.on_outcome
            )
        except asyncio.CancelledError:
            if bar:
                bar.stop()
            _report_partial(run, sim, args, error=None)
            raise
        except FrontOfficeError as exc:  # listing the accounts failed: nothing was done
            if bar:
                bar.stop()
            if not run.done():
                raise
            _report_partial(run, sim, args, error=exc)
            raise ReportedError(exc) from exc
        finally:
            if bar:
                bar.stop()
        left = _left_open(sim)
        _report(result, left, args)
    return result, left


def _demo_client(
    sim: FrontOfficeSimulator, args: argparse.Namespace, concurrency: int
) -> FrontOfficeClient:
    from frontoffice_async import FrontOfficeClient, RetryPolicy  # noqa: PLC0415

    # Faults strike 10% of requests: 8 attempts make a failed id a ~1e-8 event, and a small
    # backoff keeps the whole run to a few seconds. (A close is a POST: resent only after a
    # 429 or a connection never opened; otherwise the next round's snapshot decides.)
    retry = RetryPolicy(max_attempts=8, base_delay=0.005, max_delay=0.2, deadline=10.0)
    return FrontOfficeClient(
        sim.url,
        token=sim.token,
        retry=retry,
        timeout=args.timeout,
        concurrency=concurrency,
        snapshot_settle=DEMO_SETTLE,
    )


def _faults(args: argparse.Namespace, busy: list[str]) -> FaultPlan:
    from frontoffice_async.testing import Fault, FaultPlan  # noqa: PLC0415

    conflict = Fault.response(
        409,
        b'{"title":"Conflict","status":409,"detail":"The order is being processed."}',
        {"Content-Type": "application/problem+json"},
    )
    base = FaultPlan.uniform(args.fault_rate, seed=args.seed) if args.fault_rate else FaultPlan()
    return FaultPlan(
        rates=base.rates,
        seed=args.seed,
        scripts={order_id: [conflict] for order_id in busy},
    )


def _left_open(sim: FrontOfficeSimulator) -> dict[str, int]:
    """What the simulator itself says is still open, whatever the client concluded."""
    return {
        "orders": len(sim.open_order_ids()),
        "stop_orders": len(sim.open_stop_order_ids()),
        "positions": len(sim.open_position_ids()),
    }


def _print_intro(
    sim: FrontOfficeSimulator, args: argparse.Namespace, scene: _Scene, concurrency: int
) -> None:
    output.paragraph(
        f"demo: simulator at {sim.url}; on {len(sim.account_ids)} accounts "
        f"{args.orders} open orders, {args.positions} positions and {args.stop_orders} stop "
        f"orders ({scene.activated} of them triggered already); {args.fault_rate:.0%} "
        f"transient faults (429/500/502/503/reset), {len(scene.busy)} orders busy (409) on "
        f"their first cancel, a stop-out placing {STOP_OUT_ORDERS} orders on each account "
        f"when its positions close, {args.latency * 1000:g} ms latency; flatten of every "
        f"account through one client, concurrency {concurrency}"
    )


def _report(result: FlattenResult, left: Mapping[str, int], args: argparse.Namespace) -> None:
    verified = result.verified and not any(left.values())
    if args.json:
        document = {"verified": verified, "left_open": dict(left), "flatten": result.as_dict()}
        output.print_json(document)
        return
    flatreport.print_flatten(result, None)
    accounts = result.accounts.values()
    ids = sum(len(a.orders) + len(a.stop_orders) for a in accounts)
    sent = sum(a.orders.attempts + a.stop_orders.attempts for a in accounts)
    closes = sum(a.positions.requests for a in accounts)
    output.paragraph(
        f"requests: {sent} cancels for {ids} ids ({sent - ids} retries) and {closes} bulk closes"
    )
    counts = (
        f"{left['orders']} orders, {left['stop_orders']} stop orders and "
        f"{left['positions']} positions"
    )
    if verified:
        output.say(f"the simulator confirms: {counts} left open")
    else:
        output.say(f"NOT verified: the simulator shows {counts} left open")


def _report_partial(
    run: BulkRun | None,
    sim: FrontOfficeSimulator,
    args: argparse.Namespace,
    *,
    error: Exception | None,
) -> None:
    """What was done when Ctrl-C (`error` None) or a failure cut the demo short; `run` is
    None when that happened during the setup, before the flatten started."""
    left = _left_open(sim)
    if args.json:
        end = {"interrupted": True} if error is None else {"error": error_document(error)}
        flatten = None if run is None else run.flatten_document()
        output.print_json({"verified": False, "left_open": left, **end, "flatten": flatten})
    if run is None:
        made = sum(left.values())
        output.note(f"interrupted during the setup ({made} made): nothing was cancelled")
        return
    what = "interrupted" if error is None else "stopped by an error"
    output.note(
        f"{what}: {len(run.done())} cancels answered; the simulator shows {left['orders']} "
        f"orders, {left['stop_orders']} stop orders and {left['positions']} positions open"
    )
