"""Lookahead-bias check: catches strategies that use future candles, passes the built-ins."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apps.backtests.engine import (
    BacktestConfig,
    Candles,
    Param,
    Signals,
    SignalStrategy,
    Strategy,
    StrategyError,
    load_csv,
    run_backtest,
)
from apps.backtests.strategies import indicators as ta
from apps.backtests.strategies.lookahead import LookaheadReport, check_lookahead
from apps.backtests.strategies.registry import build_strategy, list_strategies


@pytest.fixture(scope="module")
def btc(request) -> Candles:
    # Same rule as the shared_data_dir fixture: $SHARED_DATA_DIR or ../shared/data from the repo root.
    root = Path(__file__).resolve().parents[2]
    data = Path(os.environ.get("SHARED_DATA_DIR") or root.parent / "shared" / "data")
    candles = load_csv(data / "ohlcv" / "binance_BTCUSDT_1h.csv.gz")
    return candles.slice(len(candles) - 3000, len(candles))


class PeekingSma(SignalStrategy):
    """Uses tomorrow's close: ``shift(-1)``, the classic one-candle peek."""

    name = "peeking_sma"
    params = {"period": Param("int", 20, min=2)}

    def signals(self, data):
        close = pd.Series(data.close)
        tomorrow = close.shift(-1)
        sma = close.rolling(self.p.period).mean()
        return Signals(
            long_entries=(tomorrow > sma).to_numpy() & (close <= sma).to_numpy(),
            long_exits=(tomorrow < sma).to_numpy(),
        )


class GlobalNormalisation(SignalStrategy):
    """Scales by the maximum of the WHOLE series: every signal depends on the future."""

    name = "global_max"

    def signals(self, data):
        scaled = np.asarray(data.close) / np.max(data.close)
        return Signals(
            long_entries=ta.crossed_above(scaled, 0.9),
            long_exits=ta.crossed_below(scaled, 0.85),
        )


class PeekingEvent(Strategy):
    """Reads the next candle's close from the broker's data, which the engine no longer exposes."""

    name = "peeking_event"

    def on_data(self, candle):
        closes = self.broker.data.close
        i = candle.index
        if i + 1 < len(closes) and closes[i + 1] > candle.close * 1.01 and self.get_position_size() == 0:
            self.buy(0.01)
        elif self.get_position_size() > 0 and i % 5 == 0:
            self.close_position()


class LeakyBrokerView:
    """The pre-issue-10 behaviour: the strategy's broker handed out the whole candle series."""

    def __init__(self, broker):
        self.data = broker.data
        self.broker = broker

    def __getattr__(self, name):
        return getattr(self.broker, name)


def test_catches_a_strategy_that_peeks_one_candle_ahead(btc):
    report = check_lookahead(lambda: PeekingSma(), btc)
    assert not report.ok
    assert report.total_changes >= 1
    change = report.changes[0]
    assert change.signal in ("long_entries", "long_exits")
    # the decision that changes is the last candle before the cut: it lost its future
    assert change.index == change.window_end - 1
    assert "lookahead bias" in report.summary()


def test_catches_a_global_normalisation(btc):
    report = check_lookahead(lambda: GlobalNormalisation(), btc)
    assert not report.ok


def test_catches_an_event_strategy_reading_future_candles_if_a_broker_leaked_them(btc, monkeypatch):
    from apps.backtests.engine import simulator

    with pytest.raises(StrategyError):  # the engine's broker has no data to read ...
        run_backtest(btc.slice(0, 100), PeekingEvent(), BacktestConfig())
    monkeypatch.setattr(simulator, "BrokerView", LeakyBrokerView)  # ... a leaky one would be caught
    report = check_lookahead(lambda: PeekingEvent(), btc.slice(0, 800))
    assert not report.ok
    assert report.changes[0].signal == "orders"


@pytest.mark.parametrize("name", [info.name for info in list_strategies()])
def test_every_builtin_passes(name, btc):
    report = check_lookahead(lambda: build_strategy(name), btc)
    assert report.ok, report.summary()
    assert report.windows_checked >= 10


