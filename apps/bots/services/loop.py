"""The bot loop: find bots whose candle closed, claim one tick per bot and candle, run it.

``bots_enqueue_due`` (a beat job) sends one ``bot_tick`` per due bot to the
``bots`` queue. ``bot_tick`` claims the (bot, candle) pair with a conditional
update that must touch exactly one row, so two workers never tick the same bot
for the same candle; the claim is a lease, so the candle of a worker that died
mid-tick is ticked again by another worker once the lease runs out, with the
same deterministic client order ids (bot id, candle time, decision index), so
``order_place`` never sends an order twice. Stale data and exchange failures
back off exponentially and are logged; ``MAX_FAILURES`` in a row put the bot in
error with the reason.

Candles are ticked in order, none missed: by the time a dead worker's lease runs
out (or a back-off ends) newer candles may have closed, so a bot at most
``BOT_CATCH_UP_CANDLES`` behind is sent the candle after its last one
(``candle_to_tick``), and the ``bot_tick`` task, after a tick of a candle that is
not the newest, sends the next one's tick at once (``bot_tick_catch_up``): a
backlog clears in seconds. (On a replay feed played so fast that a candle closes
quicker than a tick runs, such a chain would never end; there the beat sends one
candle per run.) A bot further behind (its data was late for long) jumps to the
newest candle and says in its log how many it skipped: acting on old signals at
today's price would be wrong. So does a bot whose next candle failed
``MAX_FAILURES - 1`` times in a row (a gap in the data never fills): its last try
is on the newest candle. A resumed or (re)started bot
starts from the newest candle (``bot_resume``, ``bot_start``): candles that closed
while it was paused or stopped are not its to trade.

An event strategy (grid, DCA) continues from the state the previous tick saved
on the bot (``strategy_state``), hears of its fills since through ``on_fill``
exactly once, then gets ``on_data``; a cancel cancels that one order.

A user strategy is stepped the same way (``strategies/stepping.py``) inside the
bot's sandbox session (``user_code.py``); its broker calls are answered by the
tick's ``GatewayBroker``, its state travels as the same JSON. When it raises or
breaks a sandbox limit the bot goes to error at once (no backoff: the code would
fail the same way again).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.backtests.engine.candles import Candles
from apps.backtests.engine.errors import BacktestError
from apps.backtests.engine.slippage import SlippageModel
from apps.backtests.engine.strategy import SignalStrategy
from apps.backtests.strategies.registry import build_strategy
from apps.backtests.strategies.state import StateError, attrs_dump
from apps.backtests.strategies.stepping import event_step, signal_flags
from apps.bots.metrics import tick_observed
from apps.bots.models import Bot
from apps.bots.services.broker import GatewayBroker, follow_signals, futures_state
from apps.bots.services.lifecycle import BOTS_QUEUE, bot_error
from apps.bots.services.log import bot_event_add
from apps.bots.services.strategy_state import (
    IDS_PER_CANDLE,
    StrategyStateError,
    fills_to_report,
    local_order_id,
    state_dump,
    state_load,
)
from apps.bots.services.user_code import bot_session, is_strategy_fault, is_user_code
from apps.bots.services.user_code import is_event as user_is_event
from apps.core.errors import DomainError
from apps.exchanges.gateway.base import Order as GatewayOrder
from apps.marketdata.timeframes import bucket_start, candles_between, next_open, timeframe_ms

logger = logging.getLogger(__name__)

TICK_TASK = "apps.bots.tasks.bot_tick"
DEFAULT_WARMUP = 300
MAX_FAILURES = 5
BACKOFF_BASE_SECONDS = 5
BACKOFF_MAX_SECONDS = 15 * 60


class StaleData(DomainError):
    code = "stale_data"
    status = 503


@dataclass
class TickResult:
    candle_ms: int
    decisions: list[dict[str, Any]]
    client_order_ids: list[str]
    orders: list[Any]


def last_closed_candle_ms(timeframe: str, *, now_ms: int | None = None) -> int:
    """Open time (ms) of the newest candle of ``timeframe`` that has closed at ``now_ms`` by the
    wall clock (the live candle clock; offline the loop follows the replay feed instead)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    current_open = int(bucket_start(now_ms, timeframe))
    return int(bucket_start(current_open - 1, timeframe))


