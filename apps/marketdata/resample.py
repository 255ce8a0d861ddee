"""Resampling stored candles into a coarser timeframe (pure numpy)."""

from __future__ import annotations

import numpy as np

from apps.marketdata.timeframes import bucket_start


def resample_arrays(ts: np.ndarray, ohlcv: np.ndarray, timeframe: str) -> tuple[np.ndarray, np.ndarray]:
    """Aggregate sorted candles into ``timeframe`` buckets (first/max/min/last/sum).

    Buckets with no source candle are absent, not filled: a hole stays a hole
    and shows up in the gap report.
    """
    if len(ts) == 0:
        return ts, ohlcv
    buckets = bucket_start(ts, timeframe)
    starts = np.flatnonzero(np.r_[True, buckets[1:] != buckets[:-1]])
    ends = np.r_[starts[1:], len(ts)] - 1
    out = np.empty((len(starts), 5), dtype=np.float64)
    out[:, 0] = ohlcv[starts, 0]
    out[:, 1] = np.maximum.reduceat(ohlcv[:, 1], starts)
    out[:, 2] = np.minimum.reduceat(ohlcv[:, 2], starts)
    out[:, 3] = ohlcv[ends, 3]
    out[:, 4] = np.add.reduceat(ohlcv[:, 4], starts)
    return buckets[starts].astype(np.int64), out
