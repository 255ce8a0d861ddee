"""Per-bot trading API: positions, orders (filters, pagination), trades and performance."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.bots.performance import BotFill, ledger
from apps.exchanges.services import paper_account_get_or_create
from apps.orders.models import Order, Position
from tests.bots.support import store_candles
from tests.factories import T0, BotFactory, FillFactory, OrderFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

HOUR_MS = 3_600_000
T0_MS = int(T0.timestamp() * 1000)


def url(name: str, pk: int) -> str:
    return reverse(f"bots-api:bot-{name}", args=[pk])


def bot_account(bot):
    return paper_account_get_or_create(user=bot.owner, bot_id=bot.pk, exchange=bot.exchange)


def filled(bot, side: str, amount: str, price: str, *, hours: int, fee: str = "0") -> Order:
    """A filled market order of the bot with one fill ``hours`` after T0 (fee in USDT)."""
    account = bot_account(bot)
    order = OrderFactory(
        owner=bot.owner,
        paper_account=account,
        bot=bot,
        side=side,
        type="market",
        price=None,
        amount=Decimal(amount),
        filled=Decimal(amount),
        average_price=Decimal(price),
        status="filled",
    )
    FillFactory(
        order=order,
        price=Decimal(price),
        amount=Decimal(amount),
        fee=Decimal(fee),
        fee_asset="USDT",
        timestamp=T0 + timedelta(hours=hours),
    )
    return order


@pytest.mark.parametrize("name", ["positions", "orders", "trades", "performance"])
def test_another_users_bot_is_404_on_every_trading_route(auth_client, other_user, name):
    bot = BotFactory(owner=other_user)
    assert_error(auth_client.get(url(name, bot.pk)), 404, "not_found")


def test_orders_are_the_bots_own_filtered_and_paginated(auth_client, user):
    bot = BotFactory(owner=user, strategy="sma_crossover")
    account = bot_account(bot)
    for _ in range(3):
        OrderFactory(owner=user, paper_account=account, bot=bot, status="open")
    OrderFactory(owner=user, paper_account=account, bot=bot, status="cancelled")
    OrderFactory(owner=user, status="open")  # manual, same owner
    OrderFactory(owner=user, bot=BotFactory(owner=user), status="open")  # another bot

    body = auth_client.get(url("orders", bot.pk), {"page_size": 2}).json()
    assert body["count"] == 4
    assert len(body["results"]) == 2 and body["next"]
    assert {o["bot"] for o in body["results"]} == {bot.pk}

    assert auth_client.get(url("orders", bot.pk), {"status": "cancelled"}).json()["count"] == 1
    assert auth_client.get(url("orders", bot.pk), {"open": "true"}).json()["count"] == 3
    assert auth_client.get(url("orders", bot.pk), {"symbol": "ETH/USDT"}).json()["count"] == 0


def test_orders_filter_refuses_an_unknown_status_with_the_error_body(auth_client, user):
    bot = BotFactory(owner=user)
    assert_error(auth_client.get(url("orders", bot.pk), {"status": "lost"}), 400, "invalid", "status")


def test_trades_are_the_fills_of_the_bots_orders(auth_client, user):
    bot = BotFactory(owner=user)
    filled(bot, "buy", "0.1", "100", hours=1)
    FillFactory(order=OrderFactory(owner=user))  # a manual trade of the owner
    body = auth_client.get(url("trades", bot.pk)).json()
    assert body["count"] == 1
    trade = body["results"][0]
    assert (trade["bot"], trade["side"]) == (bot.pk, "buy")
    assert (Decimal(trade["price"]), Decimal(trade["amount"])) == (Decimal("100"), Decimal("0.1"))


def test_positions_are_the_bots_paper_account_in_its_market(auth_client, user):
    bot = BotFactory(owner=user)
    own = Position(
        owner=user, symbol="BTC/USDT", side="long", size=Decimal("0.5"), average_entry=Decimal("10")
    )
    own.account = bot_account(bot)
    own.save()
    manual = Position(owner=user, symbol="BTC/USDT", side="long", size=Decimal("2"))
    manual.account = paper_account_get_or_create(user=user)
    manual.save()
    body = auth_client.get(url("positions", bot.pk)).json()
    assert [(p["id"], Decimal(p["size"])) for p in body["results"]] == [(own.pk, Decimal("0.5"))]


def test_performance_without_fills_is_flat_at_the_allocated_capital(auth_client, user):
    bot = BotFactory(owner=user, allocated_capital=Decimal("500"))
    body = auth_client.get(url("performance", bot.pk)).json()
    assert body["total_pnl"] == 0 and body["fills"] == 0
    assert body["position"] == {"side": "flat", "size": 0.0, "average_entry": None}
    assert body["metrics"]["total_trades"] == 0
    assert body["metrics"]["end_equity"] == 500


def test_performance_uses_the_engine_metrics_on_the_bots_fills_and_marks_the_open_position(auth_client, user):
    bot = BotFactory(owner=user, strategy="sma_crossover", timeframe="1h", allocated_capital=Decimal("1000"))
    # Closes 100 ... at T0 + 0..5 h; the newest candle (open T0+5h) closes at 130.
    store_candles(last_open_ms=T0_MS + 5 * HOUR_MS, closes=[100.0, 105.0, 110.0, 90.0, 120.0, 130.0])
    filled(bot, "buy", "1", "100", hours=0, fee="0.1")  # win: +10 - 0.2 fees
    filled(bot, "sell", "1", "110", hours=2, fee="0.1")
    filled(bot, "buy", "1", "110", hours=2, fee="0.1")  # loss: -20 - 0.2 fees
    filled(bot, "sell", "1", "90", hours=3, fee="0.1")
    filled(bot, "buy", "2", "120", hours=4, fee="0.2")  # open, marked at 130

    body = auth_client.get(url("performance", bot.pk), {}).json()
    assert body["fills"] == 5
    assert body["last_price"] == 130
    assert body["position"] == {"side": "long", "size": 2.0, "average_entry": 120.0}
    assert body["realized_pnl"] == pytest.approx(10 - 20 - 0.6)
    assert body["unrealized_pnl"] == pytest.approx(20)
    assert body["total_pnl"] == pytest.approx(10 - 20 - 0.6 + 20)
    metrics = body["metrics"]
    assert metrics["total_trades"] == 2 and metrics["winning_trades"] == 1
    assert metrics["win_rate"] == 0.5
    assert metrics["end_equity"] == pytest.approx(1000 + body["total_pnl"])
    assert metrics["max_drawdown"] < 0
    assert body["equity"][-1] == [T0_MS + 5 * HOUR_MS, pytest.approx(1000 + body["total_pnl"])]


def test_performance_other_bots_and_manual_fills_do_not_count(auth_client, user):
    bot = BotFactory(owner=user)
    filled(BotFactory(owner=user), "buy", "1", "100", hours=0)
    FillFactory(order=OrderFactory(owner=user))
    assert auth_client.get(url("performance", bot.pk)).json()["fills"] == 0


def test_ledger_flip_closes_one_trade_and_opens_the_next_short():
    book = ledger(
        [
            BotFill(0, "buy", 100.0, 1.0, 0.0),
            BotFill(1000, "sell", 110.0, 3.0, 0.3),  # closes 1 long (+10), opens 2 short
            BotFill(2000, "buy", 100.0, 2.0, 0.0),  # closes the short (+20)
        ]
    )
    assert [round(t["pnl"], 6) for t in book.trades] == [10 - 0.1, 20 - 0.2]
    assert [t["side"] for t in book.trades] == ["long", "short"]
    assert book.size == 0 and book.average_entry is None
    assert book.realized_pnl == pytest.approx(30)


def test_offline_the_open_position_is_marked_where_the_replay_feed_has_played_not_at_the_stored_end(
    auth_client, user, client
):
    """Offline a bot trades on the replay feed, which plays stored history from its start:
    the candles after the bot's last ticked candle have not been played yet. Marking at the
    newest stored candle showed the demo bot's P&L at a price months ahead (-2,839 USDT on
    the page while the position was a few USDT down; found trying the platform)."""
    bot = BotFactory(
        owner=user,
        strategy="sma_crossover",
        timeframe="1h",
        allocated_capital=Decimal("1000"),
        last_candle_ms=T0_MS + 2 * HOUR_MS,  # the feed has played up to the candle opening at T0+2h
    )
    store_candles(last_open_ms=T0_MS + 5 * HOUR_MS, closes=[100.0, 105.0, 110.0, 90.0, 120.0, 130.0])
    filled(bot, "buy", "2", "100", hours=1)

    body = auth_client.get(url("performance", bot.pk)).json()
    assert body["last_price"] == 110  # the close of T0+2h, not 130 (T0+5h, not played yet)
    assert body["unrealized_pnl"] == pytest.approx(20)
    assert body["equity"][-1] == [T0_MS + 2 * HOUR_MS, pytest.approx(1020)]

    client.force_login(user)
    html = client.get(reverse("bots:index")).content.decode()
    assert "20.00 USDT" in html  # bot_pnl, the list's and home page's figure, marks the same way
