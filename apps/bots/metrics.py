"""The bot loop's metrics: ticks by result, tick duration and tick lag."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram

from apps.core.observability import context
from apps.core.observability.metrics import PREFIX
from apps.marketdata import live
from apps.marketdata.timeframes import timeframe_ms

LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0)

TICKS = Counter(
    f"{PREFIX}_bot_ticks",
    "Bot ticks by result: ok, failed (backing off or put in error) or skipped (another "
    "worker had claimed the candle).",
    ["result"],
)
TICK_DURATION = Histogram(
    f"{PREFIX}_bot_tick_duration_seconds",
    "Run time of a bot tick that ran (ok or failed).",
    ["result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
TICK_LAG = Histogram(
    f"{PREFIX}_bot_tick_lag_seconds",
    "From the moment a bot's candle was due to the end of its tick: since the candle closed "
    "(live candles), or since the loop sent the tick (the offline replay feed's candles).",
    ["source"],
    buckets=LAG_BUCKETS,
)


def tick_observed(*, result: str, started: float, bot: Any = None, candle_ms: int | None = None) -> None:
    """Count one tick of ``bot`` for the candle opening at ``candle_ms``; ``started`` is the
    tick's ``time.perf_counter()`` at its start."""
    TICKS.labels(result).inc()
    if result == "skipped":
        return
    TICK_DURATION.labels(result).observe(time.perf_counter() - started)
    if result != "ok" or bot is None or candle_ms is None:
        return
    if live.candles_are_live(bot.exchange):
        closed_ms = candle_ms + timeframe_ms(bot.timeframe)
        TICK_LAG.labels("live").observe(max(0.0, time.time() - closed_ms / 1000))
    else:
        sent_at = context.current().task_sent_at
        if sent_at is not None:
            TICK_LAG.labels("replay").observe(max(0.0, time.time() - sent_at))
