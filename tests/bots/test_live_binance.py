"""A live bot on a Binance connection, ccxt pointed at the local fake Binance (recorded market
responses, ``tests/exchanges/fake_binance_account.py`` for the private endpoints): its candles
come live through ccxt, its orders are placed, synced and cancelled through ccxt."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.bots import services
from apps.bots.models import Bot
from apps.marketdata import live
from apps.marketdata.models import Candle
from apps.marketdata.services import market_ensure
from apps.marketdata.timeframes import timeframe_ms
from apps.orders import services as orders
from apps.orders.models import Fill, Order
from tests.bots.support import CROSS_PARAMS, CROSS_UP_CLOSES, store_candles_on_replay
from tests.exchanges.fake_binance_account import API_KEY, SECRET, BinanceAccount
from tests.factories import BotFactory, ExchangeConnectionFactory
from tests.support.fake_exchange import FakeBinance

pytestmark = pytest.mark.django_db

HOUR = timeframe_ms("1h")


@pytest.fixture
def fake(settings):
    with FakeBinance() as server:
        settings.MARKETDATA_API_OVERRIDES = server.overrides()
        settings.MARKETDATA_ONLINE = True  # the bot's candles come live, from the fake's klines
        yield server


@pytest.fixture
def binance(fake):
    account = BinanceAccount(fake).install()
    # A spot bot's position is the base asset it holds: start flat, with quote to spend.
    account.balances = [{"asset": "USDT", "free": "5000.00000000", "locked": "0.00000000"}]
    return account


def creates(fake) -> list:
    return [r for r in fake.requests if r.method == "POST" and r.path == "/api/v3/order"]


def test_live_bot_places_syncs_and_cancels_its_orders_through_ccxt(
    user, fake, binance, django_capture_on_commit_callbacks
):
    market_ensure(exchange="binance", symbol="BTC/USDT")
    connection = ExchangeConnectionFactory(user=user, exchange="binance", api_key=API_KEY, api_secret=SECRET)
    candle, source = live.last_closed_candle(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert source == "live"  # online: the wall clock, like the exchange's own candles
    closes = [c * 10_000 for c in CROSS_UP_CLOSES]  # an SMA 2/3 cross up on the last closed candle
    rows = [
        [candle - (len(closes) - 1 - i) * HOUR, c, c * 1.01, c * 0.99, c, 12.5] for i, c in enumerate(closes)
    ]
    rows.append([candle + HOUR, 100_000.0, 100_500.0, 99_500.0, 100_100.0, 3.0])  # still forming
    fake.set_klines("BTCUSDT", "1h", rows)
    bot = BotFactory(
        owner=user,
        status="running",
        mode="live",
        connection=connection,
        timeframe="1h",
        strategy="sma_crossover",
        params=CROSS_PARAMS,
        warmup=10,
        take_profit=0.02,
    )

    with django_capture_on_commit_callbacks(execute=True):
        result = services.bot_tick(bot_id=bot.pk, candle_ms=candle)
    assert result is not None, list(bot.events.values_list("message", flat=True))
    # The window came from the exchange through ccxt and is now in the store (without the forming candle).
    stored = Candle.objects.filter(market__symbol="BTC/USDT", timeframe="1h").order_by("open_time")
    assert list(stored.values_list("open_time", flat=True))[-1] == candle

    client_order_id = f"bot{bot.pk}-{candle}-0"
    entry = Order.objects.get(client_order_id=client_order_id)
    sent = creates(fake)[0].params
    assert (sent["newClientOrderId"], sent["type"], sent["side"]) == (client_order_id, "MARKET", "BUY")
    assert (entry.connection_id, entry.bot_id, entry.status) == (connection.pk, bot.pk, "filled")
    assert entry.exchange_order_id == binance.orders[client_order_id]["orderId"]
    # The filled entry armed its take-profit: a limit sell resting at the exchange, 2 % above the close.
    take_profit = Order.objects.get(parent=entry, role=Order.Role.TAKE_PROFIT)
    remote_tp = binance.orders[take_profit.client_order_id]
    assert (remote_tp["type"], remote_tp["side"], remote_tp["status"]) == ("LIMIT", "SELL", "NEW")
    assert Decimal(remote_tp["price"]) == Decimal("102000")
    assert take_profit.status == "open"

    # A retried tick (its lease ran out) asks for the same id and sends nothing new.
    Bot.objects.filter(pk=bot.pk).update(last_candle_ms=None, tick_lease_until=None)
    with django_capture_on_commit_callbacks(execute=True):
        services.bot_tick(bot_id=bot.pk, candle_ms=candle)
    assert len(creates(fake)) == 2  # the entry and its take-profit, once each

    # The exchange fills half of the take-profit; the sync records it by client order id.
    half = (take_profit.amount / 2).quantize(Decimal("0.00001"))
    remote_tp.update(status="PARTIALLY_FILLED", executedQty=str(half), cummulativeQuoteQty=str(half * 102000))
    with django_capture_on_commit_callbacks(execute=True):
        orders.order_sync(account=connection)
    take_profit.refresh_from_db()
    assert (take_profit.status, take_profit.filled) == ("partially_filled", half)
    assert Fill.objects.get(order=take_profit).amount == half

    # Stopping the bot cancels what is left at the exchange (the worker's half, run here).
    services.bot_stop(bot=bot)
    with django_capture_on_commit_callbacks(execute=True):
        services.bot_finish_stop(bot_id=bot.pk)
    take_profit.refresh_from_db()
    assert take_profit.status == "cancelled"
    assert remote_tp["status"] == "CANCELED"
    assert [r.method for r in fake.requests if r.path == "/api/v3/order"][-1] == "DELETE"
    assert Bot.objects.get(pk=bot.pk).status == "stopped"


def test_offline_a_live_bot_never_trades_on_the_replay_feed_it_backs_off_and_says_why(user, settings):
    settings.MARKETDATA_ONLINE = False
    store_candles_on_replay()  # paper bots would tick these replayed candles
    connection = ExchangeConnectionFactory(user=user, exchange="binance", api_key=API_KEY, api_secret=SECRET)
    bot = BotFactory(
        owner=user,
        status="running",
        mode="live",
        connection=connection,
        timeframe="1h",
        strategy="sma_crossover",
    )
    candle, source = live.last_closed_candle(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert source == "replay"
    assert services.bot_tick(bot_id=bot.pk, candle_ms=candle) is None
    bot.refresh_from_db()
    assert (bot.failures, bot.last_candle_ms) == (1, None)
    assert "a live bot trades only on the exchange's own candles" in bot.events.get(kind="error").message
    assert not Order.objects.filter(bot=bot).exists()
