"""``manage.py backtest``: results as JSON, user strategy files, lookahead flag, clear errors,
compact curves with ``--full`` Parquet, and a start-up that loads only what a backtest needs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

REPO_ROOT = Path(__file__).resolve().parents[2]
START, END = "2024-01-01", "2024-03-01"  # 60 days of hourly candles = 1440 rows

USER_SMA = textwrap.dedent(
    """
    class FileSma(SignalStrategy):
        params = {"fast": Param("int", 10, min=2), "slow": Param("int", 30, min=3)}

        def signals(self, data):
            fast = indicators.sma(data.close, self.p.fast)
            slow = indicators.sma(data.close, self.p.slow)
            return Signals(
                long_entries=indicators.crossed_above(fast, slow),
                long_exits=indicators.crossed_below(fast, slow),
            )
    """
)

PEEKING = textwrap.dedent(
    """
    import numpy as np


    class Peek(SignalStrategy):
        def signals(self, data):
            close = np.asarray(data.close)
            tomorrow = np.append(close[1:], np.nan)
            return Signals(long_entries=tomorrow > close * 1.002, long_exits=tomorrow < close * 0.998)
    """
)


@pytest.fixture(autouse=True)
def _own_var_dir(settings, tmp_path):
    # The parsed-CSV cache lives under VAR_DIR: keep each test's to itself.
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture(scope="module")
def btc_1h() -> Path:
    # Same rule as the shared_data_dir fixture: $SHARED_DATA_DIR or ../shared/data from the repo root.
    data = Path(os.environ.get("SHARED_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")
    return data / "ohlcv" / "binance_BTCUSDT_1h.csv.gz"


def run(*args: str) -> None:
    call_command("backtest", *args)


def base_args(data: Path, output: Path, *extra: str) -> list[str]:
    return [
        "--data", str(data), "--symbol", "BTC/USDT", "--timeframe", "1h",
        "--start", START, "--end", END, "--cash", "10000", "--fee", "0.001",
        "--output", str(output), *extra,
    ]  # fmt: skip


def test_builtin_backtest_writes_metrics_trades_and_equity(btc_1h, tmp_path):
    out = tmp_path / "result.json"
    run(
        *base_args(
            btc_1h,
            out,
            "--strategy",
            "sma_crossover",
            "--params",
            '{"fast": 10, "slow": 30}',
        )
    )
    result = json.loads(out.read_text())
    assert result["strategy"] == {
        "name": "sma_crossover",
        "style": "signal",
        "params": {"fast": 10, "slow": 30},
    }
    assert result["data"]["candles"] == 1440
    metrics = result["metrics"]
    for key in (
        "total_return",
        "sharpe_ratio",
        "max_drawdown",
        "win_rate",
        "total_fees",
        "total_trades",
    ):
        assert key in metrics
    assert metrics["total_trades"] == len(result["trades"]) > 5
    assert result["trades"][0]["entry_time"] >= 1704067200000
    assert len(result["equity"]) == 1440
    timestamp, equity = result["equity"][0]
    assert timestamp == 1704067200000 and equity == pytest.approx(10000.0)
    # defaults: spot, long only, 100% of equity, no slippage
    config = result["config"]
    assert config["market_type"] == "spot" and config["allow_short"] is False
    assert config["sizing"] == {"type": "percent_equity", "value": 1.0}
    assert config["slippage"] == {"type": "none"}
    assert {t["side"] for t in result["trades"]} == {"long"}


def test_futures_long_and_short_with_leverage(btc_1h, tmp_path):
    out = tmp_path / "result.json"
    run(
        *base_args(
            btc_1h,
            out,
            "--strategy",
            "ema_crossover",
            "--leverage",
            "3",
            "--allow-short",
        )
    )
    result = json.loads(out.read_text())
    assert result["config"]["market_type"] == "futures"
    assert result["config"]["leverage"] == 3
    assert {t["side"] for t in result["trades"]} == {"long", "short"}


def test_futures_long_and_short_with_random_slippage(btc_1h, tmp_path):
    out = tmp_path / "result.json"
    run(*base_args(
        btc_1h, out, "--strategy", "ema_crossover", "--leverage", "3", "--allow-short",
        "--slippage", '{"type": "random", "max": 0.001, "seed": 7}',
    ))  # fmt: skip
    result = json.loads(out.read_text())
    assert result["config"]["slippage"] == {"type": "random", "max": 0.001, "seed": 7}
    assert {t["side"] for t in result["trades"]} == {"long", "short"}


def test_strategy_file_in_a_subprocess_matches_the_builtin(btc_1h, tmp_path):
    source = tmp_path / "file_sma.py"
    source.write_text(USER_SMA)
    out_file, out_builtin = tmp_path / "file.json", tmp_path / "builtin.json"
    completed = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "backtest",
            *base_args(btc_1h, out_file, "--strategy-file", str(source)),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "result written to" in completed.stdout
    run(
        *base_args(
            btc_1h,
            out_builtin,
            "--strategy",
            "sma_crossover",
            "--params",
            '{"fast": 10, "slow": 30}',
        )
    )
    from_file, builtin = (
        json.loads(out_file.read_text()),
        json.loads(out_builtin.read_text()),
    )
    assert from_file["strategy"]["file"] == "file_sma.py"
    assert from_file["strategy"]["name"] == "FileSma"
    assert from_file["metrics"] == builtin["metrics"]
    assert from_file["trades"] == builtin["trades"]


def test_bad_input_exits_non_zero_in_a_subprocess(btc_1h, tmp_path):
    completed = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "backtest",
            *base_args(btc_1h, tmp_path / "x.json", "--strategy", "nope"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode != 0
    assert "unknown strategy 'nope'" in completed.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--strategy", "nope"], "unknown strategy 'nope'"),
        (
            ["--strategy", "sma_crossover", "--params", "{fast: 1"],
            "--params is not valid JSON",
        ),
        (
            ["--strategy", "sma_crossover", "--params", "[1, 2]"],
            "--params must be a JSON object",
        ),
        (
            ["--strategy", "sma_crossover", "--params", '{"fast": 0}'],
            "fast: must be >= 2",
        ),
        (
            ["--strategy", "sma_crossover", "--params", '{"fast": 60, "slow": 30}'],
            "must be less than slow",
        ),
        (
            ["--strategy", "sma_crossover", "--params", '{"speed": 3}'],
            "speed: unknown parameter",
        ),
        (
            ["--strategy", "sma_crossover", "--fee", "abc"],
            "--fee: expected a number or a JSON object",
        ),
        (["--strategy", "sma_crossover", "--cash", "-5"], "initial_cash"),
        (["--strategy", "sma_crossover", "--leverage", "500"], "leverage"),
        (
            ["--strategy", "sma_crossover", "--start", "yesterday"],
            "--start: expected an ISO date",
        ),
    ],
)
def test_bad_input_is_a_command_error(btc_1h, tmp_path, extra, message):
    with pytest.raises(CommandError, match=message.replace("[", r"\[")):
        run(*base_args(btc_1h, tmp_path / "r.json", *extra))


def test_empty_range_missing_files_and_invalid_code_are_command_errors(btc_1h, tmp_path):
    out = tmp_path / "r.json"
    args = [
        "--data",
        str(btc_1h),
        "--symbol",
        "BTC/USDT",
        "--timeframe",
        "1h",
        "--output",
        str(out),
    ]
    with pytest.raises(CommandError, match="no candles in the selected range"):
        run(
            *args,
            "--strategy",
            "sma_crossover",
            "--start",
            "2030-01-01",
            "--end",
            "2030-02-01",
        )
    with pytest.raises(CommandError, match="data file not found"):
        run(
            "--data",
            str(tmp_path / "missing.csv"),
            "--symbol",
            "BTC/USDT",
            "--timeframe",
            "1h",
            "--strategy",
            "macd",
        )
    with pytest.raises(CommandError, match="cannot read strategy file"):
        run(
            *args,
            "--start",
            START,
            "--end",
            END,
            "--strategy-file",
            str(tmp_path / "missing.py"),
        )
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n" + USER_SMA)
    with pytest.raises(CommandError, match="line 1: import of 'os' is not allowed"):
        run(*args, "--start", START, "--end", END, "--strategy-file", str(bad))
    broken = tmp_path / "broken.py"
    broken.write_text(USER_SMA.replace("fast = indicators", "fast = 1 / 0 + indicators"))
    with pytest.raises(CommandError, match="line 6: ZeroDivisionError"):
        run(*args, "--start", START, "--end", END, "--strategy-file", str(broken))
    assert not out.exists()


def test_check_lookahead_flags_a_peeking_strategy_file(btc_1h, tmp_path):
    peek = tmp_path / "peek.py"
    peek.write_text(PEEKING)
    out = tmp_path / "r.json"
    with pytest.raises(CommandError, match="lookahead bias") as info:
        run(*base_args(btc_1h, out, "--strategy-file", str(peek), "--check-lookahead"))
    assert info.value.returncode == 3
    result = json.loads(out.read_text())
    assert result["lookahead"]["ok"] is False and result["lookahead"]["total_changes"] > 0


def test_check_lookahead_passes_a_builtin(btc_1h, tmp_path):
    out = tmp_path / "r.json"
    run(*base_args(btc_1h, out, "--strategy", "donchian_breakout", "--check-lookahead"))
    assert json.loads(out.read_text())["lookahead"]["ok"] is True


def test_list_strategies(capsys):
    call_command("backtest", "--list-strategies")
    names = [json.loads(line)["name"] for line in capsys.readouterr().out.splitlines()]
    assert "grid" in names and "sma_crossover" in names


def year_args(data: Path, output: Path, *extra: str) -> list[str]:
    """All of 2024 in hourly candles (8,784): more than the JSON's default curve points."""
    return [
        "--data", str(data), "--symbol", "BTC/USDT", "--timeframe", "1h",
        "--start", "2024-01-01", "--end", "2025-01-01", "--strategy", "sma_crossover",
        "--fee", "0.001", "--output", str(output), *extra,
    ]  # fmt: skip


