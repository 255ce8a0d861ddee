from __future__ import annotations

import json
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.core.events import user_group
from apps.exchanges.gateway.errors import ExchangeUnavailable
from apps.marketdata import live, services
from apps.marketdata.errors import NoCandles
from apps.marketdata.models import Candle, Market
from tests.support.fake_exchange import FakeBinance

pytestmark = pytest.mark.django_db


@pytest.fixture
def online(settings):
    with FakeBinance() as fake:
        settings.MARKETDATA_ONLINE = True
        settings.MARKETDATA_API_OVERRIDES = fake.overrides()
        yield fake


@pytest.fixture
def xrpeth(shared_data_dir):
    services.candles_import_file(
        path=shared_data_dir / "ohlcv" / "binance_XRPETH_5m.csv.gz", symbol="XRP/ETH", timeframe="5m"
    )
    return Market.objects.get(symbol="XRP/ETH")


def _stored(market) -> list[tuple]:
    """The market's stored 5m candles in replay order: (open time, open, close)."""
    return list(
        Candle.objects.filter(market=market, timeframe="5m")
        .order_by("open_time")
        .values_list("open_time", "open", "close")
    )


def test_live_ticker_through_ccxt_is_cached(online):
    services.market_ensure(exchange="binance", symbol="BTC/USDT")
    first = live.ticker(exchange="binance", symbol="BTC/USDT")
    assert first["source"] == "live" and first["last"] == "73369.84" and first["percentage"] == 1.647
    live.ticker(exchange="binance", symbol="BTC/USDT")
    assert len(online.requests_to("/api/v3/ticker/24hr")) == 1  # the second came from the cache
    assert live.latest_price(exchange="binance", symbol="BTC/USDT") == Decimal("73369.84")


def test_a_warm_ticker_is_found_by_name_without_the_catalog_and_never_as_another_markets(online, monkeypatch):
    from django.core.cache import cache

    btc = services.market_ensure(exchange="binance", symbol="BTC/USDT")
    live.ticker(exchange="binance", symbol="BTC/USDT")
    catalog_reads = []
    real_market_get = live.market_get
    monkeypatch.setattr(live, "market_get", lambda **kw: catalog_reads.append(kw) or real_market_get(**kw))
    live.ticker(exchange="binance", symbol="BTC/USDT")
    assert catalog_reads == []  # the process remembered the market id for the name
    # An id remembered for the name that has come to name another market (a catalog rebuilt and
    # its ids reused) is not trusted: that market's ticker is not taken, the catalog is read.
    eth = services.market_ensure(exchange="binance", symbol="ETH/USDT")
    cache.set(f"marketdata:ticker:{eth.id}", {"exchange": "binance", "symbol": "ETH/USDT", "last": "1"}, 60)
    live._market_ids[live._name_digest("binance", "BTC/USDT")] = eth.id
    data = live.ticker(exchange="binance", symbol="BTC/USDT")
    assert data["symbol"] == "BTC/USDT" and data["last"] == "73369.84"
    assert len(catalog_reads) == 1
    assert live._market_ids[live._name_digest("binance", "BTC/USDT")] == btc.id


def test_inside_tickers_kept_a_market_is_priced_once(xrpeth):
    from django.core.cache import cache

    key = f"marketdata:ticker:{xrpeth.id}"
    with live.tickers_kept():
        first = live.ticker(exchange="binance", symbol="XRP/ETH")
        cache.set(key, {**first, "last": "1.23"}, 60)  # the cached ticker moves on meanwhile
        assert live.ticker(exchange="binance", symbol="XRP/ETH") is first  # kept: one price
        with live.tickers_kept():  # an inner block joins the outer one
            assert live.latest_price(exchange="binance", symbol="XRP/ETH") == Decimal(first["last"])
    assert live.ticker(exchange="binance", symbol="XRP/ETH")["last"] == "1.23"  # outside: read again


def test_live_order_book_and_trades(online):
    services.market_ensure(exchange="binance", symbol="BTC/USDT")
    book = live.order_book(exchange="binance", symbol="BTC/USDT", limit=2)
    assert book["bids"][0] == ["42574.3", 0.0107] and len(book["asks"]) <= 2
    trades = live.trades(exchange="binance", symbol="BTC/USDT", limit=5)
    assert trades["trades"][0]["price"] == "73238.7"


