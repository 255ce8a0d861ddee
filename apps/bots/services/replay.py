"""Forward tests ("replays"): a bot's strategy ticked over stored candles at full speed.

A replay runs the bot's own code, not a second simulator: each candle is a
tick with a ``GatewayBroker`` over the paper exchange, its decisions go through
``bot_place_order`` (so ``order_place``, the orders' fills and positions), and
resting orders are filled by the paper exchange's matching, on a paper account
made for the replay (``PaperAccount.replay_id``; never the bot's own) and priced
by a ``ReplayPriceSource``: at the tick for candle ``i`` the candle ``i + 1`` is
forming, so a market order fills at ``open[i + 1]`` and a resting order placed
then rests from candle ``i + 1`` on, which is the backtest's rule. Its trades
therefore equal a backtest of the same strategy, parameters and candles with
the config stored in its result (``result["config"]``; the tests prove it).

Differences from a live tick, each for the equality with the backtest:

* one strategy object lives for the whole replay (a live tick restores the
  strategy's saved state instead, ``strategy_state``; a user strategy's object lives
  in the replay's own sandbox session); event strategies get
  ``on_fill`` for every order that filled since the previous tick (as the
  backtest calls it), before ``on_data``, as live; order ids the strategy sees
  are stable for the whole replay;
* the signal window holds the period's candles only (the backtest sees no
  earlier ones);
* the paper account copies the bot's paper fees and slippage but has no
  volume cap (the engine has none); a position still open at the end is
  reported as open, not closed (the backtest runs with ``close_at_end=False``);
* a futures bot's replay account is a futures account with the bot's leverage
  and margin mode and its paper account's funding (a constant rate, else the
  market's stored funding history, which the config then carries); with a
  position open every candle is matched (liquidation and funding can happen in
  any), and the funding paid between two candles is booked to the trade that
  was open, as the engine books it.

Speed: nothing is read from the database for a candle in which no open order
can fill (the engine's own "can anything happen" test), so a quiet candle
costs the strategy call alone. Events are muted: the replay's orders are not
the user's trading. The replay's account is deleted when it ends; the result
keeps what it did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min

from apps.accounts.quotas import Quota, quota_guard
from apps.backtests.engine.broker import DUST
from apps.backtests.engine.candles import Candles
from apps.backtests.engine.errors import BacktestError
from apps.backtests.engine.metrics import compute_metrics
from apps.backtests.engine.orders import OrderInfo
from apps.backtests.engine.slippage import SlippageModel
from apps.backtests.engine.strategy import Candle, SignalStrategy
from apps.backtests.models import StrategyKind
from apps.backtests.strategies.registry import build_strategy
from apps.backtests.strategies.sandbox.session import KEEP, SandboxSession
from apps.backtests.strategies.stepping import event_step, signal_flags
from apps.bots.models import Bot, BotReplay
from apps.bots.services.broker import FuturesState, GatewayBroker
from apps.bots.services.lifecycle import BOTS_QUEUE
from apps.bots.services.log import bot_event_add
from apps.bots.services.loop import DEFAULT_WARMUP, act_on_signals
from apps.bots.services.strategy_state import IDS_PER_CANDLE, fill_info
from apps.bots.services.user_code import start_session
from apps.core.errors import Conflict, DomainError, ValidationFailed
from apps.core.events import events_muted
from apps.core.jobs import (
    JobCancelled,
    JobMonitor,
    JobStatus,
    JobTimeLimitExceeded,
    job_cancel,
    job_publish_status,
    job_send,
    outage_error,
)
from apps.exchanges.gateway.base import Order as GatewayOrder
from apps.exchanges.gateway.paper import DEFAULT_SLIPPAGE, PaperGateway, paper_account_reset, split_symbol
from apps.exchanges.gateway.prices import ReplayPriceSource
from apps.exchanges.models import PaperAccount, PaperPosition, PaperTrade
from apps.marketdata.timeframes import timeframe_ms

logger = logging.getLogger(__name__)

REPLAY_TASK = "apps.bots.tasks.bot_replay_run"
PROGRESS_EVENT = "bot.replay.progress"
MAX_CANDLES = 500_000
EQUITY_SUMMARY_POINTS = 200
# A position below this fraction of its largest size is rounding dust: the trade is closed.
FLAT_FRACTION = 1e-9
EXIT_REASONS = {
    "market": "signal",
    "limit": "limit",
    "stop_market": "stop",
    "stop_limit": "stop",
    "take_profit": "take_profit",
}


def time_limit_seconds() -> float:
    return float(getattr(settings, "BOT_REPLAY_TIME_LIMIT_SECONDS", 30 * 60))


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _period_candles(bot: Bot, start: datetime, end: datetime) -> Candles:
    from apps.backtests.services.runner import load_candles
    from apps.marketdata.errors import NoCandles, UnknownMarket

    try:
        # The selector's end is exclusive; the period's end is the last candle's open time.
        return load_candles(
            exchange=bot.exchange, symbol=bot.symbol, timeframe=bot.timeframe, start=start, end=_ms(end) + 1
        )
    except (NoCandles, UnknownMarket):
        return Candles.from_arrays(*(np.empty(0) for _ in range(6)))


# ------------------------------------------------------------------ services
def bot_replay_create(*, bot: Bot, start: datetime, end: datetime, enqueue: bool = True) -> BotReplay:
    """Store a pending replay of ``bot`` over ``start..end`` and queue it (``bots`` queue).

    Raises ``ValidationFailed`` when the period is empty or has fewer than two
    stored candles, ``Conflict`` for a webhook bot (no strategy) or while another replay
    of the bot is still active, ``QuotaExceeded`` when the owner's research-jobs quota is used
    up. A user strategy runs in a sandbox session of its own (``user_code.start_session``), at
    the version the bot is pinned to now.
    """
    errors: dict[str, list[str]] = {}
    if end <= start:
        errors["end"] = ["must be after start"]
    else:
        candles = _period_candles(bot, start, end)
        if len(candles) < 2:
            errors["start"] = [
                f"fewer than two stored {bot.timeframe} candles of {bot.symbol} on {bot.exchange} "
                "in this period; import or download them first"
            ]
        elif len(candles) > MAX_CANDLES:
            errors["end"] = [f"at most {MAX_CANDLES} candles per replay; this period has {len(candles)}"]
    if errors:
        raise ValidationFailed(next(iter(errors.values()))[0], fields=errors)
    if bot.source == Bot.Source.WEBHOOK:
        raise Conflict("A webhook bot trades the signals it receives: it has no strategy to replay.")
    with quota_guard(user_id=bot.owner_id, quota=Quota.RESEARCH_JOBS):
        if BotReplay.objects.filter(bot=bot).active().exists():
            raise Conflict("A replay of this bot is already running; wait for it or cancel it.")
        replay = BotReplay.objects.create(
            owner_id=bot.owner_id,
            bot=bot,
            start=start,
            end=end,
            candles=len(candles),
            strategy=bot.strategy,
            strategy_version=bot.strategy_version if bot.strategy_kind == StrategyKind.USER else None,
            params=dict(bot.params or {}),
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue(replay))
    return replay


def _enqueue(replay: BotReplay) -> None:
    job_send(replay, REPLAY_TASK, queue=BOTS_QUEUE)


def bot_replay_cancel(*, replay: BotReplay) -> BotReplay:
    """Cancel a replay: a pending one at once, a running one at its next candle (409 when finished)."""
    return job_cancel(replay)


def _finish(replay: BotReplay, status: str, **fields: Any) -> bool:
    if BotReplay.objects.finish(replay.pk, status, attempt=replay.attempt, **fields):
        job_publish_status(BotReplay.objects.get(pk=replay.pk))
        return True
    return False


def bot_replay_execute(*, replay_id: int, worker: str = "", attempt: int = 1) -> str | None:
    """Run a pending replay to its end (the task calls this); returns its final status.

    ``None`` when the replay was not pending (a redelivered task, or cancelled first).
    """
    if not BotReplay.objects.claim(replay_id, worker=worker, attempt=attempt):
        return None
    replay = BotReplay.objects.select_related("bot", "bot__owner").get(pk=replay_id)
    job_publish_status(replay)
    monitor = JobMonitor(replay, event=PROGRESS_EVENT, time_limit=time_limit_seconds())
    account = None
    try:
        account = _replay_account(replay)
        with events_muted(), _fast_commits():
            result = _Replay(replay, account, monitor).run()
    except JobCancelled:
        _finish(replay, JobStatus.CANCELLED)
        return JobStatus.CANCELLED
    except JobTimeLimitExceeded as exc:
        _finish(replay, JobStatus.FAILED, error_code="time_limit", error=str(exc))
        return JobStatus.FAILED
    except (DomainError, BacktestError) as exc:
        message = str(getattr(exc, "message", None) or exc)
        _finish(replay, JobStatus.FAILED, error_code=getattr(exc, "code", "") or "error", error=message)
        return JobStatus.FAILED
    except Exception as exc:  # a bug of ours: keep the traceback, tell the user something readable
        logger.exception("bot replay %s failed", replay_id)
        _finish(
            replay,
            JobStatus.FAILED,
            **outage_error(exc)
            or {
                "error_code": "internal",
                "error": f"Internal error ({type(exc).__name__}); the administrators can find it in the logs.",
            },
        )
        return JobStatus.FAILED
    finally:
        if account is not None:
            account.delete()  # its orders, fills and positions go with it; the result keeps the trades
    if not _finish(replay, JobStatus.COMPLETED, result=result):
        return None  # cancelled, deleted or re-sent meanwhile: this run's result is not the replay's
    bot_event_add(
        bot=replay.bot,
        kind="lifecycle",
        message=f"Replay {replay_id} finished: {len(result['trades'])} trade(s) over {replay.candles} candles.",
        data={"replay": replay_id},
    )
    return JobStatus.COMPLETED


@contextmanager
def _fast_commits() -> Iterator[None]:
    """PostgreSQL: commits of this session do not wait for the disk while the replay runs.

    A replay commits after every order (``order_place`` sends after its commit), and on a
    busy disk the flush dominates; its rows are thrown away at the end, so losing the last
    few of them to a database crash costs nothing (the job is then failed by the reaper).
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO OFF")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