def client_order_id(bot_id: int, candle_ms: int, index: int) -> str:
    """Deterministic per (bot, candle, decision): a retried or redelivered tick reuses it."""
    return f"bot{bot_id}-{candle_ms}-{index}"


def candle_to_tick(*, last_ms: int | None, newest_ms: int, timeframe: str, failures: int = 0) -> int:
    """The candle a bot ticks next, ``newest_ms`` being the newest closed one (``> last_ms``).

    The one after ``last_ms`` while the bot is at most ``BOT_CATCH_UP_CANDLES`` behind, so
    candles are ticked in order; the newest when further behind, on its first tick, or when
    the next candle has failed all but its last try (``failures``; see the module docstring).
    """
    if last_ms is None:
        return newest_ms
    if (
        candles_between(last_ms, newest_ms, timeframe) <= settings.BOT_CATCH_UP_CANDLES
        and failures < MAX_FAILURES - 1
    ):
        return next_open(last_ms, timeframe)
    return newest_ms


def bots_enqueue_due(*, now_ms: int | None = None) -> int:
    """Send a tick for every running bot whose timeframe candle closed since its last tick:
    for the candle after its last one while it is catching up (``candle_to_tick``).

    The candle clock is the market-data feed's (``live.last_closed_candle``): the
    wall clock live, the replay feed offline, the feed the paper exchange prices
    from, so a bot's candle is always one that exists. When the replay feed has
    looped over its history, the bot's last candle is ahead of the clock; it is
    forgotten so the bot keeps trading on the replayed candles.
    """
    from apps.marketdata import live

    now = timezone.now()
    due = (
        Bot.objects.filter(status=Bot.Status.RUNNING, source=Bot.Source.STRATEGY)
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .filter(Q(tick_lease_until__isnull=True) | Q(tick_lease_until__lt=now))
        .values_list("id", "exchange", "symbol", "timeframe", "last_candle_ms", "failures")
    )
    closed: dict[tuple[str, str, str], tuple[int, str] | None] = {}
    reasons: dict[tuple[str, str, str], str] = {}
    ticks: list[tuple[int, int]] = []
    for bot_id, exchange, symbol, timeframe, last, failures in due:
        key = (exchange, symbol, timeframe)
        if key not in closed:
            try:
                closed[key] = live.last_closed_candle(
                    exchange=exchange, symbol=symbol, timeframe=timeframe, now_ms=now_ms
                )
            except DomainError as exc:  # no data for one market must not stop the others
                logger.info("no candle clock for %s %s %s: %s", exchange, symbol, timeframe, exc)
                closed[key] = None
                reasons[key] = exc.message
        if closed[key] is None:
            _log_waiting(bot_id, reasons[key])
            continue
        candle_ms, source = closed[key]
        if last is not None and last > candle_ms and source == "replay":
            Bot.objects.filter(pk=bot_id, last_candle_ms=last).update(last_candle_ms=None)
            last = None
        if last is None or last < candle_ms:
            ticks.append(
                (
                    bot_id,
                    candle_to_tick(last_ms=last, newest_ms=candle_ms, timeframe=timeframe, failures=failures),
                )
            )
    _send_ticks(ticks)
    return len(ticks)


def _send_ticks(ticks: list[tuple[int, int]]) -> None:
    from celery import current_app

    if ticks:
        # One broker connection for the whole batch: hundreds of bots close a candle together.
        with current_app.producer_or_acquire() as producer:
            for bot_id, candle_ms in ticks:
                current_app.send_task(
                    TICK_TASK, args=[bot_id, candle_ms], queue=BOTS_QUEUE, producer=producer
                )


def _log_waiting(bot_id: int, reason: str) -> None:
    """Say once in the bot's log why a running bot does not tick (its market has no candles
    here, e.g. a perpetual offline with none imported): it showed "Running" and did nothing."""
    from apps.bots.models import BotEvent
    from apps.bots.services.log import bot_event_add

    message = f"Waiting for candles: {reason}"
    newest = BotEvent.objects.filter(bot_id=bot_id).order_by("-id").values_list("message", flat=True).first()
    if newest != message[:500]:
        bot_event_add(bot=Bot.objects.get(pk=bot_id), kind=BotEvent.Kind.LIFECYCLE, message=message)


