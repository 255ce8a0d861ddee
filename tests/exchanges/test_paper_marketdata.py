"""The paper exchange on the market-data service: offline, orders fill on the replay feed.

Real BTC/USDT 1h candles are imported into the candle store; the market-data
service (offline in tests) replays them, and the paper gateway with its default
price source trades on that feed. Only the wall clock is pinned so the replay
position is known.
"""

from __future__ import annotations

import types
from decimal import Decimal

import numpy as np
import pytest

from apps.exchanges.gateway import OrderRequest
from apps.exchanges.gateway.paper import PaperGateway
from apps.marketdata import live
from apps.marketdata import services as marketdata
from tests.factories import PaperAccountFactory
from tests.support.cache import clear_cache

pytestmark = pytest.mark.django_db

HOUR = 3_600_000


@pytest.fixture
def stored(btc_1h, settings):
    settings.MARKETDATA_ONLINE = False
    settings.MARKETDATA_REPLAY_SPEED = 1.0
    ohlcv = np.column_stack([btc_1h.open, btc_1h.high, btc_1h.low, btc_1h.close, btc_1h.volume])
    marketdata.candles_import_arrays(
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        ts=btc_1h.timestamp.astype(np.int64),
        ohlcv=ohlcv,
    )
    clear_cache()
    return btc_1h


@pytest.fixture
def clock(monkeypatch, stored):
    """Pin the replay to the start of candle ``k`` (the feed maps wall time to a stored candle)."""
    count = len(stored.timestamp)

    def at(k: int) -> None:
        wall_ms = (10_000 * count + k) * HOUR + 1  # replay index k, fraction ~0
        monkeypatch.setattr(live, "time", types.SimpleNamespace(time=lambda: wall_ms / 1000))
        clear_cache()

    return at


def test_paper_orders_fill_on_the_market_data_replay_feed(user, stored, clock):
    account = PaperAccountFactory(
        user=user, slippage={"type": "percentage", "value": 0.001}, max_volume_fraction=None
    )
    gateway = PaperGateway(account)  # default price source: apps.marketdata

    k = 100
    clock(k)
    order = gateway.create_order(OrderRequest("BTC/USDT", "buy", "market", Decimal("0.05")))
    assert order.status == "filled"
    assert float(order.average) == pytest.approx(float(stored.open[k]) * 1.001, rel=1e-9)

    limit = round(float(stored.open[k]) * 0.985, 2)
    resting = gateway.create_order(
        OrderRequest("BTC/USDT", "buy", "limit", Decimal("0.05"), price=Decimal(repr(limit)))
    )
    hits = np.flatnonzero(stored.low[k:] <= limit)
    assert len(hits)
    j = k + int(hits[0])
    clock(j)  # candle j is forming: not closed yet, no fill
    assert gateway.fetch_order(resting.id, "BTC/USDT").status == "open"
    clock(j + 1)
    done = gateway.fetch_order(resting.id, "BTC/USDT")
    assert done.status == "filled"
    assert done.average == min(Decimal(repr(limit)), Decimal(repr(float(stored.open[j]))))
    trade = next(t for t in gateway.fetch_my_trades("BTC/USDT") if t.order_id == resting.id)
    assert trade.timestamp == int(stored.timestamp[j]) and trade.maker is True


def test_the_periodic_task_fills_resting_orders_without_anyone_asking(user, stored, clock):
    from apps.exchanges.models import PaperOrder
    from apps.exchanges.tasks import process_paper_orders

    account = PaperAccountFactory(user=user, max_volume_fraction=None)
    gateway = PaperGateway(account)
    k = 300
    clock(k)
    limit = round(float(stored.open[k]) * 1.05, 2)  # marketable at the current price
    order = gateway.create_order(
        OrderRequest("BTC/USDT", "buy", "limit", Decimal("0.01"), price=Decimal(repr(limit)))
    )
    # Price-tick matching: the pass fills it at the current price (candle k's open), before k closes.
    assert process_paper_orders() == 1
    row = PaperOrder.objects.get(pk=order.id)
    assert row.status == "filled" and row.cost == Decimal("0.01") * Decimal(repr(float(stored.open[k])))
    clock(k + 1)
    assert process_paper_orders() == 0  # candle k closing does not fill it a second time


def test_the_last_closed_candles_volume_is_read_once_per_candle(stored, clock, monkeypatch):
    """A market order's slippage is sized by the volume of the candle that closed last: kept until the next closes."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.exchanges.gateway.prices import MarketDataPriceSource
    from apps.marketdata.models import Market

    k = 100
    clock(k)
    assert MarketDataPriceSource("binance").last_volume("BTC/USDT") == pytest.approx(
        float(stored.volume[k - 1])
    )
    with CaptureQueriesContext(connection) as queries:
        again = MarketDataPriceSource("binance").last_volume("BTC/USDT")
    assert again == pytest.approx(float(stored.volume[k - 1]))
    assert not [q["sql"] for q in queries.captured_queries if "marketdata_candle" in q["sql"]]

    # The next candle closes (the kept volume stays in the cache; the feed's price moves on).
    wall_ms = (10_000 * len(stored.timestamp) + k + 1) * HOUR + 1
    monkeypatch.setattr(live, "time", types.SimpleNamespace(time=lambda: wall_ms / 1000))
    cache.delete(f"marketdata:ticker:{Market.objects.get(symbol='BTC/USDT').pk}")
    assert MarketDataPriceSource("binance").last_volume("BTC/USDT") == pytest.approx(float(stored.volume[k]))
