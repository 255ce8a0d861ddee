"""Reads for bots, always scoped to their owner."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Max, Q, QuerySet

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


# Bots holding a running slot (apps.accounts.quotas): a paused bot may resume at any time.
QUOTA_RUNNING_STATUSES = (Bot.Status.STARTING, Bot.Status.RUNNING, Bot.Status.PAUSED)


def bots_count(user_id: int) -> int:
    return Bot.objects.filter(owner_id=user_id).count()


def bots_running_count(user_id: int) -> int:
    return Bot.objects.filter(owner_id=user_id, status__in=QUOTA_RUNNING_STATUSES).count()


def bot_replays_active_count(user_id: int) -> int:
    """The user's replays pending or running (a part of the research-jobs quota)."""
    return BotReplay.objects.active().filter(owner_id=user_id).count()


def bot_overview_list(*, user) -> list[Bot]:
    """The user's bots for the list page, each with ``pnl`` (see ``bot_pnl``)."""
    return bots_with_pnl(list(bot_list(user=user)))


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


#: How long a bot's fills stay cached (the keys change with every new fill anyway).
FILLS_CACHE_SECONDS = 10 * 60


def _fill_marks(bots: list[Bot]) -> dict[int, str]:
    """Per bot, a mark that changes with every new fill (count and newest id): one query for all."""
    from apps.orders.models import Fill

    marks = {bot.pk: "0:None" for bot in bots}
    for owner_id in {bot.owner_id for bot in bots}:
        rows = (
            Fill.objects.filter(
                order__owner_id=owner_id, order__bot__in=[b.pk for b in bots if b.owner_id == owner_id]
            )
            .filter(Q(order__paper_account__isnull=True) | Q(order__paper_account__replay_id__isnull=True))
            .order_by()
            .values("order__bot")
            .annotate(n=Count("id"), last=Max("id"))
        )
        for row in rows:
            marks[row["order__bot"]] = f"{row['n']}:{row['last']}"
    return marks


def _fills_key(bot: Bot, what: str, mark: str | None = None) -> str:
    """A cache key that changes with every new fill of the bot."""
    mark = mark or _fill_marks([bot])[bot.pk]
    # created_at: a database whose ids are reused (SQLite after a rollback) never hits another bot's entry.
    return f"bots:{what}:{bot.pk}:{bot.created_at.timestamp()}:{bot.symbol}:{mark}"


def _bot_fills(bot: Bot, key: str | None = None) -> list[BotFill]:
    """The bot's fills in time order, fees in its quote currency.

    A bot with thousands of fills is read on every list and home page, so they are
    read as plain rows (no model instances) and cached as columns (quick to unpickle).
    """
    key = key or _fills_key(bot, "fills")
    columns = cache.get(key)
    if columns is None:
        quote = _quote(bot)
        rows = (
            bot_fill_list(bot=bot)
            .order_by("timestamp", "id")
            .values_list("timestamp", "order__side", "price", "amount", "fee", "fee_asset")
        )
        columns = ([], [], [], [], [])
        for timestamp, side, price, amount, fee, fee_asset in rows.iterator(chunk_size=5000):
            price_f, fee_f = float(price), float(fee)
            columns[0].append(int(timestamp.timestamp() * 1000))
            columns[1].append(side)
            columns[2].append(price_f)
            columns[3].append(float(amount))
            columns[4].append(fee_f if fee_asset in ("", quote) else fee_f * price_f)
        cache.set(key, columns, FILLS_CACHE_SECONDS)
    return [BotFill(*row) for row in zip(*columns, strict=True)]


def _bot_book(bot: Bot, mark: str | None = None) -> dict[str, Any]:
    """What the bot's P&L needs from its fills (the ledger's totals and the last fill's price), cached."""
    key = _fills_key(bot, "book", mark)
    book = cache.get(key)
    if book is None:
        fills = _bot_fills(bot, key.replace("bots:book:", "bots:fills:", 1))
        state = ledger(fills)
        book = {
            "size": state.size,
            "average_entry": state.average_entry,
            "realized_pnl": state.realized_pnl,
            "fees": state.fees,
            "last_fill_price": fills[-1].price if fills else None,
        }
        cache.set(key, book, FILLS_CACHE_SECONDS)
    return book


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


def bots_with_pnl(bots: list[Bot]) -> list[Bot]:
    """``bots``, each with ``pnl`` (``bot_pnl``); one query finds which bots' fills changed."""
    marks = _fill_marks(bots) if bots else {}
    for bot in bots:
        bot.pnl = bot_pnl(bot=bot, mark=marks[bot.pk])
    return bots


def bot_pnl(*, bot: Bot, now_ms: int | None = None, mark: str | None = None) -> dict[str, Any]:
    """The bot's P&L in its quote currency, net of fees: realized, and the open position
    marked at the newest stored candle's close (or the last fill's price)."""
    book = _bot_book(bot, mark)
    size, entry = book["size"], book["average_entry"]
    last = _last_close(bot, now_ms if now_ms is not None else int(time.time() * 1000)) if size else None
    if last is None:
        last = book["last_fill_price"]
    unrealized = size * (last - entry) if size and last is not None and entry is not None else 0.0
    realized = book["realized_pnl"] - book["fees"]
    return {
        "currency": _quote(bot),
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "total_pnl": realized + unrealized,
        "size": size,
        "average_entry": entry if size else None,
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
