"""Reads for bots, always scoped to their owner."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from django.db.models import Q, QuerySet

from apps.bots.models import Bot, BotEvent, BotReplay, BotSignal, BotWebhook
from apps.bots.performance import BotFill, equity_on_candles, ledger
from apps.core.errors import NotFound, ValidationFailed

#: Candles the performance's equity curve reads at most (about 7 months of 1h).
MAX_CURVE_CANDLES = 5000
#: Points of the equity curve a performance answer carries (the newest).
EQUITY_POINTS = 500


def bot_list(*, user, status: str | None = None) -> QuerySet[Bot]:
    """The user's bots, newest first; ``status`` filters (an unknown status is a 400)."""
    bots = Bot.objects.filter(owner=user).select_related("connection", "strategy_version", "webhook")
    if status not in (None, ""):
        if status not in Bot.Status.values:
            raise ValidationFailed(
                f"Unknown status; use one of {', '.join(Bot.Status.values)}.",
                fields={"status": ["unknown status"]},
            )
        bots = bots.filter(status=status)
    return bots


def bot_overview_list(*, user) -> list[Bot]:
    """The user's bots for the list page, each with ``pnl`` (see ``bot_pnl``)."""
    bots = list(bot_list(user=user))
    for bot in bots:
        bot.pnl = bot_pnl(bot=bot)
    return bots


def bot_get(*, user, pk: int | str) -> Bot:
    """One of the user's bots; another user's is a 404."""
    bot = bot_list(user=user).filter(pk=pk).first() if str(pk).isdigit() else None
    if bot is None:
        raise NotFound("Bot not found.")
    return bot


def bot_is_owned(*, user, bot_id: int) -> bool:
    """Whether ``bot_id`` is one of the user's bots."""
    return bot_list(user=user).filter(pk=bot_id).exists()


def bot_event_list(*, bot: Bot) -> QuerySet[BotEvent]:
    """The bot's log, newest first (the caller got ``bot`` through an owner-scoped selector)."""
    return BotEvent.objects.filter(bot=bot)


def bot_replay_list(*, bot: Bot) -> QuerySet[BotReplay]:
    """The bot's replays, newest first (the caller got ``bot`` through an owner-scoped selector)."""
    return BotReplay.objects.filter(bot=bot).select_related("strategy_version")


def bot_replay_get(*, user, bot_id: int | str, pk: int | str) -> BotReplay:
    """One replay of one of the user's bots; anything else is a 404."""
    replay = None
    if str(pk).isdigit() and str(bot_id).isdigit():
        replay = (
            BotReplay.objects.filter(pk=pk, bot_id=bot_id, bot__owner=user)
            .select_related("bot", "strategy_version")
            .first()
        )
    if replay is None:
        raise NotFound("Replay not found.")
    return replay


def bot_signal_list(*, bot: Bot) -> QuerySet[BotSignal]:
    """The webhook signals the bot received, newest first (``bot`` came owner-scoped)."""
    return BotSignal.objects.filter(bot=bot)


def webhook_bot_get(*, token: str) -> Bot:
    """The webhook bot whose secret is ``token`` (no user: the token authenticates); else 404."""
    webhook = (
        BotWebhook.objects.select_related("bot__owner")
        .filter(token_hash=BotWebhook.hash_token(token))
        .first()
    )
    if webhook is None or webhook.bot.source != Bot.Source.WEBHOOK:
        raise NotFound("No such signal webhook.")
    return webhook.bot


# ------------------------------------------------------------------ trading
def bot_order_list(*, bot: Bot) -> QuerySet:
    """The orders the bot placed, newest first (the caller got ``bot`` through ``bot_get``)."""
    from apps.orders.models import Order

    # A replay's orders (on its own paper account, gone when it ends) are not the bot's trading.
    return (
        Order.objects.filter(owner_id=bot.owner_id, bot=bot)
        .filter(Q(paper_account__isnull=True) | Q(paper_account__replay_id__isnull=True))
        .order_by("-created_at", "-id")
    )


def bot_fill_list(*, bot: Bot) -> QuerySet:
    """The bot's trades (fills of its orders), newest first."""
    from apps.orders.models import Fill

    return (
        Fill.objects.filter(order__owner_id=bot.owner_id, order__bot=bot)
        .filter(Q(order__paper_account__isnull=True) | Q(order__paper_account__replay_id__isnull=True))
        .select_related("order")
        .order_by("-timestamp", "-id")
    )


def bot_position_list(*, bot: Bot) -> QuerySet:
    """The positions of the account the bot trades on, in the bot's market.

    A paper bot has its own paper account, so this is the bot's own position; a
    live bot shares its connection's account, whose position in the market may
    include the owner's manual trades (``bot_performance`` counts the bot's fills only).
    """
    from apps.exchanges.models import PaperAccount
    from apps.orders.models import Position

    positions = Position.objects.filter(owner_id=bot.owner_id, symbol=bot.symbol)
    if bot.mode == Bot.Mode.LIVE:
        return positions.filter(connection_id=bot.connection_id)
    accounts = PaperAccount.objects.filter(user_id=bot.owner_id, bot_id=bot.pk)
    return positions.filter(paper_account__in=accounts)


