"""Trend-following signal strategies: moving-average crossovers, MACD, Donchian breakout.

Long entries are the bullish events and long exits the bearish ones; the short
side mirrors them and only trades when the backtest config allows shorts.
"""

from __future__ import annotations

from typing import Any

from apps.backtests.engine import Candles, Param, Signals, SignalStrategy
from apps.backtests.engine.errors import ParamError

from .. import indicators as ta


def _mirrored(entries: Any, exits: Any) -> Signals:
    return Signals(long_entries=entries, long_exits=exits, short_entries=exits, short_exits=entries)


class _Crossover(SignalStrategy):
    """Shared rule for the moving-average crossovers (fast must be shorter than slow)."""

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.p.fast >= self.p.slow:
            raise ParamError({"fast": f"must be less than slow ({self.p.slow})"})

    def averages(self, close: Any) -> tuple[Any, Any]:
        raise NotImplementedError

    def signals(self, data: Candles) -> Signals:
        fast, slow = self.averages(data.close)
        return _mirrored(ta.crossed_above(fast, slow), ta.crossed_below(fast, slow))


class SmaCrossover(_Crossover):
    name = "sma_crossover"
    description = (
        "Long when the fast simple moving average crosses above the slow one; exit on the cross back."
    )
    params = {
        "fast": Param("int", 20, min=2, max=1000, step=1, help="fast SMA period (candles)"),
        "slow": Param("int", 50, min=3, max=5000, step=1, help="slow SMA period (candles)"),
    }

    def averages(self, close: Any) -> tuple[Any, Any]:
        return ta.sma(close, self.p.fast), ta.sma(close, self.p.slow)


class EmaCrossover(_Crossover):
    name = "ema_crossover"
    description = (
        "Long when the fast exponential moving average crosses above the slow one; exit on the cross back."
    )
    params = {
        "fast": Param("int", 12, min=2, max=1000, step=1, help="fast EMA period (candles)"),
        "slow": Param("int", 26, min=3, max=5000, step=1, help="slow EMA period (candles)"),
    }

    def averages(self, close: Any) -> tuple[Any, Any]:
        return ta.ema(close, self.p.fast), ta.ema(close, self.p.slow)


class Macd(SignalStrategy):
    name = "macd"
    description = "Long when the MACD line crosses above its signal line; exit when it crosses below."
    params = {
        "fast": Param("int", 12, min=2, max=500, step=1, help="fast EMA period"),
        "slow": Param("int", 26, min=3, max=1000, step=1, help="slow EMA period"),
        "signal": Param("int", 9, min=2, max=500, step=1, help="signal line EMA period"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.p.fast >= self.p.slow:
            raise ParamError({"fast": f"must be less than slow ({self.p.slow})"})

    def signals(self, data: Candles) -> Signals:
        line, signal_line, _ = ta.macd(data.close, self.p.fast, self.p.slow, self.p.signal)
        return _mirrored(ta.crossed_above(line, signal_line), ta.crossed_below(line, signal_line))


class DonchianBreakout(SignalStrategy):
    name = "donchian_breakout"
    description = (
        "Turtle-style breakout: long when the close breaks above the highest high of the previous "
        "entry_period candles; exit when it breaks below the lowest low of the previous exit_period."
    )
    params = {
        "entry_period": Param("int", 20, min=2, max=1000, step=1, help="breakout channel length"),
        "exit_period": Param("int", 10, min=2, max=1000, step=1, help="exit channel length"),
    }

    def signals(self, data: Candles) -> Signals:
        entry_low, entry_high = ta.donchian_channel(data.high, data.low, self.p.entry_period)
        exit_low, exit_high = ta.donchian_channel(data.high, data.low, self.p.exit_period)
        close = data.close
        return Signals(
            long_entries=close > entry_high,
            long_exits=close < exit_low,
            short_entries=close < entry_low,
            short_exits=close > exit_high,
        )