# ------------------------------------------------------------------ the account
def _like(bot: Bot) -> PaperAccount:
    """The bot's own paper account (its fees, slippage and funding), or a default one."""
    like = PaperAccount.objects.filter(user_id=bot.owner_id, bot_id=bot.pk, replay_id__isnull=True).first()
    return like or PaperAccount()  # the defaults a bot's paper account would get


def _replay_account(replay: BotReplay) -> PaperAccount:
    """A fresh paper account for the replay with the bot's capital and the bot's paper fees
    (a futures bot: a futures account with its leverage, margin mode and funding rate)."""
    bot = replay.bot
    _base, quote = split_symbol(bot.symbol, futures=bot.is_futures)
    like = _like(bot)
    # An earlier attempt's account, left behind by a worker that died (its worker deletes its own).
    PaperAccount.objects.filter(replay_id=replay.pk).delete()
    account = PaperAccount.objects.create(
        user_id=bot.owner_id,
        replay_id=replay.pk,
        exchange=bot.exchange,
        maker_fee=like.maker_fee,
        taker_fee=like.taker_fee,
        slippage=like.slippage or DEFAULT_SLIPPAGE,
        max_volume_fraction=None,  # the backtest engine has no volume cap
    )
    settings = None
    if bot.is_futures:
        settings = {"market_type": PaperAccount.MarketType.FUTURES, "funding_rate": like.funding_rate}
    account = paper_account_reset(
        account=account, balances={quote: Decimal(bot.allocated_capital)}, settings=settings
    )
    if bot.is_futures:
        from apps.bots.services.accounts import bot_futures_setup

        bot_futures_setup(bot=bot, gateway=PaperGateway(account, prices=ReplayPriceSource({})))
    return account


