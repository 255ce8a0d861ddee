from __future__ import annotations

import io
import zipfile
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from apps.marketdata import selectors, services
from apps.marketdata.errors import ImportFailed, NoCandles, UnknownMarket, UnknownTimeframe
from apps.marketdata.models import Candle, Market
from tests.marketdata.conftest import read_reference

pytestmark = pytest.mark.django_db


def test_import_real_1h_file_stores_every_row_and_reads_back_identical(ohlcv_file):
    path = ohlcv_file("binance_BTCUSDT_1h.csv.gz")
    report = services.candles_import_file(path=path, symbol="BTC/USDT", timeframe="1h")
    assert report.rows == 72865 and report.inserted == 72865 and report.skipped == 0
    assert report.first == datetime(2018, 1, 1, tzinfo=UTC)
    frame = selectors.candles(exchange="binance", symbol="BTC/USDT", timeframe="1h").to_frame()
    reference = read_reference(path)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert str(frame.index.tz) == "UTC" and frame.index.name == "timestamp"
    assert (frame.dtypes == "float64").all()
    np.testing.assert_array_equal(frame.index.as_unit("ms").asi8, reference.index.as_unit("ms").asi8)
    # float8 storage round-trips every exchange value exactly
    np.testing.assert_array_equal(frame.to_numpy(), reference.to_numpy())


def test_reimport_is_idempotent(ohlcv_file):
    path = ohlcv_file("binance_XRPETH_5m.csv.gz")
    first = services.candles_import_file(path=path, symbol="XRP/ETH", timeframe="5m")
    again = services.candles_import_file(path=path, symbol="XRP/ETH", timeframe="5m")
    assert first.inserted == 706
    assert again.inserted == 0 and again.skipped == 706
    assert Candle.objects.filter(timeframe="5m").count() == 706


def test_import_creates_market_from_offline_catalog(ohlcv_file):
    services.candles_import_file(
        path=ohlcv_file("binanceusdm_XRPUSDT_5m.csv.gz"),
        exchange="binanceusdm",
        symbol="XRP/USDT:USDT",
        timeframe="5m",
    )
    market = Market.objects.get(exchange__slug="binanceusdm", symbol="XRP/USDT:USDT")
    assert (
        market.type == "swap" and market.base == "XRP" and str(market.precision_price).rstrip("0") == "0.0001"
    )


def test_resampled_1h_equals_independent_pandas_resample_of_1m_file(ohlcv_file):
    path = ohlcv_file("binance_XRPETH_1m.csv.gz")
    services.candles_import_file(path=path, symbol="XRP/ETH", timeframe="1m")
    got = selectors.candles(exchange="binance", symbol="XRP/ETH", timeframe="1h").to_frame()
    ref = (
        read_reference(path)
        .resample("1h")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna(subset=["open"])
    )
    np.testing.assert_array_equal(got.index.as_unit("ms").asi8, ref.index.as_unit("ms").asi8)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-12)


def test_resampled_5m_matches_the_exchanges_own_5m_file(ohlcv_file):
    services.candles_import_file(
        path=ohlcv_file("binance_XRPETH_1m.csv.gz"), symbol="XRP/ETH", timeframe="1m"
    )
    got = selectors.candles(exchange="binance", symbol="XRP/ETH", timeframe="5m").to_frame()
    ref = read_reference(ohlcv_file("binance_XRPETH_5m.csv.gz"))
    common = got.index.intersection(ref.index)
    assert len(common) > 600
    # Binance omits trade-less minutes, so buckets the 1m file holds completely must match.
    np.testing.assert_allclose(
        got.loc[common, ["open", "high", "low", "close"]], ref.loc[common, ["open", "high", "low", "close"]]
    )


def test_stored_timeframe_is_preferred_over_resampling(ohlcv_file):
    services.candles_import_file(
        path=ohlcv_file("binance_XRPETH_1m.csv.gz"), symbol="XRP/ETH", timeframe="1m"
    )
    services.candles_import_file(
        path=ohlcv_file("binance_XRPETH_5m.csv.gz"), symbol="XRP/ETH", timeframe="5m"
    )
    arrays = selectors.candles(exchange="binance", symbol="XRP/ETH", timeframe="5m")
    assert arrays.source_timeframe == "5m" and len(arrays) == 706
    arrays = selectors.candles(exchange="binance", symbol="XRP/ETH", timeframe="15m")
    assert arrays.source_timeframe == "1m"


