from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from tests.support.cache import clear_cache


@pytest.fixture
def ohlcv_file(shared_data_dir):
    def get(name: str) -> Path:
        return shared_data_dir / "ohlcv" / name

    return get


@pytest.fixture
def write_csv(tmp_path):
    """Write ``text`` to ``tmp_path/name`` (gzip when the name ends in .gz)."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        data = text.encode()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        return path

    return write


def read_reference(path: Path) -> pd.DataFrame:
    """The file read independently with pandas: UTC index named timestamp, float64 OHLCV."""
    df = pd.read_csv(path)
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), unit="ms", utc=True), name="timestamp")
    return df.astype("float64")


@pytest.fixture(autouse=True)
def _fresh_cache_and_clients():
    """Tickers and the offline flag live in the cache (Redis under PostgreSQL runs): start clean."""

    from apps.marketdata import gateway

    clear_cache()
    gateway.reset_gateways()
    yield
    gateway.reset_gateways()


@pytest.fixture
def stored_candles(db, shared_data_dir):
    """BTC/USDT 4h and ETH/USDT 1d imported from the shared data."""
    from apps.marketdata import services

    services.candles_import_file(
        path=shared_data_dir / "ohlcv" / "binance_BTCUSDT_4h.csv.gz", symbol="BTC/USDT", timeframe="4h"
    )
    services.candles_import_file(
        path=shared_data_dir / "ohlcv" / "binance_ETHUSDT_1d.csv.gz", symbol="ETH/USDT", timeframe="1d"
    )