def test_report_round_trips_through_json(btc):
    report = check_lookahead(lambda: PeekingSma(), btc.slice(0, 500), windows=5, max_decisions=5)
    again = LookaheadReport.from_dict(report.to_dict())
    assert again.to_dict() == report.to_dict()
    assert report.to_dict()["ok"] is False


class CheatsThreeTimes(SignalStrategy):
    """Enters on every 4th candle; 3 of those 1,000 entries exist only because tomorrow is known."""

    name = "cheats_three_times"

    def signals(self, data):
        n = len(data.close)
        entries = np.arange(n) % 4 == 0
        for j in (1_000, 2_200, 3_604):
            if j < n:
                entries[j] = j + 1 < n and data.close[j + 1] > 0
        return Signals(long_entries=entries)


def test_catches_a_strategy_that_cheats_on_3_of_1000_decisions():
    data = btc_series(4_000)
    report = check_lookahead(lambda: CheatsThreeTimes(), data)
    assert report.decisions == 1_000
    assert report.decisions_checked == report.decisions and report.complete
    assert report.verdict == "lookahead_detected"
    assert {change.index for change in report.changes} == {1_000, 2_200, 3_604}


def test_the_check_is_bounded_in_time_and_says_what_it_covered():
    class Slow(SignalStrategy):
        name = "slow"

        def signals(self, data):
            time.sleep(0.02)
            return Signals(long_entries=np.arange(len(data.close)) % 3 == 0)

    started = time.monotonic()
    report = check_lookahead(lambda: Slow(), btc_series(3_000), max_seconds=0.5)
    assert time.monotonic() - started < 5
    assert report.ok and not report.complete
    assert 0 < report.decisions_checked < report.decisions
    assert "time limit" in report.summary()
    assert LookaheadReport.from_dict(report.to_dict()).to_dict() == report.to_dict()


PEEKING_USER = """import pandas as pd


class Peek(SignalStrategy):
    def signals(self, data):
        close = pd.Series(data.close)
        sma = close.rolling(10).mean()
        tomorrow = close.shift(-1)
        return Signals(long_entries=(tomorrow > sma).to_numpy(), long_exits=(tomorrow < sma).to_numpy())
"""


def test_sandboxed_user_code_gets_a_verdict_with_the_offending_line():
    from apps.backtests.strategies.sandbox import run_user_lookahead

    report = run_user_lookahead(PEEKING_USER, btc_series(600), {}, max_decisions=50)
    assert report.verdict == "lookahead_detected"
    assert report.line == 8  # tomorrow = close.shift(-1)
    stored = report.to_dict()
    assert stored["verdict"] == "lookahead_detected" and stored["line"] == 8
    assert "line 8" in stored["summary"]


def btc_series(n: int) -> Candles:
    root = Path(__file__).resolve().parents[2]
    data = Path(os.environ.get("SHARED_DATA_DIR") or root.parent / "shared" / "data")
    candles = load_csv(data / "ohlcv" / "binance_BTCUSDT_1h.csv.gz")
    return candles.slice(0, n)


def test_the_check_asks_before_each_cut_whether_to_stop():
    asked = []

    def should_cancel():
        asked.append(1)
        return len(asked) > 2

    report = check_lookahead(
        lambda: build_strategy("sma_crossover", {"fast": 10, "slow": 30}),
        btc_series(600),
        should_cancel=should_cancel,
    )
    assert report.windows_checked == 2 and len(asked) == 3
    assert not report.complete


def test_sandboxed_user_code_stops_when_asked():
    from apps.backtests.engine.errors import BacktestCancelled
    from apps.backtests.strategies.sandbox import run_user_lookahead

    started = time.monotonic()
    with pytest.raises(BacktestCancelled):
        run_user_lookahead(PEEKING_USER, btc_series(600), {}, should_cancel=lambda: True)
    assert time.monotonic() - started < 5
