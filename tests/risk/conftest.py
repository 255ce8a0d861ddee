from __future__ import annotations

import types
from decimal import Decimal

import pytest

from apps.marketdata import live
from tests.exchanges.conftest import btc_1h, replay  # noqa: F401
from tests.orders.conftest import BTC_USDT, candles_stored, paper, paper_account  # noqa: F401 - shared fixtures
from tests.support.cache import clear_cache

HOUR = 3_600_000


@pytest.fixture
def market(candles_stored, settings, monkeypatch):  # noqa: F811
    """The offline replay feed over the stored candles, pinned to candle 100 (as the orders API tests)."""
    settings.MARKETDATA_ONLINE = False
    settings.MARKETDATA_REPLAY_SPEED = 1.0
    k = 100
    wall_ms = (10_000 * len(candles_stored.timestamp) + k) * HOUR + 1
    monkeypatch.setattr(live, "time", types.SimpleNamespace(time=lambda: wall_ms / 1000))
    clear_cache()
    return Decimal(repr(float(candles_stored.open[k])))


@pytest.fixture(autouse=True)
def _fresh_risk_caches():
    """The monitor keeps prices per process and the pre-trade check caches the rules: no test sees another's."""
    from apps.risk import monitoring

    monitoring.caches_clear()
    clear_cache()
    yield
    monitoring.caches_clear()
