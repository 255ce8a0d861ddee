from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.marketdata import selectors
from apps.marketdata.management.commands.seed_demo_marketdata import generate_candles
from apps.marketdata.models import Candle, Market, Subscription
from tests.support.fake_exchange import FakeBinance

pytestmark = pytest.mark.django_db


def run(*args, **kwargs) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO(), **kwargs)
    return out.getvalue()


def test_import_candles_guesses_market_from_shared_file_name(shared_data_dir):
    path = shared_data_dir / "ohlcv" / "binance_XRPETH_5m.csv.gz"
    out = run("import_candles", str(path), "--no-progress")
    assert "706 rows" in out and "706 inserted" in out
    again = run("import_candles", str(path), "--no-progress")
    assert "0 inserted, 706 already stored" in again
    assert Candle.objects.filter(market__symbol="XRP/ETH", timeframe="5m").count() == 706


def test_import_candles_reports_bad_file_and_fails(tmp_path):
    bad = tmp_path / "BTCUSDT-1m-2024-01.csv"
    bad.write_text("1704067200000,10,9,11,10,1,0,0,0,0,0,0\n")
    with pytest.raises(CommandError, match="1 file"):
        run("import_candles", str(bad))
    assert Candle.objects.count() == 0


def test_download_candles_offline_says_so():
    with pytest.raises(CommandError, match="MARKETDATA_ONLINE=false"):
        run("download_candles", "--symbol", "BTC/USDT")


def test_refresh_markets_offline_catalog_and_online_via_fake(settings):
    assert "8 markets from the built-in catalog" in run("refresh_markets", "--offline")
    with pytest.raises(CommandError, match="--offline"):
        run("refresh_markets")
    with FakeBinance() as fake:
        settings.MARKETDATA_ONLINE = True
        settings.MARKETDATA_API_OVERRIDES = fake.overrides()
        assert "11 markets loaded through ccxt" in run("refresh_markets")
    assert Market.objects.filter(exchange__slug="binance", type="swap").count() == 3


def test_seed_demo_offline_ships_a_year_of_real_hourly_candles_and_says_so(user, shared_data_dir):
    out = run("seed_demo_marketdata", "--days", "1", "--user", user.email)
    assert out.count("imported 8760 real 1h Binance candles shipped with the app (offline") == 2
    assert out.count("generated 1440 synthetic 1m candles (offline") == 1  # SOL/USDT has no sample
    assert Subscription.objects.filter(user=user).count() == 3
    btc = selectors.candles(exchange="binance", symbol="BTC/USDT", timeframe="1h")
    assert len(btc) == 8760 and (btc.timestamp[-1] - btc.timestamp[0]) == (8760 - 1) * 3_600_000
    # The sample is the last year of the real file in shared data, candle for candle.
    real = pd.read_csv(shared_data_dir / "ohlcv" / "binance_BTCUSDT_1h.csv.gz").tail(8760)
    assert np.array_equal(btc.timestamp, real.timestamp.to_numpy())
    assert np.allclose(btc.close, real.close.to_numpy(), rtol=0, atol=1e-9)
    sol = selectors.candles(exchange="binance", symbol="SOL/USDT", timeframe="1h").to_frame()
    assert len(sol) in (24, 25) and (sol.high >= sol.low).all()  # 1440 minutes span 24-25 hours
    assert run("seed_demo_marketdata", "--days", "1").count("already stored") == 3
    assert selectors.gap_report(exchange="binance", symbol="SOL/USDT", timeframe="1m").missing == 0


def test_seed_demo_with_the_exchange_out_of_reach_seeds_offline_and_leaves_the_marker_run_sh_reads(
    settings, monkeypatch, tmp_path, shared_data_dir
):
    from apps.marketdata import gateway as marketdata_gateway
    from apps.marketdata.management.commands.seed_demo_marketdata import offline_marker
    from tests.support.servers import free_port

    monkeypatch.setattr(marketdata_gateway, "DOWNLOAD_BACKOFF_SECONDS", 0.0)
    settings.VAR_DIR = tmp_path
    settings.MARKETDATA_ONLINE = True
    settings.MARKETDATA_API_OVERRIDES = {"binance": f"http://127.0.0.1:{free_port()}"}
    marketdata_gateway.reset_gateways()
    out = run("seed_demo_marketdata", "--days", "1")
    assert "could not download" in out and out.count("shipped with the app (offline") == 2
    # scripts/run.sh then runs the app offline, so the demo bot ticks on the replay feed.
    assert offline_marker() == tmp_path / "demo-offline" and offline_marker().exists()
    run("seed_demo_marketdata", "--days", "1")  # a second seed (stored candles) keeps it
    assert offline_marker().exists()
    run_sh = (Path(__file__).resolve().parents[2] / "scripts" / "run.sh").read_text()
    assert 'demo-offline" ]; then\n  export MARKETDATA_ONLINE=false' in run_sh


def test_seed_demo_online_downloads_through_ccxt(settings, tmp_path):
    from apps.marketdata.management.commands.seed_demo_marketdata import offline_marker

    settings.VAR_DIR = tmp_path
    offline_marker().write_text("an earlier seed was offline")
    now_ms = int(time.time() * 1000) // 60_000 * 60_000
    with FakeBinance() as fake:
        for exchange_symbol, symbol, price in [
            ("BTCUSDT", "BTC/USDT", 100.0),
            ("ETHUSDT", "ETH/USDT", 10.0),
            ("SOLUSDT", "SOL/USDT", 1.0),
        ]:
            ts, ohlcv = generate_candles(symbol, price, end_ms=now_ms + 60_000, days=1)
            fake.set_klines(
                exchange_symbol,
                "1m",
                [[int(t), *row] for t, row in zip(ts.tolist(), ohlcv.tolist(), strict=True)],
            )
        settings.MARKETDATA_ONLINE = True
        settings.MARKETDATA_API_OVERRIDES = fake.overrides()
        out = run("seed_demo_marketdata", "--days", "1")
    assert out.count("real candles through ccxt (online)") == 3, out
    assert not offline_marker().exists()  # the exchange answered: the app runs online
    assert Candle.objects.filter(market__symbol="SOL/USDT").count() >= 1439


def test_seed_demo_lists_only_seed_commands_that_exist():
    from django.core.management import get_commands

    from apps.core.management.commands.seed_demo import APP_SEED_COMMANDS

    assert APP_SEED_COMMANDS and set(APP_SEED_COMMANDS) <= set(get_commands())