def test_exchange_failure_falls_back_to_replay_and_backs_off(online, xrpeth):
    online.fail("GET", "/api/v3/ticker/24hr", status=503, times=5)
    data = live.ticker(exchange="binance", symbol="XRP/ETH")
    assert data["source"] == "replay"
    calls = len(online.requests_to("/api/v3/ticker/24hr"))
    from django.core.cache import cache

    cache.delete(f"marketdata:ticker:{xrpeth.id}")
    assert live.ticker(exchange="binance", symbol="XRP/ETH")["source"] == "replay"
    assert len(online.requests_to("/api/v3/ticker/24hr")) == calls  # marked offline: not hammered again
    with pytest.raises(ExchangeUnavailable):
        live.order_book(exchange="binance", symbol="XRP/ETH")


def test_replay_feed_plays_stored_candles_forward(settings, xrpeth):
    step = 300_000
    rows = _stored(xrpeth)
    base = 10_000 * len(rows) * step  # a wall time that maps onto replay index 0
    at_start = live.replay_state(xrpeth, now_ms=base)
    assert at_start["open_time"] == rows[0][0] and at_start["price"] == rows[0][1]
    halfway = live.replay_state(xrpeth, now_ms=base + step // 2)
    assert halfway["price"] == pytest.approx((rows[0][1] + rows[0][2]) / 2)
    assert live.replay_state(xrpeth, now_ms=base + 3 * step)["open_time"] == rows[3][0]
    # replay walks candles by position: it wraps around instead of running dry
    assert live.replay_state(xrpeth, now_ms=base + len(rows) * step)["open_time"] == rows[0][0]
    settings.MARKETDATA_REPLAY_SPEED = 10.0
    assert live.replay_state(xrpeth, now_ms=base + step)["open_time"] == rows[10 % len(rows)][0]


def test_replay_feed_reads_a_candle_once_while_it_plays(xrpeth, django_assert_num_queries):
    step = 300_000
    rows = _stored(xrpeth)
    base = 10_000 * len(rows) * step  # replay index 0
    first = live.replay_state(xrpeth, now_ms=base + step // 4)
    with django_assert_num_queries(0):  # the same candle: kept, while the price moves on within it
        later = live.replay_state(xrpeth, now_ms=base + 3 * step // 4)
    assert later["open_time"] == first["open_time"] == rows[0][0]
    assert later["price"] == pytest.approx(rows[0][1] + (rows[0][2] - rows[0][1]) * 0.75)
    assert later["day_open"] == first["day_open"] and later["day_volume"] == first["day_volume"]
    with django_assert_num_queries(3):  # the next candle and its 24h window are read
        following = live.replay_state(xrpeth, now_ms=base + step)
    assert following["open_time"] == rows[1][0] and following["price"] == rows[1][1]


def test_replay_feed_recounts_when_candles_were_deleted_since_it_counted(xrpeth):
    from django.core.cache import cache

    count = Candle.objects.filter(market=xrpeth, timeframe="5m").count()
    cache.set(f"marketdata:replay:{xrpeth.id}", ("5m", count + 500), 60)  # counted before a delete
    step = 300_000
    state = live.replay_state(xrpeth, now_ms=(10_000 * (count + 500) + count + 100) * step)
    assert state["timeframe"] == "5m"  # a position past the end: recounted, not an IndexError
    assert cache.get(f"marketdata:replay:{xrpeth.id}") == ("5m", count)


def test_no_data_and_offline_is_a_clear_404():
    services.market_ensure(exchange="binance", symbol="SOL/USDT")
    with pytest.raises(NoCandles, match="Import or download candles first"):
        live.ticker(exchange="binance", symbol="SOL/USDT")


def test_prices_publish_sends_price_events_to_watchers(user, other_user, xrpeth):
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(user.id), channel)
    other_channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(user_group(other_user.id), other_channel)
    services.subscription_create(user=user, exchange="binance", symbol="XRP/ETH")
    services.subscription_create(user=user, exchange="binance", symbol="SOL/USDT")  # no data: skipped
    assert live.prices_publish() == 2
    message = async_to_sync(layer.receive)(channel)
    event = json.loads(message["text"])
    assert event["type"] == "price" and event["payload"]["symbol"] == "XRP/ETH"
    assert event["payload"]["source"] == "replay" and Decimal(event["payload"]["last"]) > 0

    import asyncio

    async def nothing_for_other():
        try:
            await asyncio.wait_for(layer.receive(other_channel), timeout=0.3)
        except TimeoutError:
            return True
        return False

    assert async_to_sync(nothing_for_other)()


def test_periodic_poller_is_declared():
    from apps.core.schedules import declared_schedules

    tasks = {s.task: s for s in declared_schedules()}
    assert tasks["apps.marketdata.tasks.poll_prices"].seconds <= 10
    assert "apps.marketdata.tasks.refresh_markets" in tasks


def test_replay_price_is_quantized_to_the_tick(xrpeth):
    price = live.latest_price(exchange="binance", symbol="XRP/ETH")
    assert price == price.quantize(Decimal("0.00000001"))
