"""Perpetual-futures funding: the funding spec and its schedule over the candles.

Margin, maintenance, leverage limits and liquidation prices live in
``engine.tiers``; the broker's liquidation rules are described in docs/engine.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ConfigError

FUNDING_INTERVAL_MS = 8 * 3_600_000


def normalize_funding(spec: Any) -> Any:
    """Canonical funding spec: ``None``, a constant rate per 8 h (float) or ``[[ts_ms, rate], ...]``.

    Accepts a float, a list of pairs, a dict ``{ts_ms: rate}`` or a pandas Series
    indexed by timestamps. A positive rate means longs pay shorts.
    """
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise ConfigError({"funding_rates": "must be a rate or a series of [timestamp_ms, rate]"})
    if isinstance(spec, (int, float)):
        if not math.isfinite(spec) or abs(spec) >= 0.1:
            raise ConfigError({"funding_rates": "a funding rate must be a small fraction (0.0001 is 0.01%)"})
        return float(spec)
    if hasattr(spec, "index") and hasattr(spec, "to_numpy"):  # pandas Series
        index = spec.index
        ts = index.as_unit("ms").asi8 if hasattr(index, "as_unit") else np.asarray(index, dtype=np.int64)
        pairs = list(zip(ts.tolist(), spec.to_numpy(dtype=float).tolist(), strict=True))
    elif isinstance(spec, dict):
        pairs = [(k, v) for k, v in spec.items()]
    elif isinstance(spec, (list, tuple)):
        pairs = list(spec)
    else:
        raise ConfigError({"funding_rates": "must be a rate or a series of [timestamp_ms, rate]"})
    out = []
    for pair in pairs:
        try:
            ts, rate = int(pair[0]), float(pair[1])
        except (TypeError, ValueError, IndexError):
            raise ConfigError({"funding_rates": "each entry must be [timestamp_ms, rate]"}) from None
        if not math.isfinite(rate) or abs(rate) >= 0.1:
            raise ConfigError({"funding_rates": f"funding rate {rate} at {ts} is not a small fraction"})
        out.append([ts, rate])
    out.sort()
    return out


def funding_schedule(spec: Any, timestamps: np.ndarray) -> tuple[list[int], list[float]]:
    """Map funding events onto candle indices: ``(indices, rates)``.

    Each funding time is charged at the open of the first candle whose open time
    is at or after it (several events landing on one candle, e.g. across a data
    gap, are summed). A constant rate is applied every 8 h at 00:00, 08:00, 16:00 UTC.
    """
    if spec is None or len(timestamps) == 0:
        return [], []
    first, last = int(timestamps[0]), int(timestamps[-1])
    if isinstance(spec, float):
        start = -(-first // FUNDING_INTERVAL_MS) * FUNDING_INTERVAL_MS
        times = np.arange(start, last + 1, FUNDING_INTERVAL_MS, dtype=np.int64)
        rates = np.full(len(times), spec)
    else:
        arr = np.asarray(spec, dtype=np.float64).reshape(-1, 2) if spec else np.empty((0, 2))
        times = arr[:, 0].astype(np.int64)
        rates = arr[:, 1]
        keep = (times >= first) & (times <= last)
        times, rates = times[keep], rates[keep]
    idx = np.searchsorted(timestamps, times, side="left")
    keep = idx < len(timestamps)
    idx, rates = idx[keep], rates[keep]
    if len(idx) == 0:
        return [], []
    uniq, inverse = np.unique(idx, return_inverse=True)
    summed = np.zeros(len(uniq))
    np.add.at(summed, inverse, rates)
    return uniq.tolist(), summed.tolist()
