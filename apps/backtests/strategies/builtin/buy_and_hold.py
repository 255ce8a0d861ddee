"""Buy and hold: the benchmark every other strategy has to beat."""

from __future__ import annotations

import numpy as np

from apps.backtests.engine import Candles, Signals, SignalStrategy


class BuyAndHold(SignalStrategy):
    name = "buy_and_hold"
    description = "Buy on the first candle (filled at the next open) and hold to the end."
    params = {}

    def signals(self, data: Candles) -> Signals:
        entries = np.zeros(len(data.close), dtype=bool)
        entries[:1] = True
        return Signals(long_entries=entries, long_exits=np.zeros_like(entries))