def bot_tick_claim(*, bot_id: int, candle_ms: int) -> bool:
    """Claim (bot, candle) for this worker: exactly one row changes, or someone else has it."""
    now = timezone.now()
    return (
        Bot.objects.filter(pk=bot_id, status=Bot.Status.RUNNING, source=Bot.Source.STRATEGY)
        .filter(Q(last_candle_ms__isnull=True) | Q(last_candle_ms__lt=candle_ms))
        .filter(Q(retry_at__isnull=True) | Q(retry_at__lte=now))
        .filter(Q(tick_lease_until__isnull=True) | Q(tick_lease_until__lt=now))
        .update(
            tick_candle_ms=candle_ms,
            tick_lease_until=now + timedelta(seconds=settings.BOT_TICK_LEASE_SECONDS),
        )
        == 1
    )


def _window(bot: Bot, candle_ms: int) -> Candles:
    from apps.marketdata import live

    if bot.mode == Bot.Mode.LIVE and not live.candles_are_live(bot.exchange):
        # Real orders on replayed history would be a real loss for a made-up reason.
        raise StaleData(
            f"Live market data for {bot.exchange} is off (MARKETDATA_ONLINE=false); "
            "a live bot trades only on the exchange's own candles."
        )
    data = live.closed_candles(
        exchange=bot.exchange,
        symbol=bot.symbol,
        timeframe=bot.timeframe,
        candle_ms=candle_ms,
        limit=bot.warmup or DEFAULT_WARMUP,
    )
    if len(data) == 0 or int(data.timestamp[-1]) != candle_ms:
        newest = int(data.timestamp[-1]) if len(data) else None
        raise StaleData(
            f"No {bot.timeframe} candle for {bot.symbol} at {candle_ms} yet (newest stored: {newest})."
        )
    return data


def _signal_flags(bot: Bot, data: Candles) -> dict[str, Any]:
    """What the bot's signal strategy says on the last closed candle (``stepping.signal_flags``)."""
    if is_user_code(bot):
        with bot_session(bot) as session:
            return session.signals(data)
    return signal_flags(build_strategy(bot.strategy, bot.params), data)


def act_on_signals(flags: dict[str, Any], broker: GatewayBroker, *, allow_short: bool = False) -> list[str]:
    """Turn the last candle's signals into decisions on ``broker``; returns them (for the log).

    ``allow_short``: a futures bot, whose short signals count (``broker.follow_signals``)."""
    if flags.get("stop_loss") is not None:
        broker.defaults["stop_loss"] = flags["stop_loss"]
    if flags.get("take_profit") is not None:
        broker.defaults["take_profit"] = flags["take_profit"]
    seen = list(flags["signals"])
    follow_signals(broker, seen, allow_short=allow_short)
    return seen


def _decide(bot: Bot, data: Candles, broker: GatewayBroker) -> list[str]:
    """Run a signal strategy on the last closed candle; returns what it signalled (for the log)."""
    return act_on_signals(_signal_flags(bot, data), broker, allow_short=bot.is_futures)


