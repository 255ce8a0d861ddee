"""Technical indicators shared by every built-in strategy (and offered to user code).

All functions take 1-D float arrays (numpy arrays or pandas Series) and return
float64 numpy arrays of the same length. Values that need more history than is
available are NaN, so a comparison against them is False and no signal fires
during the warm-up.

Every value at index ``i`` depends only on inputs ``0..i``: that is what keeps
the built-ins free of lookahead bias, and ``lookahead.check_lookahead`` proves it.
The recursive indicators (EMA, Wilder smoothing) are computed by pandas' ewm,
which is sequential and therefore prefix-stable; the rolling ones by pandas'
rolling windows, except the SMA: numpy prefix sums, so that the most common
strategies run without importing pandas (a large part of the CLI's start-up).
pandas is imported on the first call that needs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from apps.backtests.engine.shared import current_scope, shared

if TYPE_CHECKING:
    import pandas as pd

    ArrayLike = np.ndarray | pd.Series | list


__all__ = [
    "atr",
    "bollinger_bands",
    "crossed_above",
    "crossed_below",
    "donchian_channel",
    "ema",
    "macd",
    "rolling_max",
    "rolling_min",
    "rolling_std",
    "rsi",
    "sma",
    "true_range",
    "wilder",
]


F = TypeVar("F", bound=Callable)


def _shared(fn: F) -> F:
    """Compute once per distinct input in a sweep's ``engine.shared`` scope (every call outside one).

    A cached result is the same read-only array for every run of the sweep, so each
    run sees exactly the values it would have computed alone.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if current_scope() is None:
            return fn(*args, **kwargs)
        inputs = (*args, *sorted(kwargs.items()))
        return shared(f"indicators.{fn.__name__}", inputs, lambda: fn(*args, **kwargs))

    return wrapper  # type: ignore[return-value]


def _series(values: ArrayLike) -> pd.Series:
    import pandas as pd

    return pd.Series(np.asarray(values, dtype=np.float64), copy=False)


def _check_period(period: int) -> int:
    period = int(period)
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    return period


@_shared
def sma(values: ArrayLike, period: int) -> np.ndarray:
    """Simple moving average over ``period`` values (NaN while the window holds a NaN or inf)."""
    period = _check_period(period)
    x = np.asarray(values, dtype=np.float64)
    out = _rolling_sum(x, period) / period
    # A window of one repeated value averages to exactly that value (as in pandas),
    # so flat prices never produce a spurious crossover from rounding.
    if len(x) >= period:
        index = np.arange(len(x))
        starts = np.maximum.accumulate(np.where(np.concatenate(([True], x[1:] != x[:-1])), index, 0))
        flat = (index - starts + 1 >= period) & np.isfinite(x)
        out[flat] = x[flat]
    return out


def _rolling_sum(x: np.ndarray, period: int) -> np.ndarray:
    """Sums of the last ``period`` values, NaN for the first ``period - 1``.

    Compensated prefix sums: ``np.cumsum`` adds left to right, so the rounding
    error of every addition is recovered exactly (Knuth's TwoSum) and summed
    separately; each window sum is then within a few ulps, as pandas' Kahan-summed
    rolling mean, and value ``i`` depends on values ``0..i`` only.
    """
    n = len(x)
    out = np.full(n, np.nan)
    if n < period:
        return out
    finite = np.isfinite(x)
    clean = finite.all()
    v = x if clean else np.where(finite, x, 0.0)
    total = np.cumsum(v)
    before = np.concatenate(([0.0], total[:-1]))
    added = total - before
    error = np.cumsum((before - (total - added)) + (v - added))
    total = np.concatenate(([0.0], total))
    error = np.concatenate(([0.0], error))
    out[period - 1 :] = (total[period:] - total[:-period]) + (error[period:] - error[:-period])
    if not clean:  # a window holding a NaN or an infinity is NaN (as in pandas)
        bad = np.concatenate(([0], np.cumsum(~finite)))
        out[period - 1 :][(bad[period:] - bad[:-period]) > 0] = np.nan
    return out


def _seeded_ewm(values: ArrayLike, alpha: float, period: int) -> np.ndarray:
    """Recursive average ``y[i] = alpha * x[i] + (1 - alpha) * y[i-1]`` seeded with
    the simple mean of the first ``period`` values (the TA-Lib / Wilder convention).

    Leading NaNs are skipped; the result is NaN until the seed exists.
    """
    x = np.asarray(values, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(x))
    if valid.size < period:
        return out
    seed_end = valid[0] + period - 1
    tail = x[seed_end:].copy()
    tail[0] = x[valid[0] : seed_end + 1].mean()
    import pandas as pd

    out[seed_end:] = pd.Series(tail, copy=False).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


