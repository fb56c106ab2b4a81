"""FrontOfficeSimulator: a real aiohttp server on loopback that speaks the Front Office API.

It keeps order and position state, checks tokens and accounts, injects faults, and logs every
request.
"""

from __future__ import annotations

import asyncio
import signal
import types
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Self

from aiohttp import web

from frontoffice_async.testing import _arguments as args
from frontoffice_async.testing._app import Settings, build_application
from frontoffice_async.testing._dispenser import FaultDispenser
from frontoffice_async.testing._log import RecordedRequest, RequestLog, SimulatorStats
from frontoffice_async.testing._order import SimulatedOrder
from frontoffice_async.testing._position import SimulatedPosition
from frontoffice_async.testing._scene import Scene
from frontoffice_async.testing._signals import caught_signals
from frontoffice_async.testing.faults import FaultPlan

__all__ = ["DEFAULT_ACCOUNT_ID", "FrontOfficeSimulator"]

#: The first account the simulator's default token owns.
DEFAULT_ACCOUNT_ID = "685a7eaa360f9e7416221a61"
_SECOND_ACCOUNT_ID = "685a7eaa360f9e7416221a62"

# Requests still running when the simulator closes get this long to finish; sleeps the
# simulator itself makes (latency, SLOW) end at once when it closes.
_SHUTDOWN_TIMEOUT = 1.0