def _run_event(
    bot: Bot, data: Candles, broker: GatewayBroker
) -> tuple[list[str], int, dict[int, int], dict[str, Any]]:
    """One tick of an event strategy, continuing where the previous tick stopped.

    The strategy is built from the bot's parameters and its saved state restored
    (``initialize`` runs once, on the bot's first tick); the orders it placed that
    filled since are reported to ``on_fill`` (the candle it sees then is the previous
    one, as in the backtest), then ``on_data`` gets the closed candle
    (``stepping.event_step``; for user code inside its sandbox session). Returns what
    happened (for the log), the candle's index, its orders still to report (order pk ->
    the strategy's id) and its attributes to save (``strategies/state.py``).
    """
    last = len(data) - 1
    state = bot.strategy_state
    if state is None:
        index, unreported, fills = last, {}, []
    else:
        # ``candle.index`` counts the bot's candles, not the window's (the window slides).
        before, before_ms = state["candle"]
        # At least one on: the offline replay feed starts its history again when it loops.
        index = before + max(1, (int(data.timestamp[last]) - before_ms) // timeframe_ms(bot.timeframe))
        unreported = {int(pk): int(local) for pk, local in state.get("unreported", [])}
        fills = fills_to_report(unreported)
    fresh = state is None
    if is_user_code(bot):
        with bot_session(bot) as session:
            told, attrs = session.event(
                data,
                broker,
                index=index,
                fresh=fresh,
                state=None if fresh else state.get("attrs", {}),
                fills=fills,
                dump=True,
            )
        return told, index, unreported, attrs or {}
    strategy = build_strategy(bot.strategy, bot.params)
    if not fresh:
        state_load(strategy, state)
    told = event_step(strategy, data, broker, index=index, fresh=fresh, fills=fills)
    try:
        attrs = attrs_dump(strategy)
    except StateError as exc:
        raise StrategyStateError(str(exc)) from exc
    return told, index, unreported, attrs


def _broker(
    bot: Bot,
    data: Candles,
    *,
    gateway: Any = None,
    entry_price: float | None = None,
    open_orders: list[GatewayOrder] | None = None,
) -> GatewayBroker:
    """The tick's broker; open orders the strategy placed carry the ids it got for them."""
    from apps.bots.services.accounts import bot_assets, bot_gateway
    from apps.exchanges.gateway.paper import DEFAULT_SLIPPAGE
    from apps.exchanges.models import PaperAccount

    gateway = gateway or bot_gateway(bot)
    base, quote = bot_assets(bot)
    account = getattr(gateway, "account", None)  # the paper account; a live exchange has none
    fee = getattr(account, "taker_fee", None)
    # Size market orders where they will fill: the current price, moved by the paper
    # exchange's slippage (sized at the last close, 100% of equity overdraws the account).
    slippage = None
    if isinstance(account, PaperAccount):
        slippage = SlippageModel(account.slippage or DEFAULT_SLIPPAGE)
    last = gateway.fetch_ticker(bot.symbol).last
    return GatewayBroker(
        market_price=float(last) if last else None,
        slippage=slippage,
        candles=data,
        balance=gateway.fetch_balance(),
        open_orders=[
            _with_local_id(o)
            for o in (gateway.fetch_open_orders(bot.symbol) if open_orders is None else open_orders)
        ],
        base=base,
        quote=quote,
        sizing=bot.sizing,
        fee_rate=float(fee) if fee is not None else 0.001,
        defaults={
            "stop_loss": bot.stop_loss,
            "take_profit": bot.take_profit,
            "trailing_stop": bot.trailing_stop,
        },
        entry_price=entry_price,
        # Orders placed this tick get the ids their client order ids will map back to.
        first_id=int(data.timestamp[-1]) * IDS_PER_CANDLE,
        futures=futures_state(gateway, bot.symbol, leverage=bot.leverage, margin_mode=bot.margin_mode)
        if bot.is_futures
        else None,
    )


def _with_local_id(order: GatewayOrder) -> GatewayOrder:
    local = local_order_id(order.client_order_id)
    return order if local is None else replace(order, id=str(local))


def _event_broker(bot: Bot, data: Candles) -> GatewayBroker:
    """An event strategy's broker, after the fills since the last tick are recorded.

    When an order the strategy waits on is no longer open at the exchange (or has
    filled in part), the orders half's sync records it (the beat job does so every
    few seconds too), so the tick reports every fill before the strategy decides.
    A grid rests a dozen orders; syncing them all on every tick when none changed
    would cost a lock and an exchange call each, so the exchange's open orders are
    compared first.
    """
    from apps.bots.services.accounts import bot_account, bot_gateway
    from apps.orders.models import Order, Position, account_filter
    from apps.orders.services import order_sync

    gateway = bot_gateway(bot)
    account = bot_account(bot)
    open_orders = gateway.fetch_open_orders(bot.symbol)
    waiting = [pk for pk, _local in (bot.strategy_state or {}).get("unreported", [])]
    if waiting:
        at_exchange = {o.client_order_id: o.filled for o in open_orders}
        recorded = Order.objects.filter(pk__in=waiting).values_list("client_order_id", "status", "filled")
        # Finished in the database already (a market order fills when placed): nothing to record.
        if any(
            status in Order.OPEN_STATUSES and at_exchange.get(cid) != filled
            for cid, status, filled in recorded
        ):
            order_sync(account=account, gateway=gateway)
            open_orders = gateway.fetch_open_orders(bot.symbol)
    position = Position.objects.filter(**account_filter(account), symbol=bot.symbol).first()
    entry = float(position.average_entry) if position is not None and position.average_entry else None
    return _broker(bot, data, gateway=gateway, entry_price=entry, open_orders=open_orders)


def bot_tick(*, bot_id: int, candle_ms: int) -> TickResult | None:
    """Tick ``bot_id`` for the candle opening at ``candle_ms``; ``None`` if another worker has it.

    Reads the candles through the market-data selector, runs the strategy (signal
    strategies act on the last closed candle; event strategies continue from their
    saved state, hear of their fills through ``on_fill`` and get ``on_data``), cancels
    the orders it cancelled, places its decisions through ``order_place`` and saves
    the event strategy's state with the tick.
    """
    started = time.perf_counter()
    if not bot_tick_claim(bot_id=bot_id, candle_ms=candle_ms):
        tick_observed(result="skipped", started=started)
        return None
    bot = Bot.objects.select_related("owner", "connection", "strategy_version").get(pk=bot_id)
    try:
        data = _window(bot, candle_ms)
        event = None
        if _is_event(bot):
            broker = _event_broker(bot, data)
            signalled, *event = _run_event(bot, data, broker)
        else:
            broker = _broker(bot, data)
            signalled = _decide(bot, data, broker)
        ids = [client_order_id(bot.id, candle_ms, i) for i in range(len(broker.decisions))]
        if broker.decisions or broker.cancels:
            bot_event_add(
                bot=bot,
                kind="signal",
                message=f"{', '.join(signalled)} at {candle_ms}: {len(broker.decisions)} order(s)",
                data={
                    "candle": candle_ms,
                    "signals": signalled,
                    "decisions": [_jsonable(d) for d in broker.decisions],
                    "client_order_ids": ids,
                    "cancel": broker.cancels,
                },
            )
        orders = _place(bot, broker, ids)
        saved: dict[str, Any] = {}
        if event is not None:
            index, unreported, attrs = event
            placed = {
                order.pk: broker.first_id + k
                for k, order in enumerate(orders)
                if order is not None and k not in broker.dropped
            }
            state = state_dump(None, unreported={**unreported, **placed}, attrs=attrs)
            saved["strategy_state"] = {**state, "candle": [index, candle_ms]}
    except (DomainError, BacktestError, OSError) as exc:
        _failed(bot, candle_ms, exc, fatal=is_strategy_fault(bot, exc))
        tick_observed(result="failed", started=started)
        return None
    except Exception as exc:  # a bug of ours: keep the traceback, tell the user something readable
        logger.exception("bot %s tick %s failed", bot_id, candle_ms)
        _failed(bot, candle_ms, exc, internal=True)
        tick_observed(result="failed", started=started)
        return None
    Bot.objects.filter(pk=bot_id, tick_candle_ms=candle_ms).update(
        last_candle_ms=candle_ms,
        tick_candle_ms=None,
        tick_lease_until=None,
        failures=0,
        retry_at=None,
        **saved,
    )
    if bot.last_candle_ms is not None and candles_between(bot.last_candle_ms, candle_ms, bot.timeframe) > 1:
        _log_skipped(bot, candle_ms)
    tick_observed(result="ok", started=started, bot=bot, candle_ms=candle_ms)
    return TickResult(candle_ms, broker.decisions, ids, orders)


def _log_skipped(bot: Bot, candle_ms: int) -> None:
    """One line in the bot's log for the candles between its previous tick and ``candle_ms``.

    Not repeated while nothing else was logged since the last such line: on a replay feed
    played fast a 1m bot skips candles on every beat."""
    from apps.bots.models import BotEvent

    last = bot.last_candle_ms
    skipped = candles_between(last, candle_ms, bot.timeframe) - 1
    newest = BotEvent.objects.filter(bot_id=bot.pk).order_by("-id").values_list("data", flat=True).first()
    if isinstance(newest, dict) and "skipped" in newest:
        return
    limit = settings.BOT_CATCH_UP_CANDLES
    if skipped + 1 > limit:
        why = (
            f"it was {skipped + 1} candles behind, more than BOT_CATCH_UP_CANDLES ({limit}), and "
            "acting on old signals at today's price would be wrong"
        )
    else:
        why = f"the candle at {next_open(last, bot.timeframe)} failed {bot.failures} times in a row (missing from the data?)"
    bot_event_add(
        bot=bot,
        kind=BotEvent.Kind.LIFECYCLE,
        message=f"Skipped {skipped} candle(s) after {last}: {why}; ticked the newest, {candle_ms}.",
        data={"skipped": skipped, "after": last, "candle": candle_ms},
    )


# A candle shorter than this in wall time (a replay feed played fast) may close quicker than a tick
# runs: a chain of catch-up ticks would never end, so there the beat catches up one candle per run.
CHAIN_MIN_WALL_MS = 60_000


def bot_tick_catch_up(*, bot_id: int, candle_ms: int) -> int | None:
    """After a tick of ``candle_ms``, send the next candle's tick at once when the bot is
    catching up (a newer candle has closed, within ``BOT_CATCH_UP_CANDLES``); returns it.

    The ``bot_tick`` task calls it, so a backlog clears in seconds rather than one candle per
    beat; a jump to the newest candle is left to the beat, which sends it in any case."""
    from apps.marketdata import live

    bot = Bot.objects.filter(pk=bot_id).only("exchange", "symbol", "timeframe").first()
    if bot is None:
        return None
    try:
        newest, source = live.last_closed_candle(
            exchange=bot.exchange, symbol=bot.symbol, timeframe=bot.timeframe
        )
    except DomainError:
        return None
    speed = 1.0 if source == "live" else float(settings.MARKETDATA_REPLAY_SPEED)
    if newest <= candle_ms or timeframe_ms(bot.timeframe) < CHAIN_MIN_WALL_MS * speed:
        return None
    following = candle_to_tick(last_ms=candle_ms, newest_ms=newest, timeframe=bot.timeframe)
    if following != next_open(candle_ms, bot.timeframe):
        return None
    _send_ticks([(bot_id, following)])
    return following


def _is_event(bot: Bot) -> bool:
    from apps.backtests.strategies.registry import get_strategy_class

    if is_user_code(bot):
        return user_is_event(bot)
    return not issubclass(get_strategy_class(bot.strategy), SignalStrategy)


def _place(bot: Bot, broker: GatewayBroker, ids: list[str]) -> list[Any]:
    """Cancel the orders the strategy cancelled (only those), then place its decisions.

    Decisions it cancelled again within the tick are never sent (``None`` in their place).
    """
    from apps.bots.services.orders import bot_cancel_order, bot_place_order

    for cancelled in broker.cancels:
        bot_cancel_order(bot=bot, order_id=str(cancelled))
    orders = []
    for k, (decision, cid) in enumerate(zip(broker.decisions, ids, strict=True)):
        if k in broker.dropped:
            orders.append(None)
            continue
        # Its "order" line is written with the order's row (bots.receivers.order_logged).
        orders.append(bot_place_order(bot=bot, decision=decision, client_order_id=cid))
    return orders


def _jsonable(decision: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if not isinstance(v, (bool, int, str)) else v for k, v in decision.items()}


def _failed(
    bot: Bot, candle_ms: int, exc: BaseException, *, internal: bool = False, fatal: bool = False
) -> None:
    """Back off and log, or after ``MAX_FAILURES`` in a row (or at once when ``fatal``: a user
    strategy that raised or broke a limit fails the same way again) put the bot in error."""
    reason = (
        f"Internal error ({type(exc).__name__}); the administrators can find it in the logs."
        if internal
        else str(getattr(exc, "message", None) or exc)
    )
    if isinstance(exc, BacktestError):
        reason = str(exc)  # with the line of the user's code, where known
    failures = bot.failures + 1
    with transaction.atomic():
        if fatal:
            bot_error(bot_id=bot.pk, reason=f"The strategy failed on the candle {candle_ms}: {reason}")
            return
        if failures >= MAX_FAILURES:
            bot_error(bot_id=bot.pk, reason=f"{failures} ticks in a row failed; last: {reason}")
            return
        delay = min(BACKOFF_BASE_SECONDS * 2 ** (failures - 1), BACKOFF_MAX_SECONDS)
        Bot.objects.filter(pk=bot.pk, tick_candle_ms=candle_ms).update(
            failures=F("failures") + 1,
            retry_at=timezone.now() + timedelta(seconds=delay),
            tick_candle_ms=None,
            tick_lease_until=None,
        )
        bot_event_add(
            bot=bot,
            kind="error",
            message=f"Tick failed ({reason}); retrying in {delay} s.",
            data={"candle": candle_ms, "failures": failures, "retry_in": delay},
        )
