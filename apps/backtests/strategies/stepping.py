"""One live step of a strategy object: what a bot's tick asks of a strategy, candle by candle.

A backtest runs a strategy over a whole series; a bot (and its replay) asks it
one closed candle at a time. The two asks are written once, here, and used by
the bots' tick for built-ins and by the sandbox process for user code
(``sandbox/worker.py``, "step" mode), so both kinds of strategy are stepped by
the same rules. Pure (engine only).

* a ``SignalStrategy`` acts on the last closed candle: ``signal_flags`` computes
  its signals over the window and keeps what the last candle says;
* an event ``Strategy`` gets ``initialize`` on its first step, then, on later
  steps, ``on_fill`` for each of its orders that filled since the previous step
  (while its candle is still the previous one, as in the backtest), then
  ``on_data`` with the closed candle (``event_step``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.backtests.engine.broker import BrokerView
from apps.backtests.engine.candles import Candles
from apps.backtests.engine.orders import OrderInfo
from apps.backtests.engine.strategy import Candle, Signals

SIGNAL_NAMES = ("long_entries", "long_exits", "short_entries", "short_exits")


def signal_flags(strategy: Any, data: Candles) -> dict[str, Any]:
    """What ``strategy.signals(data)`` says about the last candle of ``data``.

    ``{"signals": [names true on the last candle], "stop_loss": f|None, "take_profit": f|None}``;
    raises ``TypeError`` when the strategy does not return ``Signals``.
    """
    signals = strategy.signals(data)
    if not isinstance(signals, Signals):
        raise TypeError(f"signals() must return Signals, not {type(signals).__name__}")

    def last(values: Any) -> bool:
        return values is not None and bool(np.asarray(values)[-1])

    return {
        "signals": [name for name in SIGNAL_NAMES if last(getattr(signals, name))],
        "stop_loss": _fraction(signals.stop_loss),
        "take_profit": _fraction(signals.take_profit),
    }


def _fraction(value: Any) -> float | None:
    return None if value is None else float(value)


def set_candle(candle: Candle, data: Candles, i: int, index: int) -> None:
    """Point ``candle`` at row ``i`` of ``data``; ``index`` is what the strategy sees as its index."""
    candle.index = index
    candle.timestamp = int(data.timestamp[i])
    candle.open, candle.high, candle.low = float(data.open[i]), float(data.high[i]), float(data.low[i])
    candle.close, candle.volume = float(data.close[i]), float(data.volume[i])


def event_step(
    strategy: Any,
    data: Candles,
    broker: Any,
    *,
    index: int,
    fresh: bool,
    fills: list[OrderInfo] = (),  # type: ignore[assignment]
    candle: Candle | None = None,
) -> list[str]:
    """Step an event strategy on the last candle of ``data`` (its window); returns what it was told.

    ``fresh``: its first step (``initialize`` runs, there are no fills to report).
    ``index`` is the candle's index as the strategy counts them (the window slides).
    ``candle``: the object to reuse, for a caller stepping one strategy object over many
    candles (a replay), as the backtest reuses one.
    """
    strategy.broker = BrokerView(broker)
    candle = candle or Candle()
    strategy.candle = candle
    last = len(data) - 1
    told: list[str] = []
    if fresh:
        set_candle(candle, data, last, index)
        strategy.initialize()
        told.append("initialize")
    elif fills:
        hook = getattr(strategy, "on_fill", None)
        if hook is not None:
            set_candle(candle, data, max(0, last - 1), index - 1)
            for info in fills:
                hook(info)
            told.append(f"on_fill x{len(fills)}")
    set_candle(candle, data, last, index)
    strategy.on_data(candle)
    told.append("on_data")
    return told