def test_range_is_start_inclusive_end_exclusive(ohlcv_file):
    services.candles_import_file(
        path=ohlcv_file("binance_BTCUSDT_1d.csv.gz"), symbol="BTC/USDT", timeframe="1d"
    )
    frame = selectors.candles(
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1d",
        start=datetime(2023, 1, 1, tzinfo=UTC),
        end=datetime(2023, 1, 11, tzinfo=UTC),
    ).to_frame()
    assert len(frame) == 10
    assert frame.index[0] == pd.Timestamp("2023-01-01", tz="UTC")
    assert frame.iloc[0]["open"] == 16541.77  # README spot check
    weekly = selectors.candles(
        exchange="binance", symbol="BTC/USDT", timeframe="1w", start=datetime(2023, 1, 2)
    ).to_frame()
    assert weekly.index[0].day_of_week == 0  # Binance weeks start on Monday


def test_gap_report_finds_the_documented_15m_halt(ohlcv_file):
    services.candles_import_file(
        path=ohlcv_file("binance_BTCUSDT_15m.csv.gz"), symbol="BTC/USDT", timeframe="15m"
    )
    report = selectors.gap_report(exchange="binance", symbol="BTC/USDT", timeframe="15m")
    assert report.present == 116552 and report.missing == 5 and len(report.gaps) == 1
    assert report.gaps[0].after == datetime(2023, 3, 24, 12, 30, tzinfo=UTC)
    assert report.expected == report.present + report.missing


def test_gap_report_of_1h_file_matches_readme(ohlcv_file):
    services.candles_import_file(
        path=ohlcv_file("binance_ETHUSDT_1h.csv.gz"), symbol="ETH/USDT", timeframe="1h"
    )
    report = selectors.gap_report(exchange="binance", symbol="ETH/USDT", timeframe="1h")
    assert (report.missing, len(report.gaps)) == (122, 27)
    assert max(g.missing for g in report.gaps) == 33


def test_read_errors(ohlcv_file):
    with pytest.raises(UnknownMarket):
        selectors.candles(exchange="binance", symbol="NOPE/USDT", timeframe="1h")
    services.market_ensure(exchange="binance", symbol="ETH/USDT")
    with pytest.raises(NoCandles):
        selectors.candles(exchange="binance", symbol="ETH/USDT", timeframe="1h")
    with pytest.raises(UnknownTimeframe):
        selectors.candles(exchange="binance", symbol="ETH/USDT", timeframe="7m")
    services.candles_import_file(
        path=ohlcv_file("binance_ETHUSDT_1d.csv.gz"), symbol="ETH/USDT", timeframe="1d"
    )
    with pytest.raises(NoCandles):  # 1h cannot be built from 1d
        selectors.candles(exchange="binance", symbol="ETH/USDT", timeframe="1h")
    with pytest.raises(Exception, match="start must not be after end"):
        selectors.candles(
            exchange="binance",
            symbol="ETH/USDT",
            timeframe="1d",
            start=datetime(2024, 1, 2),
            end=datetime(2024, 1, 1),
        )


# ------------------------------------------------------------- file formats
BINANCE_ROWS = [
    "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.68108,1704070799999,53957248.97,47134,682.57581,28957416.82,0",
    "1704070800000,42475.23,42775.00,42431.65,42613.56,1196.37856,1704074399999,50984893.27,44556,580.47855,24736833.03,0",
]


def test_binance_monthly_zip_without_header(tmp_path):
    path = tmp_path / "BTCUSDT-1h-2024-01.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("BTCUSDT-1h-2024-01.csv", "\n".join(BINANCE_ROWS) + "\n")
    report = services.candles_import_file(path=path, symbol="BTCUSDT", timeframe="1h")
    assert report.inserted == 2 and report.symbol == "BTC/USDT"
    frame = selectors.candles(exchange="binance", symbol="BTC/USDT", timeframe="1h").to_frame()
    assert frame.iloc[1]["close"] == 42613.56


def test_binance_daily_file_with_header_and_microseconds(write_csv):
    header = "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore"
    rows = [
        r.replace("1704067200000,", "1704067200000000,").replace("1704070800000,", "1704070800000000,")
        for r in BINANCE_ROWS
    ]
    path = write_csv("BTCUSDT-1h-2024-01-01.csv", header + "\n" + "\n".join(rows) + "\n")
    report = services.candles_import_file(path=path, symbol="BTC/USDT", timeframe="1h")
    assert report.inserted == 2 and report.first == datetime(2024, 1, 1, tzinfo=UTC)


def test_plain_csv_with_iso_dates(write_csv):
    path = write_csv(
        "plain.csv.gz",
        "timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n2024-01-01 00:01:00+00:00,1.5,2,1,1,0\n",
    )
    assert services.candles_import_file(path=path, symbol="ETH/USDT", timeframe="1m").inserted == 2


HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = "1704067200000,10,11,9,10.5,100\n"


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("1704067260000,10,9,11,10,1\n", 3, "high 9 is below low 11"),
        ("1704067260000,10,11,9,10,-1\n", 3, "negative volume -1"),
        ("17040672x0000,10,11,9,10,1\n", 3, "bad timestamp '17040672x0000'"),
        ("1704067230000,10,11,9,10,1\n", 3, "not the start of a 1m candle"),
        ("99,10,11,9,10,1\n", 3, "outside"),
        ("1704067260000,10,11,9,abc,1\n", 3, "close: not a number: 'abc'"),
        ("1704067260000,10,11,9,10\n", 3, "volume: missing value"),
        ("1704067260000,10,13,12,10,1\n", 3, "low 12 is above"),
        ("\n1704067260000,10,11,9,10,1\n", 3, "missing"),
        (
            "1704067200000,10,11,9,10.6,100\n",
            3,
            "duplicate timestamp 2024-01-01 00:00:00 with values different from line 2",
        ),
    ],
)
def test_bad_input_names_file_and_line_and_writes_nothing(write_csv, body, line, message):
    path = write_csv("bad.csv", HEADER + GOOD + body + "1704067320000,10,11,9,10,1\n")
    with pytest.raises(ImportFailed) as info:
        services.candles_import_file(path=path, symbol="BTC/USDT", timeframe="1m")
    assert f"bad.csv, line {line}: " in info.value.message
    assert message in info.value.message
    assert info.value.fields["line"] == line
    assert Candle.objects.count() == 0


def test_unreadable_files(tmp_path, write_csv):
    with pytest.raises(ImportFailed, match=r"missing\.csv: file not found"):
        services.candles_import_file(path=tmp_path / "missing.csv", symbol="BTC/USDT", timeframe="1m")
    bad_zip = write_csv("two.zip", "not a zip")
    with pytest.raises(ImportFailed, match=r"two\.zip: cannot read"):
        services.candles_import_file(path=bad_zip, symbol="BTC/USDT", timeframe="1m")
    with pytest.raises(UnknownTimeframe):
        services.candles_import_file(
            path=write_csv("ok.csv", HEADER + GOOD), symbol="BTC/USDT", timeframe="2m"
        )
    with pytest.raises(UnknownMarket):
        services.candles_import_file(
            path=write_csv("ok.csv", HEADER + GOOD), symbol="FOO/BAR", timeframe="1m"
        )


def test_exact_duplicate_rows_are_dropped(write_csv):
    path = write_csv("dup.csv", HEADER + GOOD + GOOD)
    report = services.candles_import_file(path=path, symbol="BTC/USDT", timeframe="1m")
    assert report.rows == 2 and report.inserted == 1 and report.skipped == 1


def test_failure_midway_leaves_nothing_written(monkeypatch, write_csv):
    from apps.marketdata import store

    path = write_csv("ok.csv", HEADER + GOOD + "1704067260000,10,11,9,10,1\n")
    calls = []

    def explode(done, total):
        calls.append(done)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        services.candles_import_file(path=path, symbol="BTC/USDT", timeframe="1m", progress=explode)
    assert calls and Candle.objects.count() == 0
    assert store  # the real store ran
    _ = io


def test_deleting_a_market_deletes_its_candles(ohlcv_file):
    # Candle.market has no database FK constraint (bulk-load speed): Django's cascade must still work.
    services.candles_import_file(
        path=ohlcv_file("binance_XRPETH_5m.csv.gz"), symbol="XRP/ETH", timeframe="5m"
    )
    Market.objects.get(symbol="XRP/ETH").delete()
    assert Candle.objects.count() == 0


def test_monthly_candles_resampled_from_daily_equal_pandas_month_start_resample(ohlcv_file):
    path = ohlcv_file("binance_ETHUSDT_1d.csv.gz")
    services.candles_import_file(path=path, symbol="ETH/USDT", timeframe="1d")
    got = selectors.candles(exchange="binance", symbol="ETH/USDT", timeframe="1M").to_frame()
    ref = (
        read_reference(path)
        .resample("MS")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna(subset=["open"])
    )
    np.testing.assert_array_equal(got.index.as_unit("ms").asi8, ref.index.as_unit("ms").asi8)
    np.testing.assert_allclose(got.to_numpy(), ref.to_numpy(), rtol=1e-12)
    report = selectors.gap_report(exchange="binance", symbol="ETH/USDT", timeframe="1M")
    assert report.missing == 0 and report.present == len(ref)