def _bot_fills(bot: Bot) -> list[BotFill]:
    quote = _quote(bot)
    fills = []
    for fill in bot_fill_list(bot=bot).order_by("timestamp", "id"):
        price, amount = float(fill.price), float(fill.amount)
        fee = float(fill.fee)
        fee_quote = fee if fill.fee_asset in ("", quote) else fee * price
        fills.append(
            BotFill(int(fill.timestamp.timestamp() * 1000), fill.order.side, price, amount, fee_quote)
        )
    return fills


def _quote(bot: Bot) -> str:
    return bot.symbol.split("/")[-1].split(":")[0]


def _mark_end_ms(bot: Bot, now_ms: int) -> int:
    """Where the bot's "now" is on its candles: the wall clock when its candles are live;
    offline, the replay feed's clock as the bot last ticked it (``last_candle_ms``), not the
    end of the stored history, which the feed has not played yet (marking there showed a
    P&L from a price months ahead of the one the bot trades at)."""
    from apps.marketdata.live import candles_are_live
    from apps.marketdata.timeframes import timeframe_ms

    if bot.last_candle_ms is None or candles_are_live(bot.exchange):
        return now_ms
    return min(now_ms, bot.last_candle_ms + timeframe_ms(bot.timeframe))


def _last_close(bot: Bot, now_ms: int) -> float | None:
    from apps.marketdata.selectors import candles

    try:
        end = _mark_end_ms(bot, now_ms)
        data = candles(exchange=bot.exchange, symbol=bot.symbol, timeframe=bot.timeframe, end=end, limit=1)
    except (NotFound, ValidationFailed):
        return None
    return float(data.close[-1]) if len(data) else None


def bot_pnl(*, bot: Bot, now_ms: int | None = None) -> dict[str, Any]:
    """The bot's P&L in its quote currency, net of fees: realized, and the open position
    marked at the newest stored candle's close (or the last fill's price)."""
    fills = _bot_fills(bot)
    book = ledger(fills)
    last = _last_close(bot, now_ms if now_ms is not None else int(time.time() * 1000)) if book.size else None
    if last is None and fills:
        last = fills[-1].price
    unrealized = book.unrealized(last)
    return {
        "currency": _quote(bot),
        "realized_pnl": book.realized_pnl - book.fees,
        "unrealized_pnl": unrealized,
        "total_pnl": book.realized_pnl - book.fees + unrealized,
        "size": book.size,
        "average_entry": book.average_entry if book.size else None,
        "last_price": last,
    }


def bot_performance(*, bot: Bot, now_ms: int | None = None) -> dict[str, Any]:
    """The engine's metrics on the bot's fills, with its P&L and position.

    The equity curve is the allocated capital plus the fills' cash flows plus the
    position marked at each stored candle's close (the bot's market and timeframe,
    from its first fill to now); without stored candles it is marked at the fills.
    """
    from apps.backtests.engine import compute_metrics
    from apps.marketdata.selectors import candles
    from apps.marketdata.timeframes import timeframe_ms

    fills = _bot_fills(bot)
    book = ledger(fills)
    capital = float(bot.allocated_capital)
    tf = timeframe_ms(bot.timeframe)
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    data = None
    if fills:
        try:
            data = candles(
                exchange=bot.exchange,
                symbol=bot.symbol,
                timeframe=bot.timeframe,
                start=fills[0].timestamp_ms - fills[0].timestamp_ms % tf,
                end=_mark_end_ms(bot, now_ms),
                limit=MAX_CURVE_CANDLES,
            )
        except (NotFound, ValidationFailed):  # no market or candles stored: mark at the fills
            data = None
    if data is not None and len(data):
        ts, close = data.timestamp, data.close
        equity, size = equity_on_candles(fills, capital=capital, open_ms=ts, close=close, timeframe_ms=tf)
        last_price = float(close[-1])
        metrics = compute_metrics(
            ts,
            equity,
            book.trades,
            initial_equity=capital,
            benchmark_close=close,
            position_size=size,
            close=close,
            bar_ms=tf,
        )
    elif fills:
        ts = np.array([f.timestamp_ms for f in fills], dtype=np.int64)
        close = np.array([f.price for f in fills])
        equity, _size = equity_on_candles(fills, capital=capital, open_ms=ts, close=close, timeframe_ms=0)
        last_price = fills[-1].price
        metrics = compute_metrics(ts, equity, book.trades, initial_equity=capital, bar_ms=tf)
    else:
        # Nothing traded yet: one point at the allocated capital (trade counts 0, not None).
        ts, equity, last_price = np.array([now_ms], dtype=np.int64), np.array([capital]), None
        metrics = compute_metrics(ts, equity, [], initial_equity=capital, bar_ms=tf)
    unrealized = book.unrealized(last_price)
    return {
        "bot": bot.pk,
        "currency": _quote(bot),
        "allocated_capital": capital,
        "fills": len(fills),
        "last_price": last_price,
        "position": {
            "side": book.side,
            "size": abs(book.size),
            "average_entry": book.average_entry if book.size else None,
        },
        "realized_pnl": book.realized_pnl - book.fees,
        "unrealized_pnl": unrealized,
        "total_pnl": book.realized_pnl - book.fees + unrealized,
        "fees": book.fees,
        "metrics": metrics,
        "equity": [
            [int(t), float(v)] for t, v in zip(ts[-EQUITY_POINTS:], equity[-EQUITY_POINTS:], strict=True)
        ],
    }
