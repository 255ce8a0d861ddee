"""Scalping: short trend-aligned pullback trades with a tight bracket."""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.backtests.engine import Candles, Param, Signals, SignalStrategy
from apps.backtests.engine.errors import ParamError

from .. import indicators as ta


class Scalping(SignalStrategy):
    name = "scalping"
    description = (
        "Trades pullbacks in the direction of a short-term EMA trend: long when the fast EMA is above "
        "the slow one and a fast RSI climbs back above rsi_entry; exits on RSI above rsi_exit, a trend "
        "flip, or the tight stop-loss / take-profit."
    )
    params = {
        "fast": Param("int", 9, min=2, max=200, step=1, help="fast EMA period (trend filter)"),
        "slow": Param("int", 21, min=3, max=500, step=1, help="slow EMA period (trend filter)"),
        "rsi_period": Param("int", 7, min=2, max=100, step=1, help="RSI period"),
        "rsi_entry": Param("float", 35.0, min=1.0, max=99.0, help="long when RSI crosses above this"),
        "rsi_exit": Param("float", 70.0, min=1.0, max=99.0, help="exit a long when RSI rises above this"),
        "stop_loss": Param("float", 0.004, min=0.0005, max=0.2, help="stop-loss distance (fraction)"),
        "take_profit": Param("float", 0.006, min=0.0005, max=0.5, help="take-profit distance (fraction)"),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        errors = {}
        if self.p.fast >= self.p.slow:
            errors["fast"] = f"must be less than slow ({self.p.slow})"
        if self.p.rsi_entry >= self.p.rsi_exit:
            errors["rsi_entry"] = f"must be less than rsi_exit ({self.p.rsi_exit})"
        if errors:
            raise ParamError(errors)

    def signals(self, data: Candles) -> Signals:
        fast = ta.ema(data.close, self.p.fast)
        slow = ta.ema(data.close, self.p.slow)
        value = ta.rsi(data.close, self.p.rsi_period)
        with np.errstate(invalid="ignore"):
            up = fast > slow
            down = fast < slow
            mirror_entry = 100.0 - self.p.rsi_entry
            mirror_exit = 100.0 - self.p.rsi_exit
            long_entries = up & ta.crossed_above(value, self.p.rsi_entry)
            long_exits = (value > self.p.rsi_exit) | ta.crossed_below(fast, slow)
            short_entries = down & ta.crossed_below(value, mirror_entry)
            short_exits = (value < mirror_exit) | ta.crossed_above(fast, slow)
        return Signals(
            long_entries=long_entries,
            long_exits=long_exits,
            short_entries=short_entries,
            short_exits=short_exits,
            stop_loss=self.p.stop_loss,
            take_profit=self.p.take_profit,
        )
