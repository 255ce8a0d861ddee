"""Futures bots: leverage and margin mode in the config, a paper futures account, a tick that
goes short, webhook signals that enter short, reverse and exit (reduce-only), and the
bot's position with its liquidation price in the API.

Orders go through the real ``apps.orders.services.order_place`` and the paper exchange,
priced offline from the stored candles of the perpetual ``BTC/USDT:USDT`` (binanceusdm).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.bots import services
from apps.bots.models import Bot, BotSignal
from apps.bots.services.accounts import bot_paper_account
from apps.bots.services.orders import bot_close_position
from apps.bots.services.signals import signal_client_order_id
from apps.core.errors import ValidationFailed
from apps.exchanges.models import PaperAccount, PaperPosition
from apps.orders.models import Order, Position
from tests.bots.support import CROSS_PARAMS, store_candles
from tests.bots.test_loop import CANDLE, orders  # noqa: F401 - the pinned-clock tick fixture
from tests.bots.test_signals import HALF, send  # noqa: F401 - the webhook fixture
from tests.factories import BotFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

EXCHANGE, SYMBOL = "binanceusdm", "BTC/USDT:USDT"
# sma_crossover 2/3 crosses down on the last close (8.5 > 8 before, 7 < 7.33 on it): on
# futures that is a short entry (the strategy's exits are its short entries).
CROSS_DOWN_CLOSES = [5.0, 6.0, 7.0, 8.0, 9.0, 5.0]


@pytest.fixture
def perp(orders):  # noqa: F811 - the replay feed's clock pinned: prices do not move during a test
    store_candles(last_open_ms=CANDLE, closes=CROSS_DOWN_CLOSES, symbol=SYMBOL, exchange=EXCHANGE)


def futures_bot(owner, **overrides) -> Bot:
    values = {
        "owner": owner,
        "exchange": EXCHANGE,
        "symbol": SYMBOL,
        "timeframe": "1h",
        "leverage": Decimal("3"),
        "margin_mode": "isolated",
    }
    bot = BotFactory(**{**values, **overrides})
    # The synthetic candles trade 1,000 a candle: no volume cap, so that market orders fill whole.
    PaperAccount.objects.filter(pk=bot_paper_account(bot=bot).pk).update(max_volume_fraction=None)
    return bot


def paper_position(bot: Bot) -> PaperPosition | None:
    return PaperPosition.objects.filter(account__bot_id=bot.pk, symbol=SYMBOL).first()


# ------------------------------------------------------------------ settings
def test_a_futures_bot_takes_leverage_and_margin_mode_within_the_markets_tiers(user):
    bot = services.bot_create(
        user=user,
        name="perp",
        exchange=EXCHANGE,
        symbol=SYMBOL,
        timeframe="1h",
        strategy="sma_crossover",
        leverage=Decimal("20"),
        margin_mode="cross",
    )
    assert (bot.leverage, bot.margin_mode, bot.is_futures) == (Decimal("20"), "cross", True)
    with pytest.raises(ValidationFailed) as exc:
        # Binance's first BTCUSDT bracket allows 125x; more is refused as a backtest refuses it.
        services.bot_update(bot=bot, leverage=Decimal("150"), margin_mode="hedge")
    assert set(exc.value.fields) == {"leverage", "margin_mode"}
    assert "125" in exc.value.fields["leverage"][0]


def test_a_spot_bot_has_no_leverage(user):
    with pytest.raises(ValidationFailed) as exc:
        services.bot_create(
            user=user,
            name="spot",
            exchange="binance",
            symbol="BTC/USDT",
            timeframe="1h",
            strategy="sma_crossover",
            leverage=Decimal("3"),
        )
    assert "futures symbol" in exc.value.fields["leverage"][0]


def test_the_api_creates_a_futures_bot_and_reports_bad_leverage(auth_client):
    body = {
        "name": "perp",
        "strategy": "sma_crossover",
        "exchange": EXCHANGE,
        "symbol": SYMBOL,
        "timeframe": "1h",
        "leverage": "5",
        "margin_mode": "cross",
    }
    response = auth_client.post(reverse("bots-api:bot-list"), body, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["leverage"], response.json()["margin_mode"]) == ("5.00", "cross")
    bad = auth_client.post(
        reverse("bots-api:bot-list"), {**body, "name": "too much", "leverage": "500"}, format="json"
    )
    assert_error(bad, 400, fields=["leverage"])


def test_the_bots_paper_account_is_a_futures_account_with_its_leverage(user):
    bot = futures_bot(user, leverage=Decimal("7"), margin_mode="cross")
    account = bot_paper_account(bot=bot)
    assert account.market_type == PaperAccount.MarketType.FUTURES
    position = paper_position(bot)
    assert (position.leverage, position.margin_mode, position.size) == (Decimal("7"), "cross", 0)
    # A stopped bot's new leverage reaches its (flat) account.
    services.bot_update(bot=bot, leverage=Decimal("2"), margin_mode="isolated")
    position.refresh_from_db()
    assert (position.leverage, position.margin_mode) == (Decimal("2"), "isolated")


# ---------------------------------------------------------------------- tick
def test_a_futures_tick_goes_short_on_a_short_entry(user, orders, perp):  # noqa: F811
    bot = futures_bot(user, status="running", strategy="sma_crossover", params=CROSS_PARAMS)
    result = orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    assert result is not None, list(bot.events.values_list("message", flat=True))
    placed = orders.placed[f"bot{bot.pk}-{CANDLE}-0"]
    assert (placed.side, placed.type, placed.reduce_only, placed.status) == (
        "sell",
        "market",
        False,
        "filled",
    )
    # All of the 1000 USDT as margin at 3x (less the taker fee), at the fill price: the
    # current price, 5, less the 0.05% slippage, floored to the 0.001 amount step.
    expected = 1000 / (5 * 0.9995) / (1 / 3 + 0.001)
    assert float(placed.amount) == pytest.approx(expected, rel=1e-4)
    position = paper_position(bot)
    assert position.size == -placed.filled and position.leverage == 3
    assert "short_entries" in bot.events.get(kind="signal").data["signals"]
    # The orders half shows it as a short with its liquidation price.
    mine = Position.objects.get(paper_account__bot_id=bot.pk, symbol=SYMBOL)
    assert (mine.side, mine.size) == ("short", placed.filled)


def test_stopping_with_close_buys_back_a_short_reduce_only(user, orders, perp):  # noqa: F811
    bot = futures_bot(user, status="running", strategy="sma_crossover", params=CROSS_PARAMS)
    orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    short = paper_position(bot).size
    assert short < 0
    with orders.capture(execute=True):
        close = bot_close_position(bot=bot)
    close.refresh_from_db()
    assert (close.side, close.reduce_only, close.amount, close.status) == ("buy", True, -short, "filled")
    assert paper_position(bot).size == 0


# ------------------------------------------------------------------- signals
def webhook_futures_bot(owner, **overrides) -> tuple[Bot, str]:
    values = {"source": "webhook", "strategy": "", "params": {}, "status": "running", "sizing": HALF}
    bot = futures_bot(owner, **{**values, **overrides})
    return bot, services.bot_webhook_rotate(bot=bot)


def cid(bot: Bot, signal_id: str) -> str:
    return signal_client_order_id(bot.pk, f"id:{signal_id}", 0)


def test_enter_short_then_exit_through_the_webhook(user, send, perp):  # noqa: F811
    bot, token = webhook_futures_bot(user)
    response = send(token, {"action": "enter_short", "signal_id": "short-1"})
    assert response.status_code == 200, response.content
    entry = Order.objects.get(client_order_id=cid(bot, "short-1"))
    assert (entry.side, entry.type, entry.reduce_only, entry.status) == ("sell", "market", False, "filled")
    assert paper_position(bot).size == -entry.filled
    # Already short: a second entry without a size does nothing, and says so.
    again = send(token, {"action": "enter_short", "signal_id": "short-2"}).json()
    assert (again["order_ids"], again["reason"]) == ([], "Already short: nothing to do.")
    # exit_long names the wrong side: nothing.
    wrong = send(token, {"action": "exit_long", "signal_id": "x-long"}).json()
    assert wrong["order_ids"] == [] and "No long position" in wrong["reason"]
    response = send(token, {"action": "exit_short", "signal_id": "out"})
    assert response.status_code == 200, response.content
    close = Order.objects.get(client_order_id=cid(bot, "out"))
    assert (close.side, close.reduce_only, close.amount, close.status) == (
        "buy",
        True,
        entry.filled,
        "filled",
    )
    assert paper_position(bot).size == 0
    assert set(BotSignal.objects.filter(bot=bot).values_list("outcome", flat=True)) == {"accepted"}


def test_enter_long_while_short_reverses_in_one_order(user, send, perp):  # noqa: F811
    bot, token = webhook_futures_bot(user)
    assert send(token, {"action": "enter_short", "signal_id": "s"}).status_code == 200
    short = -paper_position(bot).size
    response = send(token, {"action": "enter_long", "signal_id": "l"})
    assert response.status_code == 200, response.content
    (reverse_order,) = Order.objects.filter(client_order_id__in=response.json()["client_order_ids"])
    assert (reverse_order.side, reverse_order.reduce_only, reverse_order.status) == ("buy", False, "filled")
    # The whole short bought back, then a long of about the same size (the same half equity).
    long = paper_position(bot).size
    assert reverse_order.filled == short + long
    assert long == pytest.approx(short, rel=Decimal("0.01"))


def test_exit_with_a_size_closes_part_of_a_short(user, send, perp):  # noqa: F811
    bot, token = webhook_futures_bot(user)
    send(token, {"action": "enter_short", "signal_id": "s"})
    short = -paper_position(bot).size
    response = send(token, {"action": "exit", "size": str(short / 4), "signal_id": "quarter"})
    assert response.status_code == 200, response.content
    part = Order.objects.get(client_order_id=cid(bot, "quarter"))
    assert (part.side, part.reduce_only) == ("buy", True)
    assert -paper_position(bot).size == pytest.approx(short * 3 / 4, rel=Decimal("0.001"))


def test_enter_short_on_a_spot_bot_still_says_why_it_cannot(user, send):  # noqa: F811
    bot = BotFactory(owner=user, source="webhook", strategy="", params={}, status="running", timeframe="1h")
    token = services.bot_webhook_rotate(bot=bot)
    response = send(token, {"action": "enter_short", "signal_id": "s"})
    assert_error(response, 409, "unsupported_action")
    assert "futures" in response.json()["error"]["message"]


# ----------------------------------------------------------------------- API
def test_the_bots_position_shows_its_side_leverage_and_liquidation_price(auth_client, user, send, perp):  # noqa: F811
    bot, token = webhook_futures_bot(user, leverage=Decimal("10"))
    send(token, {"action": "enter_short", "signal_id": "s"})
    response = auth_client.get(reverse("bots-api:bot-positions", args=[bot.pk]))
    assert response.status_code == 200, response.content
    (row,) = response.json()["results"]
    assert (row["side"], row["leverage"], row["margin_mode"]) == ("short", "10.00", "isolated")
    # A 10x short is liquidated about 10% above its entry (less the maintenance margin).
    liquidation, entry = Decimal(row["liquidation_price"]), Decimal(row["average_entry"])
    assert entry * Decimal("1.08") < liquidation < entry * Decimal("1.10")


# ---------------------------------------------------------------------- page
def test_the_bot_page_shows_the_futures_settings_and_the_liquidation_price(client, user, send, perp):  # noqa: F811
    bot, token = webhook_futures_bot(user, leverage=Decimal("10"), margin_mode="isolated")
    send(token, {"action": "enter_short", "signal_id": "s"})
    client.force_login(user)
    response = client.get(reverse("bots:detail", args=[bot.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "10x · isolated margin · long and short" in page
    position = Position.objects.get(paper_account__bot_id=bot.pk, symbol=SYMBOL)
    assert position.liquidation_price is not None
    assert "Liquidation price" in page and f"{position.liquidation_price.normalize():f}"[:6] in page


def test_the_create_form_makes_a_futures_bot_with_its_leverage(client, user):
    client.force_login(user)
    html = client.get(reverse("bots:new")).content.decode()
    assert 'name="leverage"' in html and 'name="margin_mode"' in html
    form = {
        "name": "perp from the form",
        "strategy": "builtin:sma_crossover",
        "p__builtin-sma_crossover__fast": "5",
        "p__builtin-sma_crossover__slow": "20",
        "exchange": EXCHANGE,
        "symbol": SYMBOL,
        "timeframe": "1h",
        "allocated_capital": "500",
        "leverage": "4",
        "margin_mode": "cross",
    }
    response = client.post(reverse("bots:new"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    bot = Bot.objects.get(owner=user, name="perp from the form")
    assert (bot.symbol, bot.leverage, bot.margin_mode) == (SYMBOL, Decimal("4"), "cross")
    # Too much leverage is shown next to its input.
    again = client.post(reverse("bots:new"), {**form, "name": "too much", "leverage": "400"})
    assert again.status_code == 400  # the form again, with the reason
    assert "Between 1 and 125" in again.content.decode()


def test_a_stopped_spot_bot_moved_to_a_perpetual_gets_a_fresh_futures_account(user):
    bot = BotFactory(owner=user, exchange=EXCHANGE, symbol="BTC/USDT", allocated_capital=Decimal("700"))
    spot = bot_paper_account(bot=bot)
    assert spot.market_type == PaperAccount.MarketType.SPOT
    services.bot_update(bot=bot, symbol=SYMBOL, leverage=Decimal("3"))
    account = PaperAccount.objects.get(pk=spot.pk)
    assert account.market_type == PaperAccount.MarketType.FUTURES
    assert account.balances.get(asset="USDT").free == Decimal("700")
    assert paper_position(bot).leverage == 3
