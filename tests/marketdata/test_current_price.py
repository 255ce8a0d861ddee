"""Offline, the watchlist, the ticker, the home page's prices and the chart's end are one reading
of the replay feed (``live.ticker``; the chart through ``live.chart_candles``, ``?live=true``).

The demo's situation: a year of real hourly candles shipped with the app, replayed at 240x.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from apps.home.selectors import home_page
from apps.marketdata import live, services
from apps.marketdata.management.commands.seed_demo_marketdata import read_sample
from apps.marketdata.timeframes import bucket_start
from tests.support.fake_exchange import FakeBinance

pytestmark = pytest.mark.django_db

OHLC = "/api/v1/market-data/ohlc/"
HOUR = 3_600_000


@pytest.fixture
def demo_btc(settings):
    settings.MARKETDATA_ONLINE = False
    settings.MARKETDATA_REPLAY_SPEED = 240
    ts, ohlcv = read_sample("BTC/USDT")
    services.candles_import_arrays(exchange="binance", symbol="BTC/USDT", timeframe="1h", ts=ts, ohlcv=ohlcv)
    return ts, ohlcv


@pytest.fixture
def frozen(monkeypatch, demo_btc):
    """The wall clock at 40 % of a replayed candle, two candles after a 4h bucket starts."""
    ts, _ohlcv = demo_btc
    step = HOUR / 240  # wall ms per replayed candle
    # The wall time whose replay index is that of the first 4h-aligned candle after the middle + 2.
    target = next(i for i in range(len(ts) // 2, len(ts)) if ts[i] % (4 * HOUR) == 0) + 2
    cycles = 10_000
    now_ms = (cycles * len(ts) + target + 0.4) * step
    monkeypatch.setattr(live, "time", SimpleNamespace(time=lambda: now_ms / 1000, monotonic=time.monotonic))
    return int(ts[target])


def test_watchlist_ticker_home_and_chart_end_show_one_price(auth_client, user, frozen):
    services.subscription_create(user=user, exchange="binance", symbol="BTC/USDT")
    ticker = auth_client.get("/api/v1/market-data/ticker/", {"symbol": "BTC/USDT"}).json()
    assert ticker["source"] == "replay"
    assert bucket_start(ticker["timestamp"], "1h") == frozen  # the replayed moment, inside that candle
    [watched] = auth_client.get("/api/v1/market-data/stats/watched/").json()["results"]
    [home] = home_page(user=user)["prices"]
    assert watched["last"] == home["last"] == ticker["last"]
    assert watched["timestamp"] == ticker["timestamp"]

    for timeframe in ("1h", "4h"):
        chart = auth_client.get(
            OHLC, {"symbol": "BTC/USDT", "timeframe": timeframe, "live": "true", "limit": 50}
        )
        assert chart.status_code == 200, chart.content
        body = chart.json()
        assert body["ticker"]["last"] == ticker["last"]
        assert body["count"] == 50 and len(body["timestamp"]) == 50
        # The chart ends at the replayed moment, at the ticker's price: nothing the feed has not played.
        assert body["timestamp"][-1] == bucket_start(ticker["timestamp"], timeframe)
        assert body["close"][-1] == float(ticker["last"])
        assert body["high"][-1] >= float(ticker["last"]) >= body["low"][-1]
        assert body["timestamp"] == sorted(body["timestamp"])
        step = 3_600_000 * (1 if timeframe == "1h" else 4)
        assert body["timestamp"][-2] == body["timestamp"][-1] - step  # the closed candle before it


def test_the_forming_4h_candle_opens_with_its_first_stored_hour(auth_client, frozen, demo_btc):
    ts, ohlcv = demo_btc
    chart = auth_client.get(
        OHLC, {"symbol": "BTC/USDT", "timeframe": "4h", "live": "true", "limit": 5}
    ).json()
    bucket = chart["timestamp"][-1]
    first = int((ts == bucket).nonzero()[0][0])
    assert chart["open"][-1] == pytest.approx(ohlcv[first, 0])
    # Two stored hours played in full, then the forming one: its volume is theirs plus a part.
    assert ohlcv[first : first + 2, 4].sum() <= chart["volume"][-1] <= ohlcv[first : first + 3, 4].sum()


def test_online_the_chart_is_the_stored_candles_with_the_exchanges_ticker(auth_client, settings, demo_btc):
    ts, _ohlcv = demo_btc
    with FakeBinance() as fake:
        settings.MARKETDATA_ONLINE = True
        settings.MARKETDATA_API_OVERRIDES = fake.overrides()
        body = auth_client.get(
            OHLC, {"symbol": "BTC/USDT", "timeframe": "1h", "live": "true", "limit": 3}
        ).json()
    plain = auth_client.get(OHLC, {"symbol": "BTC/USDT", "timeframe": "1h", "limit": 3}).json()
    assert body["ticker"]["source"] == "live" and body["ticker"]["last"] == "73369.84"
    assert "ticker" not in plain
    assert body["timestamp"] == plain["timestamp"] and plain["timestamp"][-1] == int(ts[-1])


def test_live_refuses_start_and_end(auth_client, demo_btc):
    from tests.support.api import assert_error

    response = auth_client.get(OHLC, {"symbol": "BTC/USDT", "live": "true", "end": "2026-01-01T00:00:00Z"})
    assert_error(response, 400, fields=["live"])