def test_default_output_downsamples_the_curves_keeping_the_true_drawdown(btc_1h, tmp_path):
    out = tmp_path / "r.json"
    run(*year_args(btc_1h, out))
    result = json.loads(out.read_text())
    assert result["data"]["candles"] == 8784
    curves = result["curves"]
    assert curves == {"points": len(result["equity"]), "candles": 8784, "downsampled": True, "full": None}
    assert 1000 < curves["points"] <= 4000
    assert [t for t, _ in result["drawdown"]] == [t for t, _ in result["equity"]]
    times = [t for t, _ in result["equity"]]
    assert times == sorted(times) and times[0] == 1704067200000 and times[-1] == result["data"]["last"]
    assert min(d for _, d in result["drawdown"]) == result["metrics"]["max_drawdown"]
    assert result["equity"][-1][1] == pytest.approx(result["metrics"]["end_equity"])
    assert not list(tmp_path.glob("*.parquet"))


def test_points_sets_the_curve_resolution(btc_1h, tmp_path):
    out = tmp_path / "r.json"
    run(*year_args(btc_1h, out, "--points", "100"))
    result = json.loads(out.read_text())
    assert len(result["equity"]) <= 100 and result["curves"]["points"] == len(result["equity"])
    assert min(d for _, d in result["drawdown"]) == result["metrics"]["max_drawdown"]


