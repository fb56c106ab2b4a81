"""The `simulate` and `demo` commands: the loopback simulator, standalone or cancelled-all.

`demo` shows the library at work: `cancel_all_orders` on each account of a simulator that
injects faults, through one client, verified by the library's own last snapshot and then by
asking the simulator itself. The simulator is imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import output
from .common import (
    EXIT_FAILED,
    EXIT_OK,
    BulkRun,
    ReportedError,
    UsageError,
    add_options,
    error_document,
    exit_code,
    non_negative_int,
    port_number,
    rate,
    seconds,
)
from .process import divert_signals
from .progress import progress_bar

if TYPE_CHECKING:
    from frontoffice_async import BulkCancelResult, FrontOfficeClient, Order
    from frontoffice_async.testing import FaultPlan, FrontOfficeSimulator

__all__ = ["add_commands"]

DEMO_CONCURRENCY = 64
#: One order in this many answers its first cancel with 409 (the platform is busy with it):
#: a failure for that round, which the next round of cancel-all retries.
BUSY_EVERY = 100
_MARKETS = ("spot.eth_usdt", "spot.btc_usdt")
_CHUNK = 2000  # orders added between two turns of the event loop


def add_commands(commands: Any) -> None:
    """Register `simulate` and `demo` on the CLI's subparsers (`commands`)."""
    _add_simulate(commands)
    _add_demo(commands)


def _add_simulate(commands: Any) -> None:
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


