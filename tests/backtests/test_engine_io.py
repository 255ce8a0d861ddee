"""Candle CSV files: read by pyarrow with pandas' results and errors, cached, and Parquet curves."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apps.backtests.engine import BacktestError, load_csv
from apps.backtests.engine import io as engine_io

REPO_ROOT = Path(__file__).resolve().parents[2]
HEADER = "timestamp,open,high,low,close,volume\n"


def pandas_reference(path):
    """What ``load_csv`` returned before pyarrow: pandas with the same dtypes."""
    return pd.read_csv(
        path,
        dtype={"timestamp": "int64", **{c: "float64" for c in ("open", "high", "low", "close", "volume")}},
        usecols=["timestamp", "open", "high", "low", "close", "volume"],
    )


def write_rows(path, n, *, start=0):
    rng = np.random.default_rng(3)
    close = np.round(100 + np.cumsum(rng.normal(0, 0.5, n)), 2)
    lines = [
        f"{1_700_000_000_000 + (start + k) * 60_000},{c:.2f},{c + 1:.2f},{c - 1:.2f},{c:.2f},{k % 13 / 4}\n"
        for k, c in enumerate(close)
    ]
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as f:
        f.write(HEADER + "".join(lines))


@pytest.mark.parametrize("name", ["binance_BTCUSDT_1m.csv.gz", "binance_ETHUSDT_1h.csv.gz"])
def test_real_files_read_exactly_as_pandas_reads_them(shared_data_dir, name):
    path = shared_data_dir / "ohlcv" / name
    candles, frame = load_csv(path), pandas_reference(path)
    assert len(candles) == len(frame) > 50_000
    for column in ("timestamp", "open", "high", "low", "close", "volume"):
        values = getattr(candles, column)
        assert values.dtype == frame[column].dtype and values.flags["C_CONTIGUOUS"]
        np.testing.assert_array_equal(values, frame[column].to_numpy())


def test_extra_columns_any_order_and_empty_prices_as_nan(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("\ufeffclose,volume,note,timestamp,low,high,open\n2,5,x,60000,1,3,2\n,5,y,120000,1,3,2\n")
    candles = load_csv(path)
    assert candles.timestamp.tolist() == [60000, 120000]
    assert candles.close[0] == 2 and np.isnan(candles.close[1])
    with pytest.raises(BacktestError, match="candle 1 has NaN"):
        candles.validate()


def test_empty_values_across_parse_blocks_land_on_their_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(engine_io, "_BLOCK_SIZE", 4096)  # ~70 rows per block: many chunks
    path = tmp_path / "c.csv"
    write_rows(path, 2000)
    text = path.read_text().splitlines(keepends=True)
    holes = [7, 700, 1999]
    for row in holes:
        fields = text[row + 1].split(",")
        fields[4] = ""  # close
        text[row + 1] = ",".join(fields)
    path.write_text("".join(text))
    candles = load_csv(path)
    assert np.flatnonzero(np.isnan(candles.close)).tolist() == holes
    np.testing.assert_array_equal(candles.open, pandas_reference(path)["open"].to_numpy())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "timestamp,open,high,low,close\n1,2,3,1,2\n",
            "expected columns timestamp,open,high,low,close,volume",
        ),
        (HEADER + "1.5,2,3,1,2,5\n", "expected columns"),
        (HEADER + "1,abc,3,1,2,5\n", "expected columns"),
        (HEADER + ",2,3,1,2,5\n", "timestamp has empty values"),
        ("", "expected columns"),
    ],
)
def test_bad_files_are_backtest_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(BacktestError, match=message):
        load_csv(path)


def test_missing_and_damaged_files(tmp_path):
    with pytest.raises(BacktestError, match="data file not found"):
        load_csv(tmp_path / "missing.csv.gz")
    damaged = tmp_path / "damaged.csv.gz"
    write_rows(damaged, 5000)
    damaged.write_bytes(damaged.read_bytes()[:2000])
    with pytest.raises(OSError):
        load_csv(damaged)


def test_header_only_file_has_no_candles(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text(HEADER)
    assert len(load_csv(path)) == 0


def test_the_cache_returns_the_same_candles_and_survives_damage(tmp_path):
    path, cache = tmp_path / "c.csv.gz", tmp_path / "cache"
    write_rows(path, 3000)
    parsed = load_csv(path, cache_dir=cache)
    [cached] = cache.glob("*.npy")
    again = load_csv(path, cache_dir=cache)
    for column in ("timestamp", "open", "high", "low", "close", "volume"):
        assert getattr(again, column).dtype == getattr(parsed, column).dtype
        np.testing.assert_array_equal(getattr(again, column), getattr(parsed, column))
    cached.write_bytes(b"not numpy")
    np.testing.assert_array_equal(load_csv(path, cache_dir=cache).close, parsed.close)
    assert len(np.load(cached)[0]) == 3000  # parsed again and rewritten


def test_an_unwritable_cache_is_skipped(tmp_path):
    path = tmp_path / "c.csv"
    write_rows(path, 100)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would be")
    assert len(load_csv(path, cache_dir=blocker / "cache")) == 100


def test_reading_and_writing_files_never_imports_pandas(tmp_path):
    path = tmp_path / "c.csv.gz"
    write_rows(path, 500)
    code = (
        "import sys\n"
        "from apps.backtests.engine import BacktestConfig, Signals, SignalStrategy, load_csv, run_backtest\n"
        "from apps.backtests.engine.io import write_curves\n"
        "class Hold(SignalStrategy):\n"
        "    def signals(self, data):\n"
        "        import numpy as np\n"
        "        return Signals(long_entries=np.arange(len(data)) == 3)\n"
        f"c = load_csv({str(path)!r}, cache_dir={str(tmp_path / 'cache')!r})\n"
        f"write_curves({str(tmp_path / 'x.parquet')!r}, run_backtest(c, Hold(), BacktestConfig()))\n"
        "assert 'pandas' not in sys.modules, 'pandas imported'\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert pd.read_parquet(tmp_path / "x.parquet")["position_size"].max() > 0