def _funding_history(bot: Bot, data: Candles) -> list[list]:
    """The stored funding events of the bot's perpetual over the candles (what a backtest uses)."""
    from apps.core.errors import NotFound
    from apps.marketdata.selectors import funding_rates, market_get

    try:
        market = market_get(exchange=bot.exchange, symbol=bot.symbol)
    except NotFound:
        return []
    return funding_rates(market=market, start_ms=int(data.timestamp[0]), end_ms=int(data.timestamp[-1]) + 1)


def _config(replay: BotReplay, account: PaperAccount, funding: list[list] | None = None) -> dict[str, Any]:
    bot = replay.bot
    config: dict[str, Any] = {
        "initial_cash": float(bot.allocated_capital),
        "fee": {"type": "percentage", "maker": float(account.maker_fee), "taker": float(account.taker_fee)},
        "slippage": account.slippage,
        "close_at_end": False,
    }
    if bot.is_futures:
        config.update(
            market_type="futures",
            symbol=bot.symbol,
            leverage=float(bot.leverage),
            margin_mode=bot.margin_mode,
            allow_short=True,
            funding_rates=float(account.funding_rate)
            if account.funding_rate is not None
            else funding or None,
        )
    if bot.sizing:
        config["sizing"] = bot.sizing
    for name in ("stop_loss", "take_profit"):
        if getattr(bot, name) is not None:
            config[name] = getattr(bot, name)
    return config