def _add_demo(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="cancel-all on an in-process simulator with faults, verified",
        description="Start the simulator in-process with open orders on two accounts, "
        "transient faults and a few orders busy (409) on their first cancel; run the "
        "library's cancel_all_orders on each account through one client; print the summary, "
        "whether each was verified and in how many rounds, and what the simulator says is "
        "left. Exit 0 only when verified. Needs no configuration.",
    )
    arg = demo.add_argument
    arg(
        "--orders",
        metavar="N",
        type=non_negative_int,
        default=2000,
        help="open orders (default: %(default)s)",
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


# --- simulate -----------------------------------------------------------------------------------


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
            await _spread_orders(sim, args.orders)
            _print_simulator(sim, args)
            await stop.wait()
    finally:
        requests = sim.stats.requests
        await sim.close()
        output.note(f"simulator stopped after {requests} requests")
    return EXIT_OK


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
    lines = [
        f"Front Office simulator listening on {sim.url}",
        f"accounts: {', '.join(output.printable(a) for a in account_ids)}",
        f"open orders: {args.orders}, fault rate {args.fault_rate:g}",
        f"token: {sim.token}  (a throwaway test token)",
        "\nPoint the CLI or your bot at it:\n",
        *(f"export {name}={shlex.quote(value)}" for name, value in env.items()),
        "\nPress Ctrl-C to stop.",
    ]
    output.say("\n".join(lines))


# --- demo ---------------------------------------------------------------------------------------


async def _cmd_demo(args: argparse.Namespace) -> int:
    from frontoffice_async.testing import FrontOfficeSimulator  # noqa: PLC0415

    sim = FrontOfficeSimulator(latency=args.latency, seed=args.seed)
    runs: dict[str, BulkRun] = {}  # filled when the cancels start
    try:
        async with sim:
            ids = await _spread_orders(sim, args.orders)
            busy = ids[::BUSY_EVERY]
            sim.faults = _faults(args, busy)
            results, left = await _run_demo(sim, args, runs, busy=len(busy))
    except asyncio.CancelledError:
        if not runs:  # interrupted during the setup: say so, and nothing was cancelled
            _report_partial(runs, sim, args, error=None)
        raise
    failed = any(exit_code(r, verify=True) for r in results.values())
    return EXIT_FAILED if failed or left else EXIT_OK


async def _run_demo(
    sim: FrontOfficeSimulator, args: argparse.Namespace, runs: dict[str, BulkRun], *, busy: int
) -> tuple[dict[str, BulkCancelResult[Order]], list[str]]:
    """cancel-all on every account of the simulator (`runs`: their outcomes as they come)."""
    from frontoffice_async import FrontOfficeError  # noqa: PLC0415

    concurrency = args.concurrency or DEMO_CONCURRENCY
    if not args.json:
        _print_intro(sim, args, busy, concurrency)
    bar = progress_bar(args)
    runs.update({a: BulkRun(on_each=bar.advance if bar else None) for a in sim.account_ids})
    async with _demo_client(sim, args, concurrency) as client:
        if bar:
            bar.start(args.orders)
        try:
            results = await _cancel_all_accounts(client, runs)
        except asyncio.CancelledError:
            if bar:
                bar.stop()
            _report_partial(runs, sim, args, error=None)
            raise
        except FrontOfficeError as exc:
            if bar:
                bar.stop()
            if not any(run.done() for run in runs.values()):
                raise  # nothing done: the error alone says it all
            _report_partial(runs, sim, args, error=exc)
            raise ReportedError(exc) from exc
        finally:
            if bar:
                bar.stop()
        left = sim.open_order_ids()
        _report(results, left, args)
    return results, left


def _demo_client(
    sim: FrontOfficeSimulator, args: argparse.Namespace, concurrency: int
) -> FrontOfficeClient:
    from frontoffice_async import FrontOfficeClient, RetryPolicy  # noqa: PLC0415

    # Faults strike 10% of requests: 8 attempts make a failed id a ~1e-8 event, and a small
    # backoff keeps the whole run to a few seconds.
    retry = RetryPolicy(max_attempts=8, base_delay=0.005, max_delay=0.2, deadline=10.0)
    return FrontOfficeClient(
        sim.url, token=sim.token, retry=retry, timeout=args.timeout, concurrency=concurrency
    )


async def _cancel_all_accounts(
    client: FrontOfficeClient, runs: Mapping[str, BulkRun]
) -> dict[str, BulkCancelResult[Order]]:
    """`cancel_all_orders` on every account at once, through the one client."""
    try:
        async with asyncio.TaskGroup() as group:
            tasks = {
                account: group.create_task(
                    client.cancel_all_orders(account_id=account, on_outcome=run.on_outcome)
                )
                for account, run in runs.items()
            }
    except* Exception as failure:  # HubError, 401...: one line on stderr, as for any command
        raise failure.exceptions[0] from None
    return {account: task.result() for account, task in tasks.items()}


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


def _print_intro(
    sim: FrontOfficeSimulator, args: argparse.Namespace, busy: int, concurrency: int
) -> None:
    output.paragraph(
        f"demo: simulator at {sim.url}, {args.orders} open orders on {len(sim.account_ids)} "
        f"accounts, {args.fault_rate:.0%} transient faults (429/500/502/503/reset), {busy} "
        f"orders busy (409) on their first cancel, {args.latency * 1000:g} ms latency; "
        f"cancel_all_orders on each account through one client, concurrency {concurrency}"
    )


def _report(
    results: Mapping[str, BulkCancelResult[Order]], left: list[str], args: argparse.Namespace
) -> None:
    verified = all(r.verified for r in results.values()) and not left
    if args.json:
        accounts = {account: result.as_dict() for account, result in results.items()}
        output.print_json({"verified": verified, "left_open": len(left), "accounts": accounts})
        return
    output.print_summary(results, verify=True)
    for account, result in results.items():
        output.print_problems(result)
        # Shorter than cancel-all's verdict: with the account before it, one line of 80.
        line = output.verdict(result)
        if result.verified:
            rounds = f"{result.rounds} round" + ("" if result.rounds == 1 else "s")
            line = f"verified in {rounds} (a fresh snapshot shows none)"
        output.say(f"{output.printable(account)}: {line}")
    counts = sorted({r.rounds for r in results.values()})
    rounds = "-".join(str(n) for n in counts[:: max(len(counts) - 1, 1)])
    rounds += " round" if counts == [1] else " rounds"
    if verified:
        output.say(f"verified in {rounds}: the simulator confirms 0 orders left open")
    else:
        shown = output.printable(", ".join(left[:10]) + (", ..." if len(left) > 10 else ""))
        output.say(f"NOT verified after {rounds}: {len(left)} left open: {shown}")


def _report_partial(
    runs: Mapping[str, BulkRun],
    sim: FrontOfficeSimulator,
    args: argparse.Namespace,
    *,
    error: Exception | None,
) -> None:
    """What was done when Ctrl-C (`error` None) or a failure cut the demo short; `runs` is
    empty when that happened during the setup, before any cancel."""
    left = len(sim.open_order_ids())
    if args.json:
        accounts = {a: run.document(snapshots=True) for a, run in runs.items()}
        end = {"interrupted": True} if error is None else {"error": error_document(error)}
        output.print_json({"verified": False, "left_open": left, **end, "accounts": accounts})
    elif runs:
        output.print_summary({a: run.partial() for a, run in runs.items()}, verify=False)
    if not runs:
        output.note(f"interrupted during the setup ({left} orders made): nothing was cancelled")
        return
    what = "interrupted" if error is None else "stopped by an error"
    output.note(f"{what}: {left} orders left open on the simulator")


async def _spread_orders(sim: FrontOfficeSimulator, total: int) -> list[str]:
    """`total` open orders, split evenly over the accounts, two markets and both sides.

    Made a chunk at a time, letting the loop run in between: Ctrl-C must not wait for a big
    `--orders` to be set up.
    """
    accounts = list(sim.account_ids)
    slots = [(a, m, s) for a in accounts for m in _MARKETS for s in ("Buy", "Sell")]
    ids: list[str] = []
    for index, (account, market, side) in enumerate(slots):
        n = total // len(slots) + (index < total % len(slots))
        while n > 0:
            chunk = min(n, _CHUNK)
            ids += sim.add_orders(chunk, account_id=account, market_id=market, side=side)
            n -= chunk
            await asyncio.sleep(0)
    return ids