class FrontOfficeSimulator:
    """A Front Office server on loopback for testing trading bots and clients.

    It serves accounts, place and cancel order, place and cancel stop order, close all
    positions and close one, the OpenOrders and OpenPositions hub streams and (with
    `offline_token`) the token exchange; checks the bearer token and `accountId`; keeps
    order and position state; injects the faults of a `FaultPlan`; and records every
    request.

    For example:

    ```python
    async with FrontOfficeSimulator(faults=FaultPlan.uniform(0.1)) as sim:
        ids = sim.add_orders(100)
        ...  # point your client at sim.url with sim.token and DEFAULT_ACCOUNT_ID
        assert sim.open_order_ids() == []
    ```

    Args:
        accounts: Account ids the default token owns; the first is the default account.
            Each is 1 to 128 characters of plain ASCII without spaces, as a client sends.
        token: The default bearer token; None derives `sim-<hex>` from `seed`. Plain ASCII
            without spaces or control characters, as the platform's tokens are.
        faults: The fault plan; None injects no faults. Replaceable later via `faults`.
        latency: Seconds every REST response waits before it is handled.
        seed: Order and position ids, tokens and trace ids derive from it.
        host: Interface to listen on.
        port: TCP port; 0 picks a free one.
        offline_token: Enables `POST /frontoffice/api/v4/access-token` for this token
            (plain ASCII, as `token`).
        access_token_ttl: Lifetime in seconds of the tokens that exchange issues.
        ping_interval: Seconds of silence after which the hub sends a SignalR ping.
        client_timeout: Seconds a hub client may send nothing before the hub closes its
            connection (ASP.NET Core's ClientTimeoutInterval); None never closes.

    A bad argument raises TypeError (wrong type) or ValueError (bad value) naming it.
    """

    def __init__(
        self,
        *,
        accounts: Sequence[str] = (DEFAULT_ACCOUNT_ID, _SECOND_ACCOUNT_ID),
        token: str | None = None,
        faults: FaultPlan | None = None,
        latency: float = 0.0,
        seed: int = 0,
        host: str = "127.0.0.1",
        port: int = 0,
        offline_token: str | None = None,
        access_token_ttl: float = 3600.0,
        ping_interval: float = 15.0,
        client_timeout: float | None = 30.0,
    ) -> None:
        self._account_ids = args.check_accounts(accounts)
        if token is not None:
            args.check_token("token", token)
        self._settings = Settings(
            seed=seed,
            latency=latency,
            offline_token=offline_token,
            access_token_ttl=access_token_ttl,
            ping_interval=ping_interval,
            client_timeout=client_timeout,
        )
        self._host = args.check_host(host)
        self._port = args.check_port(port)
        self._scene = scene = Scene(self._account_ids, seed)
        self._token = scene.tokens.issue(self._account_ids, token=token)
        self._log = RequestLog(secrets=() if offline_token is None else (offline_token,))
        self._dispenser = FaultDispenser(args.check_plan(faults))
        # Set when closing starts (pending sleeps end, `serve_until_stopped` returns) and
        # when it is done (a second `close()` waits for the first).
        self._closing = asyncio.Event()
        self._closed_event = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    def __repr__(self) -> str:
        where = self._url or ("closed" if self._scene.closed else "not started")
        orders, positions = len(self._scene.book.orders), len(self._scene.positions.positions)
        return f"<FrontOfficeSimulator {where} orders={orders} positions={positions}>"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Start listening; `url` is valid afterwards. A simulator starts only once."""
        if self._scene.closed:
            raise RuntimeError("this FrontOfficeSimulator is closed; create a new one")
        if self._runner is not None:
            raise RuntimeError("this FrontOfficeSimulator is already started")
        app = build_application(
            self._scene,
            log=self._log,
            dispenser=self._dispenser,
            closing=self._closing,
            settings=self._settings,
        )
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        self._runner = runner

    async def close(self) -> None:
        """Stop the server gracefully. Idempotent; a second call waits for the first.

        Pending sleeps (latency, SLOW faults) end at once. Every hub connection gets the
        SignalR Close message `{"type":7,"allowReconnect":true}` and a normal websocket
        close, as ASP.NET Core sends on shutdown; a client that does not answer the close
        within half a second is cut off, so `close()` never hangs on a peer.
        """
        if self._scene.closed:
            await self._closed_event.wait()
            return
        self._scene.closed = True
        self._url = None
        self._closing.set()
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                await runner.cleanup()
        finally:
            self._closed_event.set()

    async def serve_until_stopped(
        self, signals: Iterable[int] = (signal.SIGINT, signal.SIGTERM)
    ) -> signal.Signals | None:
        """Serve until SIGINT or SIGTERM arrives, then close gracefully; return that signal.

        Starts the simulator first if needed. Returns None when `close()` was called from
        elsewhere; closes the simulator too when the awaiting task is cancelled. The signal
        handlers live only for the call and the previous ones are put back. On Windows, or
        outside the main thread, no handler can be installed: then only cancellation (Ctrl-C
        under `asyncio.run`) or `close()` stops it.

        For example, a script that a process manager may stop with SIGTERM:

        ```python
        async def main() -> None:
            sim = FrontOfficeSimulator(port=8080)
            await sim.start()
            sim.add_orders(100)
            print(sim.url, sim.token)
            await sim.serve_until_stopped()  # hub clients get a graceful Close
        ```
        """
        if self._runner is None:
            await self.start()
        received: list[signal.Signals] = []

        def on_signal(sig: signal.Signals) -> None:
            received.append(sig)
            self._closing.set()

        try:
            with caught_signals(signals, on_signal):
                await self._closing.wait()
        finally:
            await self.close()
        return received[0] if received else None

    @property
    def url(self) -> str:
        """The base URL, e.g. `http://127.0.0.1:54321` (no trailing slash)."""
        if self._url is None:
            raise RuntimeError("the FrontOfficeSimulator is not running; use `async with`")
        return self._url

    @property
    def token(self) -> str:
        """The default bearer token; it owns every account in `account_ids`."""
        return self._token

    @property
    def account_ids(self) -> tuple[str, ...]:
        """The simulated accounts, the default one first."""
        return self._account_ids

    @property
    def orders(self) -> Mapping[str, SimulatedOrder]:
        """Every order and stop order by id (a live, read-only view)."""
        return types.MappingProxyType(self._scene.book.orders)

    @property
    def positions(self) -> Mapping[str, SimulatedPosition]:
        """Every position, open or closed, by id (a live, read-only view)."""
        return types.MappingProxyType(self._scene.positions.positions)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received since start or `reset_log()`, in arrival order (a copy)."""
        return self._log.records()

    @property
    def stats(self) -> SimulatorStats:
        """Request counters since start or `reset_log()`."""
        return self._log.stats()

    @property
    def faults(self) -> FaultPlan:
        """The fault plan in force; assigning a new one restarts its scripts and sequence."""
        return self._dispenser.plan

    @faults.setter
    def faults(self, plan: FaultPlan | None) -> None:
        self._scene.check_open("assigning faults")
        self._dispenser.replace(args.check_plan(plan))

    def add_orders(
        self,
        count: int,
        *,
        account_id: str | None = None,
        market_id: str = "spot.eth_usdt",
        side: str | None = None,
        status: str = "Pending",
        order_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Add `count` resting limit orders and return their ids.

        Ids are 26-character ULID-like strings, the same for the same seed; `order_ids`
        supplies your own instead (a list of exactly `count` distinct non-empty strs; any
        text, slashes and spaces included, to test how a client sends them). `account_id`
        None means the default account; `side` None alternates Buy and Sell. `status` is any
        non-empty str: one outside Started/Pending/Working makes orders that cannot be
        cancelled, and an unknown one is allowed on purpose, to test a client's tolerance.

        Allowed before `start()`, to set the scene; a closed simulator raises RuntimeError.
        A bad argument raises TypeError or ValueError naming it, and adds nothing.
        """
        return self._scene.add_orders(
            "order", count, account_id, market_id, side, status, order_ids
        )

    def add_stop_orders(
        self,
        count: int,
        *,
        account_id: str | None = None,
        market_id: str = "perp.btc_usdt",
        side: str | None = None,
        status: str = "WaitingForActivation",
        order_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Add `count` stop orders (cancelled via the stop-orders endpoint); see `add_orders`."""
        return self._scene.add_orders(
            "stop", count, account_id, market_id, side, status, order_ids
        )

    def update_order(self, order_id: str, /, **changes: Any) -> SimulatedOrder:
        """Change fields of an order (e.g. `status="Completed"`) and tell the OpenOrders hub.

        The keywords are `SimulatedOrder` fields. Str fields take a non-empty str: any text
        UTF-8 can carry, so an unknown status or side can test how a client copes. Amounts
        and prices take a finite `Decimal` that fits the platform's decimal; an `int`,
        `float` or decimal str is converted (`requested_price="4400"`). Timestamps take a
        `datetime`, stored in UTC (naive ones are taken as UTC). `requested_price`,
        `activation_price` and `cancellation_date` may be None. A new `market_id` brings
        its `market_display_name` along unless that is given too; `updated_at` becomes now
        unless given.

        Every change is checked before any is applied. Raises KeyError for an unknown id;
        TypeError for `order_id`, `kind` or `account_id` (platform orders never move between
        accounts: add one to the other account instead) or an unknown field; TypeError or
        ValueError naming the field for a bad value. Then the order is unchanged and no hub
        stream hears of it. A closed simulator raises RuntimeError.
        """
        self._scene.check_open("update_order()")
        return self._scene.book.update(order_id, changes)

    def open_order_ids(self, account_id: str | None = None) -> list[str]:
        """Ids of active orders (Started/Pending/Working) of one account, or of all."""
        return [order.order_id for order in self._scene.book.open_orders(account_id)]

    def open_stop_order_ids(self, account_id: str | None = None) -> list[str]:
        """Ids of stop orders waiting for their price (WaitingForActivation), of one account
        or of all: the ones a cancel still finds active."""
        stops = self._scene.book.open_orders(account_id, kind="stop")
        return [stop.order_id for stop in stops]

    def activate_stop_order(self, order_id: str, /) -> str:
        """Trigger a waiting stop order, as the platform does when the price crosses; return
        the id of the order it places.

        The stop order becomes `Activated` (a final status: cancelling it answers as for any
        final stop order) and a new active order appears with its own id and
        `source="StopOrder"`, announced on OpenOrders: a Limit one rests (Pending) at the
        stop order's price, a Market one is executing (Working). Raises KeyError for an id
        that is no stop order, ValueError for one that is not WaitingForActivation, and
        RuntimeError on a closed simulator.
        """
        return self._scene.activate_stop_order(order_id)

    def add_positions(
        self,
        count: int,
        *,
        account_id: str | None = None,
        market_id: str = "cfd.btc_usd",
        side: str | None = None,
        lot_amount: Decimal | int | float | str = Decimal("0.1"),
        position_ids: Sequence[str] | None = None,
    ) -> list[str]:
        """Open `count` positions and return their ids; they show on OpenPositions.

        Positions exist on CFD (`cfd.`) and Perpetual (`perp.`) markets: a SPOT or other
        market is a ValueError. Ids are ULID-like and the same for the same seed, or your own
        `position_ids` (as `order_ids` in `add_orders`). `side` None alternates Buy and Sell;
        each opens a little below the current price, so Buy positions are in profit and Sell
        positions at a loss (what `PositivePnl` and `NegativePnl` bulk closes pick).
        `lot_amount` is a positive decimal (an int, float or str is converted). CFD positions
        have leverage 10, Perpetual ones none.

        Allowed before `start()`; a closed simulator raises RuntimeError. A bad argument
        raises TypeError or ValueError naming it, and adds nothing.
        """
        return self._scene.add_positions(
            count, account_id, market_id, side, lot_amount, position_ids
        )

    def open_position_ids(self, account_id: str | None = None) -> list[str]:
        """Ids of open positions (status `Always Open`) of one account, or of all."""
        positions = self._scene.positions.open_positions(account_id)
        return [position.position_id for position in positions]

    def stop_out_on_close(self, account_id: str | None = None, count: int = 1) -> None:
        """Make the next position close accepted on the account also place `count` orders,
        as the platform does itself in a stop-out.

        The next bulk close or single close answered 200 on that account (also one whose
        answer is then lost, or a NOT_APPLIED one) that names at least one open position
        places `count` active Market orders (status Working, `source="System"`,
        `reason="StopOut"`) on that position's market, opposite side, for its lots; they are
        announced on OpenOrders before the positions close. Then it is spent. Calling it
        again replaces what is armed; `count=0` disarms. Our model, not the platform's
        documented behaviour: a test of what a flatten does when orders appear mid-way.
        """
        self._scene.stop_out_on_close(account_id, count)

    def forbid_account(self, account_id: str) -> None:
        """Make every request naming `account_id` get 403, as an account the token does not
        own: REST requests with that `accountId` header, and hub stream invocations for it
        (a Completion with the same error). Listing accounts still shows it; streams already
        running go on. `allow_account` undoes it."""
        self._scene.forbid(account_id, forbidden=True)

    def allow_account(self, account_id: str) -> None:
        """Undo `forbid_account` (an account never forbidden is left as it is)."""
        self._scene.forbid(account_id, forbidden=False)

    def issue_token(self, account_ids: Iterable[str] | None = None) -> str:
        """A new valid bearer token owning `account_ids` (None: every account).

        `account_ids` is a collection of the simulator's account ids (a single str is
        refused with TypeError, not split into characters); an unknown one is a ValueError.
        A closed simulator raises RuntimeError.
        """
        return self._scene.issue_token(account_ids)

    def revoke_token(self, token: str) -> None:
        """Make `token` invalid: later requests with it get 401 (an unknown str is ignored).

        A token that is not a str raises TypeError; a closed simulator RuntimeError.
        """
        self._scene.revoke_token(token)

    def requests_for(self, order_id: str) -> list[RecordedRequest]:
        """The logged requests naming `order_id` (an order or a position id), in arrival order."""
        return [
            record
            for record in self._log.records()
            if order_id in (record.order_id, record.position_id)
        ]

    def reset_log(self) -> None:
        """Forget the logged requests and zero `stats`."""
        self._log.reset()
