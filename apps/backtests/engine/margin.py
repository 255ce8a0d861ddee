"""Futures margin arithmetic: liquidation prices, margin ratio and funding schedules.

Model (one-way mode, linear USDT-margined contracts, one symbol):

* Initial margin of a position is ``|size| * entry / leverage``.
* The maintenance margin is ``maintenance_margin_rate * |size| * mark``.
* **Isolated**: the position's own margin (initial margin, minus funding paid)
  backs it. Liquidation when ``margin + unrealized_pnl <= maintenance``:

  - long:  ``p = (entry - margin/size) / (1 - mmr)``
  - short: ``p = (entry + margin/size) / (1 + mmr)``

  With ``margin = size*entry/leverage`` this is the textbook
  ``entry * (1 - 1/L) / (1 - mmr)`` (long) and ``entry * (1 + 1/L) / (1 + mmr)`` (short).
* **Cross**: the whole wallet balance backs the position; the same formulas
  with ``margin`` replaced by the wallet balance.

A liquidation closes the whole position at the liquidation price (also when a
candle gaps through it: the exchange's insurance fund absorbs the gap), pays the
taker fee on that notional, and the wallet is floored at zero.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ConfigError

FUNDING_INTERVAL_MS = 8 * 3_600_000


def liquidation_price(side: int, entry: float, size: float, collateral: float, mmr: float) -> float:
    """Price at which ``collateral + pnl == mmr * notional``; ``side`` +1 long, -1 short.

    ``size`` is the absolute position size; ``collateral`` the isolated margin or, in
    cross mode, the wallet balance. Returns 0.0 for a long that can never be liquidated.
    """
    if size <= 0:
        return 0.0 if side > 0 else math.inf
    per_unit = collateral / size
    if side > 0:
        return max((entry - per_unit) / (1.0 - mmr), 0.0)
    return (entry + per_unit) / (1.0 + mmr)


def margin_ratio(size: float, mark: float, collateral: float, unrealized: float, mmr: float) -> float:
    """Maintenance margin / margin balance (1.0 or more means liquidation); 0.0 when flat."""
    if size == 0:
        return 0.0
    balance = collateral + unrealized
    maintenance = mmr * abs(size) * mark
    if balance <= 0:
        return math.inf
    return maintenance / balance


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