# -------------------------------------------------------------------- the run
class _Replay:
    """One replay run: the candle loop, the id bookkeeping, the result."""

    def __init__(self, replay: BotReplay, account: PaperAccount, monitor: JobMonitor) -> None:
        self.replay, self.account, self.monitor = replay, account, monitor
        bot = replay.bot
        # The strategy as it was when the replay was asked for.
        bot.strategy, bot.params = replay.strategy, replay.params
        self.bot = bot
        self.session: SandboxSession | None = None
        self.symbol = bot.symbol
        self.futures = bot.is_futures
        self.base, self.quote = split_symbol(bot.symbol, futures=self.futures)
        self.data = _period_candles(bot, replay.start, replay.end)
        if len(self.data) < 2:
            raise ValidationFailed("The period has fewer than two stored candles now.", fields={"start": []})
        funding = _funding_history(bot, self.data) if self.futures and account.funding_rate is None else []
        self.n = len(self.data)
        # One closing candle past the end (flat at the last close): the last real candle can then
        # close, so resting orders fill in it as they do in the backtest.
        step = timeframe_ms(bot.timeframe)
        last_close = float(self.data.close[-1])
        series = {
            "timestamp": np.append(self.data.timestamp, self.data.timestamp[-1] + step),
            **{k: np.append(getattr(self.data, k), last_close) for k in ("open", "high", "low", "close")},
            "volume": np.append(self.data.volume, 0.0),
        }
        self.source = ReplayPriceSource(
            {self.symbol: _Arrays(series)}, cursor=1, funding={self.symbol: funding} if funding else None
        )
        probe = PaperGateway(account, prices=self.source)
        markets = {s: m for s, m in probe.load_markets().items() if s == self.symbol}
        self.gateway = PaperGateway(account, prices=self.source, markets=markets)
        self.slippage = SlippageModel(account.slippage or DEFAULT_SLIPPAGE)
        self.fee_rate = float(account.taker_fee)
        self.warmup = bot.warmup or DEFAULT_WARMUP
        if bot.strategy_kind == StrategyKind.USER:
            if replay.strategy_version_id is None:
                raise Conflict("The strategy version this replay was asked for has been deleted.")
            bot.strategy_version = replay.strategy_version
            # One session for the whole replay, holding one strategy object (as the backtest).
            self.session = start_session(bot)
            self.strategy = None
            self.signal = self.session.style == "signal"
        else:
            self.strategy = build_strategy(bot.strategy, bot.params)
            self.signal = isinstance(self.strategy, SignalStrategy)
        self.local_of: dict[str, int] = {}  # client order id -> the id the strategy got
        self.unreported: dict[int, int] = {}  # order pk -> local id, placed and not yet filled
        self.trades_seen = 0
        self.held = False
        self.brackets = False  # an order with a stop-loss or take-profit was placed
        self.resting = False  # orders may rest at the exchange (not only filled market orders)
        self.entry: float | None = None
        self.open: list[GatewayOrder] = []
        self.fills: list[OrderInfo] = []
        self.config = _config(replay, account, funding)
        # Futures: the position as the paper exchange holds it, and the funding paid so far,
        # with each payment's time (booked to the trade open then).
        self.position: PaperPosition | None = None
        self.funding_paid = Decimal(0)
        self.funding_events: list[tuple[int, float]] = []

    # ------------------------------------------------------------ snapshots
    def _step(self, i: int, dirty: bool) -> None:
        """Bring the account up to candle ``i``'s close; re-read it only when something changed."""
        self.fills = []
        if not (dirty or self.held or not self._quiet(i)):
            return  # no order can have filled: nothing to ask the database
        if dirty and not self.resting and not self.held:
            # Only market orders since the last look, filled and recorded when placed.
            self._snapshot(sync=False)
            return
        self.gateway.process(self.symbol)
        trades = PaperTrade.objects.filter(account=self.account).count()
        filled = trades != self.trades_seen
        self.trades_seen = trades
        if dirty or filled or self.held or self._holding():
            self._snapshot(sync=filled or self.held)

    def _holding(self) -> bool:
        """A futures position is open: any candle may liquidate it or charge funding."""
        return self.position is not None and bool(self.position.size)

    def _snapshot(self, *, sync: bool) -> None:
        from apps.orders.models import Fill, Order, Position
        from apps.orders.services import order_sync

        if sync:  # the orders half records the paper fills (fills, positions, bracket legs)
            order_sync(account=self.account, gateway=self.gateway)
        self.balance = self.gateway.fetch_balance()
        self.open = self.gateway.fetch_open_orders(self.symbol)
        self.resting = bool(self.open)
        orders = Order.objects.for_account(self.account)
        # Bracket legs the platform holds exist only after an order with a stop-loss or take-profit.
        self.held = self.brackets and orders.open().filter(held=True).exists()
        if not self.signal:  # signal strategies never ask for the entry price
            position = Position.objects.filter(paper_account=self.account, symbol=self.symbol).first()
            self.entry = (
                float(position.average_entry) if position is not None and position.average_entry else None
            )
        if self.futures:
            self._read_position()
        self.fills = []
        if self.unreported:
            done = list(orders.filter(pk__in=list(self.unreported)).exclude(status__in=Order.OPEN_STATUSES))
            # In the order they filled, as the backtest calls ``on_fill``.
            first_fill = dict(
                Fill.objects.filter(order__in=done)
                .values("order_id")
                .annotate(first=Min("id"))
                .values_list("order_id", "first")
            )
            for order in sorted(done, key=lambda o: (first_fill.get(o.pk, 0), o.pk)):
                local = self.unreported.pop(order.pk)
                if order.status == "filled":
                    self.fills.append(fill_info(order, local))

    def _read_position(self) -> None:
        self.position = PaperPosition.objects.filter(account=self.account, symbol=self.symbol).first()
        paid = self.position.funding if self.position is not None else Decimal(0)
        if paid != self.funding_paid:
            # Charged at the open of the forming candle at the latest (before its fills).
            self.funding_events.append((self.source.now_ms(self.symbol), float(paid - self.funding_paid)))
            self.funding_paid = paid

    def _futures_state(self) -> FuturesState | None:
        if not self.futures:
            return None
        position = self.position
        leverage, cross = float(self.bot.leverage), self.bot.margin_mode == "cross"
        if position is None or not position.size:
            return FuturesState(Decimal(0), None, leverage, cross, None, self.gateway._tiers(self.symbol))
        tiers = self.gateway._tiers(self.symbol)
        collateral = position.margin
        if position.margin_mode == "cross":  # the paper exchange's rule: the free balance too
            collateral += self.balance.get(self.quote).free
        liquidation = tiers.liquidation_price(
            position.side, float(position.entry_price), float(abs(position.size)), float(collateral)
        )
        return FuturesState(
            size=position.size,
            entry=float(position.entry_price),
            leverage=float(position.leverage),
            cross=position.margin_mode == "cross",
            liquidation=liquidation,
            tiers=tiers,
        )

    def _quiet(self, i: int) -> bool:
        """True when no open order can fill in candle ``i`` (and nothing is held by the platform)."""
        if self.held or self._holding():
            return False
        low, high = float(self.data.low[i]), float(self.data.high[i])
        return all(_untouched(order, low, high) for order in self.open)

    # ------------------------------------------------------------------ loop
    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:
            if self.session is not None:
                self.session.close()

    def _run(self) -> dict[str, Any]:
        started = time.monotonic()
        n, data = self.n, self.data
        closes = data.close
        equity = np.empty(n)
        base_held = np.empty(n)
        dirty = True
        initialized = False
        candle = Candle()
        for i in range(n):
            self.monitor.check()
            self.source.cursor = i + 1  # candle i has closed; i + 1 is forming
            self._step(i, dirty)
            dirty = False
            wallet = float(self.balance.get(self.quote).total)
            if self.futures:
                size = self.position.size if self.position is not None else Decimal(0)
                entry = float(self.position.entry_price or 0) if size else 0.0
                base_held[i] = float(size)
                equity[i] = wallet + float(size) * (float(closes[i]) - entry)
            else:
                size = self.balance.get(self.base).total
                base_held[i] = float(size)
                equity[i] = wallet + float(size) * float(closes[i])
            if i == n - 1:
                break  # orders placed on the last candle would fill after the period (as in the backtest)
            lo = max(0, i + 1 - self.warmup)
            broker = GatewayBroker(
                candles=data.slice(lo, i + 1),
                balance=self.balance,
                open_orders=[self._local(order) for order in self.open],
                base=self.base,
                quote=self.quote,
                sizing=self.bot.sizing,
                fee_rate=self.fee_rate,
                defaults={
                    "stop_loss": self.bot.stop_loss,
                    "take_profit": self.bot.take_profit,
                    "trailing_stop": self.bot.trailing_stop,
                },
                market_price=float(self.source.price(self.symbol)),
                slippage=self.slippage,
                entry_price=self.entry,
                first_id=(i + 1) * IDS_PER_CANDLE,
                futures=self._futures_state(),
            )
            window = broker.data
            if self.signal:
                flags = (
                    self.session.signals(window)
                    if self.session is not None
                    else signal_flags(self.strategy, window)
                )
                act_on_signals(flags, broker, allow_short=self.futures)
            elif self.session is not None:
                self.session.event(
                    window,
                    broker,
                    index=i,
                    fresh=not initialized,
                    state=KEEP if initialized else None,
                    fills=self.fills,
                )
            else:
                # ``on_fill`` sees the previous candle, as the backtest calls it while it fills
                # candle i, before the strategy's candle moves on to i.
                event_step(
                    self.strategy,
                    window,
                    broker,
                    index=i,
                    fresh=not initialized,
                    fills=self.fills,
                    candle=candle,
                )
            initialized = True
            if broker.decisions or broker.cancels:
                self._place(i, broker)
                dirty = True
            self.monitor.progress(100.0 * (i + 1) / n, details={"bot_id": self.bot.pk})
        seconds = time.monotonic() - started
        return self._result(equity, base_held, seconds)

    def _local(self, order: GatewayOrder) -> GatewayOrder:
        local = self.local_of.get(order.client_order_id or "")
        return order if local is None else replace(order, id=str(local))

    def _place(self, i: int, broker: GatewayBroker) -> None:
        from apps.bots.services.orders import bot_place_order
        from apps.orders.models import Order
        from apps.orders.services import order_cancel

        by_local = {str(local): cid for cid, local in self.local_of.items()}
        for cancelled in broker.cancels:
            cid = by_local.get(str(cancelled))
            order = Order.objects.for_account(self.account).filter(client_order_id=cid).first()
            if order is not None and order.is_open:
                try:
                    order_cancel(order=order, gateway=self.gateway)
                except Conflict:  # filled meanwhile: its fill is reported next candle
                    pass
                self.unreported.pop(order.pk, None)
        for k, decision in enumerate(broker.decisions):
            if k in broker.dropped:
                continue
            cid = f"replay{self.replay.pk}-{i}-{k}"
            local = broker.first_id + k
            self.local_of[cid] = local
            order = bot_place_order(
                bot=self.bot,
                decision=decision,
                client_order_id=cid,
                account=self.account,
                gateway=self.gateway,
            )
            if not self.signal:  # only event strategies hear of their fills (``on_fill``)
                self.unreported[order.pk] = local
            self.brackets |= bool(decision.get("stop_loss") or decision.get("take_profit"))
            self.resting |= decision.get("type") != "market" or order.is_open
        # ``order_place`` recorded the fills of what it placed (market orders fill at once): only
        # fills the paper exchange makes later need the orders half's sync.
        self.trades_seen = PaperTrade.objects.filter(account=self.account).count()

    # ---------------------------------------------------------------- result
    def _result(self, equity: np.ndarray, base_held: np.ndarray, seconds: float) -> dict[str, Any]:
        from apps.orders.models import Order

        types = dict(
            Order.objects.for_account(self.account)
            .exclude(exchange_order_id="")
            .values_list("exchange_order_id", "type")
        )
        fills = PaperTrade.objects.filter(account=self.account, symbol=self.symbol).order_by(
            "timestamp", "id"
        )
        trades, open_trade = _round_trips(
            list(fills),
            types,
            short=self.futures,
            funding=self.funding_events,
            leverage=float(self.bot.leverage),
        )
        data = self.data
        capital = float(self.config["initial_cash"])
        metrics = compute_metrics(
            data.timestamp,
            equity,
            trades,
            initial_equity=capital,
            benchmark_close=data.close,
            position_size=base_held,
            close=data.close,
        )
        every = max(1, -(-len(equity) // EQUITY_SUMMARY_POINTS))
        picks = list(range(0, len(equity), every))
        if picks[-1] != len(equity) - 1:
            picks.append(len(equity) - 1)
        return {
            "trades": trades,
            "open_position": open_trade,
            "metrics": {k: _clean(v) for k, v in metrics.items()},
            "equity": {
                "start": capital,
                "end": float(equity[-1]),
                "min": float(equity.min()),
                "max": float(equity.max()),
                "curve": [[int(data.timestamp[k]), float(equity[k])] for k in picks],
            },
            "config": self.config,
            "candles": self.n,
            "seconds": round(seconds, 3),
        }


class _Arrays:
    """What ``ReplayPriceSource`` reads: a timestamp and OHLCV arrays."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        for name, values in columns.items():
            setattr(self, name, values)


def _untouched(order: GatewayOrder, low: float, high: float) -> bool:
    """Whether candle ``low..high`` surely leaves ``order`` unfilled (the paper's fill rules)."""
    buy = order.side == "buy"
    price = None if order.price is None else float(order.price)
    stop = None if order.stop_price is None else float(order.stop_price)
    if order.type in ("limit", "take_profit") and price is not None:
        return low > price if buy else high < price
    if order.type == "stop_market" and stop is not None:
        return high < stop if buy else low > stop
    if order.type == "stop_limit" and stop is not None and price is not None:
        stop_quiet = high < stop if buy else low > stop
        limit_quiet = low > price if buy else high < price
        return stop_quiet and limit_quiet
    return False  # a market remainder, or anything else: look


def _round_trips(
    fills: list[Any],
    types: dict[str, str],
    *,
    short: bool = False,
    funding: list[tuple[int, float]] = (),
    leverage: float = 1.0,
) -> tuple[list[dict], dict | None]:
    """Flat-to-flat trades from the account's fills (``PaperTrade`` rows), booked as the engine books them.

    Spot: long only. ``short`` (futures): a sell opens a short, and a fill that takes the
    position through zero closes one trade and opens the next at its price, its fee shared
    pro rata (the engine's reversal). A liquidation's P&L is what the exchange took (the
    margin), its exit price the recorded one. ``funding``: ``(time, amount paid)``, booked
    to the trade open at that time; a trade's P&L is net of its fees and funding.
    """
    trades: list[dict[str, Any]] = []
    trade: dict[str, Any] | None = None
    size = Decimal(0)  # signed
    entry = 0.0
    # ``PaperTrade`` rows, or the gateway's ``Trade`` records (no liquidations among those).
    for fill in sorted(fills, key=lambda f: (f.timestamp, int(getattr(f, "pk", None) or f.id))):
        qty, price, fee = float(fill.amount), float(fill.price), float(fill.fee or 0)
        sign = 1 if fill.side == "buy" else -1
        left, fee_left = fill.amount, fee
        if trade is not None and (size > 0) != (sign > 0):
            closing = min(fill.amount, abs(size))
            part = float(closing)
            share = fee * part / qty if closing != fill.amount else fee
            direction = 1 if size > 0 else -1
            size -= direction * closing
            left -= closing
            fee_left -= share
            trade["exit_value"] += part * price
            trade["exit_qty"] += part
            trade["fees"] += share
            trade["gross"] += (
                float(fill.realized_pnl)
                if getattr(fill, "liquidation", False)
                else direction * part * (price - entry)
            )
            # Flat as the engine sees it: every order's amount is rounded down to 12 places, so
            # selling a position in parts can leave a few units of the last place behind.
            if float(abs(size)) <= max(DUST, FLAT_FRACTION * trade["max_size"]):
                exit_type = (
                    "liquidation"
                    if getattr(fill, "liquidation", False)
                    else types.get(str(fill.order_id), "")
                )
                trades.append(_closed(trade, fill.timestamp, exit_type, funding, leverage))
                trade, size, entry = None, Decimal(0), 0.0
        if left <= 0 or (sign < 0 and not short and trade is None):
            continue  # spot: a sell without a position cannot happen; ignore defensively
        if trade is None:
            trade = {
                "entry_time": fill.timestamp,
                "side": "long" if sign > 0 else "short",
                "entry_cost": 0.0,
                "entry_qty": 0.0,
                "exit_value": 0.0,
                "exit_qty": 0.0,
                "max_size": 0.0,
                "fees": 0.0,
                "gross": 0.0,
            }
        old, part = float(abs(size)), float(left)
        size += sign * left
        entry = (entry * old + price * part) / float(abs(size))
        trade["entry_cost"] += part * price
        trade["entry_qty"] += part
        trade["max_size"] = max(trade["max_size"], float(abs(size)))
        trade["fees"] += fee_left
    open_trade = None
    if trade is not None:
        open_trade = {
            "entry_time": trade["entry_time"],
            "side": trade["side"],
            "size": float(abs(size)),
            "entry_price": entry,
            "fees": trade["fees"],
        }
        if short:
            open_trade["funding"] = sum(a for t, a in funding if t > trade["entry_time"])
    return trades, open_trade


def _closed(
    trade: dict[str, Any],
    exit_time: int,
    exit_type: str,
    funding: list[tuple[int, float]] = (),
    leverage: float = 1.0,
) -> dict[str, Any]:
    entry_price = trade["entry_cost"] / trade["entry_qty"]
    paid = sum(amount for t, amount in funding if trade["entry_time"] < t <= exit_time)
    pnl = trade["gross"] - trade["fees"] - paid
    committed = trade["entry_cost"] / leverage
    closed = {
        "entry_time": trade["entry_time"],
        "exit_time": exit_time,
        "side": trade["side"],
        "size": trade["max_size"],
        "entry_price": entry_price,
        "exit_price": trade["exit_value"] / trade["exit_qty"],
        "fees": trade["fees"],
        "pnl": pnl,
        "return_pct": pnl / committed if committed else 0.0,
        "duration": (exit_time - trade["entry_time"]) / 1000.0,
        "exit_reason": EXIT_REASONS.get(exit_type, exit_type),
    }
    if funding or leverage != 1.0:
        closed.update(funding=paid, leverage=leverage)
    return closed


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _clean(value.item())
    return value
