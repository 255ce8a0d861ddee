"""Mean-reversion signal strategies: RSI and Bollinger Bands."""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.backtests.engine import Candles, Param, Signals, SignalStrategy
from apps.backtests.engine.errors import ParamError

from .. import indicators as ta


class RsiMeanReversion(SignalStrategy):
    name = "rsi_mean_reversion"
    description = "Long while RSI is below the oversold level; exit once it rises above the overbought level."
    params = {
        "period": Param("int", 14, min=2, max=500, step=1, help="RSI period"),
        "oversold": Param("float", 30.0, min=1.0, max=99.0, help="enter long below this RSI"),
        "overbought": Param("float", 70.0, min=1.0, max=99.0, help="exit long above this RSI"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        if self.p.oversold >= self.p.overbought:
            raise ParamError({"oversold": f"must be less than overbought ({self.p.overbought})"})

    def signals(self, data: Candles) -> Signals:
        value = ta.rsi(data.close, self.p.period)
        with np.errstate(invalid="ignore"):
            low = value < self.p.oversold
            high = value > self.p.overbought
        return Signals(long_entries=low, long_exits=high, short_entries=high, short_exits=low)


class BollingerMeanReversion(SignalStrategy):
    name = "bollinger_mean_reversion"
    description = (
        "Long when the close falls below the lower Bollinger Band; exit when it gets back to the "
        "middle band (or the upper band)."
    )
    params = {
        "period": Param("int", 20, min=2, max=1000, step=1, help="moving average period"),
        "num_std": Param("float", 2.0, min=0.1, max=10.0, help="band width in standard deviations"),
        "exit_at": Param("choice", "middle", choices=("middle", "upper"), help="band that closes a long"),
    }

    def signals(self, data: Candles) -> Signals:
        lower, middle, upper = ta.bollinger_bands(data.close, self.p.period, self.p.num_std)
        close = np.asarray(data.close, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            long_entries = close < lower
            short_entries = close > upper
            if self.p.exit_at == "middle":
                long_exits = close > middle
                short_exits = close < middle
            else:
                long_exits = close > upper
                short_exits = close < lower
        return Signals(
            long_entries=long_entries,
            long_exits=long_exits,
            short_entries=short_entries,
            short_exits=short_exits,
        )