def test_full_writes_every_candle_to_parquet_beside_the_json(btc_1h, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "year.json"
    run(*year_args(btc_1h, out, "--full"))
    result = json.loads(out.read_text())
    assert result["curves"]["full"] == "year.curves.parquet"
    table = pq.read_table(tmp_path / "year.curves.parquet")
    assert table.column_names == ["timestamp", "equity", "drawdown", "position_size"]
    assert table.num_rows == 8784
    columns = {name: table.column(name).to_pylist() for name in table.column_names}
    assert columns["timestamp"][0] == 1704067200000 and columns["equity"][0] == pytest.approx(10000.0)
    assert min(columns["drawdown"]) == result["metrics"]["max_drawdown"]
    by_time = dict(zip(columns["timestamp"], columns["equity"], strict=True))
    assert all(by_time[t] == e for t, e in result["equity"])  # the JSON's points are exact samples
    sizes = columns["position_size"]
    assert sum(1 for k in range(1, len(sizes)) if sizes[k - 1] == 0 < sizes[k]) > 5  # entries


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--full"], "--full needs --output"),
        (["--points", "5"], "--points must be at least 10"),
    ],
)
def test_bad_output_options_are_command_errors(btc_1h, extra, message):
    args = ["--data", str(btc_1h), "--symbol", "BTC/USDT", "--timeframe", "1h", "--strategy", "macd"]
    with pytest.raises(CommandError, match=message):
        run(*args, *extra)


def test_a_parsed_csv_is_cached_until_the_file_changes(tmp_path, settings):
    data = tmp_path / "candles.csv"
    rows = "".join(
        f"{1704067200000 + k * 3_600_000},{100 + k % 7},{101 + k % 7},{99 + k % 7},{100.5 + k % 7},1\n"
        for k in range(300)
    )
    data.write_text("timestamp,open,high,low,close,volume\n" + rows)
    out = tmp_path / "r.json"
    args = ["--data", str(data), "--symbol", "X/USDT", "--timeframe", "1h", "--strategy", "sma_crossover"]
    run(*args, "--params", '{"fast": 3, "slow": 5}', "--output", str(out))
    cache = settings.VAR_DIR / "cache" / "candles"
    [cached] = cache.glob("*.npy")
    first = json.loads(out.read_text())
    run(*args, "--params", '{"fast": 3, "slow": 5}', "--output", str(out))
    assert json.loads(out.read_text())["metrics"] == first["metrics"]
    assert list(cache.glob("*.npy")) == [cached]  # read from the cache, nothing new
    data.write_text("timestamp,open,high,low,close,volume\n" + rows[: len(rows) // 2])
    run(*args, "--params", '{"fast": 3, "slow": 5}', "--output", str(out))
    assert json.loads(out.read_text())["data"]["candles"] == 150
    [replaced] = cache.glob("*.npy")
    assert replaced != cached  # the stale copy was replaced, not kept beside
    run(*args, "--params", '{"fast": 3, "slow": 5}', "--output", str(out), "--no-cache")
    assert list(cache.glob("*")) == [replaced]


def test_backtest_process_starts_without_ccxt_daphne_twisted_pandas_or_the_urls(btc_1h, tmp_path):
    """The whole-process CLI imports only what a backtest needs (``-X importtime`` lists every module)."""
    out = tmp_path / "r.json"
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "manage.py", "backtest", *year_args(btc_1h, out, "--full")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "VAR_DIR": str(tmp_path / "var")},
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in completed.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert {"numpy", "pyarrow", "apps.backtests.engine", "django"} <= imported  # the hook saw the run
    for forbidden in ("ccxt", "daphne", "twisted", "pandas", "config.urls", "rest_framework.views"):
        assert forbidden not in imported, f"manage.py backtest imported {forbidden}"
    assert json.loads(out.read_text())["curves"]["full"] == "r.curves.parquet"
