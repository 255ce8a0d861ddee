"""Candle data: a small columnar container and loaders.

The engine works on ``Candles`` (numpy arrays; timestamps are candle open times in
int64 milliseconds UTC). pandas is imported lazily, only when a DataFrame is
actually involved, to keep the engine's import cheap for CLI and Celery calls;
files are read by ``io.load_csv`` (pyarrow, no pandas).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import BacktestError

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ("open", "high", "low", "close", "volume")
# Optional DataFrame columns ``mark_open`` ... ``mark_close``: mark-price candles.
MARK_COLUMNS = ("open", "high", "low", "close")


@dataclass(frozen=True, eq=False)
class Candles:
    """OHLCV columns as float64 arrays plus int64 millisecond open timestamps.

    ``mark`` optionally holds the mark-price candles of the same open times (NaN
    where a mark candle is missing); futures runs use them for liquidation,
    funding and unrealized P&L (see ``with_mark``).
    """

    timestamp: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    mark: Candles | None = None
    # What a read from the candle store asked for and what was stored (a coarser
    # timeframe may be resampled from a finer one); empty for other sources and slices.
    timeframe: str = ""
    source_timeframe: str = ""

    def __post_init__(self) -> None:
        n = len(self.timestamp)
        for name in COLUMNS:
            if len(getattr(self, name)) != n:
                raise BacktestError(f"candle column {name!r} has a different length than timestamp")
        if self.mark is not None and len(self.mark) != n:
            raise BacktestError("mark-price candles must be aligned with the candles")

    def __len__(self) -> int:
        return len(self.timestamp)

    @classmethod
    def from_arrays(
        cls,
        timestamp: Any,
        open: Any,
        high: Any,
        low: Any,
        close: Any,
        volume: Any = None,
    ) -> Candles:
        """Build from array-likes; ``volume`` defaults to zeros."""
        ts = np.ascontiguousarray(timestamp, dtype=np.int64)
        cols = [np.ascontiguousarray(c, dtype=np.float64) for c in (open, high, low, close)]
        vol = np.zeros(len(ts)) if volume is None else np.ascontiguousarray(volume, dtype=np.float64)
        return cls(ts, *cols, vol)

    @classmethod
    def from_columns(
        cls, timestamp: np.ndarray, ohlcv: np.ndarray, *, timeframe: str = "", source_timeframe: str = ""
    ) -> Candles:
        """From int64 ms open times and a float64 ``(n, 5)`` OHLCV array (the candle store's layout)."""
        columns = np.ascontiguousarray(np.asarray(ohlcv, dtype=np.float64).reshape(-1, 5).T)
        return cls(
            np.ascontiguousarray(timestamp, dtype=np.int64),
            *columns,
            timeframe=timeframe,
            source_timeframe=source_timeframe,
        )

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Candles:
        """From a DataFrame with a UTC DatetimeIndex (or a ms ``timestamp`` column) and OHLCV columns."""
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise BacktestError(f"candle data lacks columns: {', '.join(missing)}")
        if "timestamp" in df.columns:
            ts = df["timestamp"].to_numpy(dtype=np.int64)
        else:
            index = df.index
            if not hasattr(index, "tz"):
                raise BacktestError("candle DataFrame needs a DatetimeIndex or a 'timestamp' column")
            if index.tz is None:
                index = index.tz_localize("UTC")
            # as_unit keeps this independent of the index resolution (ns, us, ms).
            ts = index.as_unit("ms").asi8.astype(np.int64)
        candles = cls.from_arrays(
            ts,
            df["open"].to_numpy(dtype=np.float64),
            df["high"].to_numpy(dtype=np.float64),
            df["low"].to_numpy(dtype=np.float64),
            df["close"].to_numpy(dtype=np.float64),
            df["volume"].to_numpy(dtype=np.float64),
        )
        if all(f"mark_{c}" in df.columns for c in MARK_COLUMNS):
            mark = cls.from_arrays(ts, *(df[f"mark_{c}"].to_numpy(dtype=np.float64) for c in MARK_COLUMNS))
            candles = candles.with_mark(mark)
        return candles

    def to_frame(self) -> pd.DataFrame:
        """As a DataFrame with a UTC DatetimeIndex (what the market-data service returns)."""
        import pandas as pd

        index = pd.DatetimeIndex(pd.to_datetime(self.timestamp, unit="ms", utc=True), name="timestamp")
        return pd.DataFrame({name: getattr(self, name) for name in COLUMNS}, index=index)

    def slice(self, start: int, stop: int) -> Candles:
        """Rows ``start:stop`` (views, no copy); mark-price candles follow."""
        mark = None if self.mark is None else self.mark.slice(start, stop)
        return Candles(*(getattr(self, name)[start:stop] for name in ("timestamp", *COLUMNS)), mark=mark)

    def with_mark(self, mark: Candles | None) -> Candles:
        """These candles with mark-price candles aligned on open time (NaN where one is missing)."""
        if mark is None:
            return Candles(*(getattr(self, name) for name in ("timestamp", *COLUMNS)))
        n = len(self)
        pos = np.searchsorted(mark.timestamp, self.timestamp)
        found = pos < len(mark)
        found[found] = mark.timestamp[pos[found]] == self.timestamp[found]
        cols = []
        for name in ("open", "high", "low", "close"):
            col = np.full(n, np.nan)
            col[found] = getattr(mark, name)[pos[found]]
            cols.append(col)
        aligned = Candles(self.timestamp, *cols, np.zeros(n))
        return Candles(*(getattr(self, name) for name in ("timestamp", *COLUMNS)), mark=aligned)

    def between(self, start_ms: int | None, end_ms: int | None) -> Candles:
        """Candles with ``start_ms <= timestamp < end_ms`` (either bound optional)."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.timestamp, start_ms, side="left"))
        hi = len(self) if end_ms is None else int(np.searchsorted(self.timestamp, end_ms, side="left"))
        return self.slice(lo, max(lo, hi))

    def bar_ms(self) -> int:
        """The candle interval: the most common gap between timestamps (robust to missing rows)."""
        if len(self) < 2:
            return 60_000
        diffs = np.diff(self.timestamp[: min(len(self), 10_001)])
        values, counts = np.unique(diffs[diffs > 0], return_counts=True)
        return int(values[np.argmax(counts)]) if len(values) else 60_000

    def validate(self) -> None:
        """Raise ``BacktestError`` for data the engine cannot simulate honestly."""
        if len(self) == 0:
            raise BacktestError("no candles in the selected range")
        if len(self) > 1 and np.any(np.diff(self.timestamp) <= 0):
            raise BacktestError("candle timestamps must be strictly increasing")
        o, h, lo, c = self.open, self.high, self.low, self.close
        # One pass of comparisons; NaN fails every comparison, so it is caught too.
        ok = (lo > 0) & (lo <= o) & (lo <= c) & (h >= o) & (h >= c) & (h < np.inf)
        if not ok.all():
            first = int(np.argmin(ok))
            values = (o[first], h[first], lo[first], c[first])
            if not all(np.isfinite(values)):
                raise BacktestError(f"candle {first} has NaN or infinite prices")
            if lo[first] <= 0:
                raise BacktestError(f"candle {first} has a non-positive price")
            raise BacktestError(f"candle {first} has high/low inconsistent with open/close")


def to_candles(data: Any) -> Candles:
    """Accept ``Candles`` or a pandas DataFrame (duck-typed, so pandas is not imported here)."""
    if isinstance(data, Candles):
        return data
    if hasattr(data, "columns") and hasattr(data, "index"):
        return Candles.from_frame(data)
    raise BacktestError("data must be a Candles object or a pandas DataFrame of OHLCV candles")