@_shared
def ema(values: ArrayLike, period: int) -> np.ndarray:
    """Exponential moving average, alpha = 2 / (period + 1), seeded with the SMA of
    the first ``period`` values (NaN before that)."""
    period = _check_period(period)
    return _seeded_ewm(values, 2.0 / (period + 1), period)


def wilder(values: ArrayLike, period: int) -> np.ndarray:
    """Wilder's smoothing (RSI, ATR): an EMA with alpha = 1 / period, SMA-seeded."""
    period = _check_period(period)
    return _seeded_ewm(values, 1.0 / period, period)


@_shared
def rsi(close: ArrayLike, period: int = 14) -> np.ndarray:
    """Relative Strength Index (Wilder), 0..100; NaN for the first ``period`` values."""
    period = _check_period(period)
    delta = np.diff(np.asarray(close, dtype=np.float64), prepend=np.nan)
    gain = wilder(np.where(delta > 0.0, delta, np.where(np.isnan(delta), np.nan, 0.0)), period)
    loss = wilder(np.where(delta < 0.0, -delta, np.where(np.isnan(delta), np.nan, 0.0)), period)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + gain / loss)
    # No movement at all in the window (0 / 0): neutral. Only gains: 100 (via inf).
    out[(gain == 0.0) & (loss == 0.0)] = 50.0
    return out


@_shared
def rolling_std(values: ArrayLike, period: int, ddof: int = 0) -> np.ndarray:
    """Rolling standard deviation (population by default, as Bollinger defined it)."""
    period = _check_period(period)
    return _series(values).rolling(period, min_periods=period).std(ddof=ddof).to_numpy()


@_shared
def rolling_max(values: ArrayLike, period: int) -> np.ndarray:
    """Highest value of the last ``period`` values, the current one included."""
    period = _check_period(period)
    return _series(values).rolling(period, min_periods=period).max().to_numpy()


@_shared
def rolling_min(values: ArrayLike, period: int) -> np.ndarray:
    """Lowest value of the last ``period`` values, the current one included."""
    period = _check_period(period)
    return _series(values).rolling(period, min_periods=period).min().to_numpy()


@_shared
def bollinger_bands(
    close: ArrayLike, period: int = 20, num_std: float = 2.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bollinger Bands: (lower, middle, upper) with a population standard deviation."""
    middle = sma(close, period)
    width = num_std * rolling_std(close, period, ddof=0)
    return middle - width, middle, middle + width


@_shared
def macd(
    close: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MACD: (macd line, signal line, histogram)."""
    line = ema(close, fast) - ema(close, slow)
    # The signal EMA starts once the MACD line exists, so its warm-up begins there.
    signal_line = np.full_like(line, np.nan)
    valid = np.flatnonzero(~np.isnan(line))
    if valid.size:
        first = valid[0]
        # A fresh slice each call: nothing to share, so skip the sweep cache.
        signal_line[first:] = ema.__wrapped__(line[first:], signal)
    return line, signal_line, line - signal_line


@_shared
def donchian_channel(high: ArrayLike, low: ArrayLike, period: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Donchian channel of the PREVIOUS ``period`` candles: (lower, upper).

    The current candle is excluded, so ``close > upper`` means a breakout above
    the range of the candles before it.
    """
    period = _check_period(period)
    upper = _series(high).rolling(period, min_periods=period).max().shift(1).to_numpy()
    lower = _series(low).rolling(period, min_periods=period).min().shift(1).to_numpy()
    return lower, upper


@_shared
def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> np.ndarray:
    """True range: max(high - low, |high - prev close|, |low - prev close|)."""
    h = np.asarray(high, dtype=np.float64)
    lo = np.asarray(low, dtype=np.float64)
    c = np.asarray(close, dtype=np.float64)
    prev = np.concatenate(([np.nan], c[:-1]))
    hl = h - lo
    with np.errstate(invalid="ignore"):
        tr = np.fmax(hl, np.fmax(np.abs(h - prev), np.abs(lo - prev)))
    return tr


@_shared
def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, period: int = 14) -> np.ndarray:
    """Average true range with Wilder's smoothing."""
    period = _check_period(period)
    return wilder(true_range(high, low, close), period)


def crossed_above(a: ArrayLike, b: ArrayLike | float) -> np.ndarray:
    """True where ``a`` moves from at-or-below ``b`` to above it on this value."""
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        out[1:] = (a[1:] > b[1:]) & (a[:-1] <= b[:-1])
    return out


def crossed_below(a: ArrayLike, b: ArrayLike | float) -> np.ndarray:
    """True where ``a`` moves from at-or-above ``b`` to below it on this value."""
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        out[1:] = (a[1:] < b[1:]) & (a[:-1] >= b[:-1])
    return out
