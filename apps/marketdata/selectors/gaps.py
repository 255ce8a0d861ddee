"""Gap reports: which candles are missing between the first and last stored one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise

import numpy as np

from apps.marketdata.selectors.candles import candles
from apps.marketdata.timeframes import MONTH, ms_to_datetime, timeframe_ms


@dataclass(frozen=True)
class Gap:
    after: datetime  # the last candle before the hole
    start: datetime  # the first missing open time
    end: datetime  # the last missing open time
    missing: int


@dataclass(frozen=True)
class GapReport:
    exchange: str
    symbol: str
    timeframe: str
    first: datetime | None
    last: datetime | None
    present: int
    expected: int
    missing: int
    gaps: list[Gap] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "first": self.first.isoformat() if self.first else None,
            "last": self.last.isoformat() if self.last else None,
            "present": self.present,
            "expected": self.expected,
            "missing": self.missing,
            "gaps": [
                {
                    "after": g.after.isoformat(),
                    "start": g.start.isoformat(),
                    "end": g.end.isoformat(),
                    "missing": g.missing,
                }
                for g in self.gaps
            ],
        }


def _months_between(a_ms: int, b_ms: int) -> int:
    a = np.datetime64(int(a_ms), "ms").astype("datetime64[M]")
    b = np.datetime64(int(b_ms), "ms").astype("datetime64[M]")
    return int((b - a).astype(int))


def gap_report(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    start: datetime | None = None,
    end: datetime | None = None,
) -> GapReport:
    """Missing candles between the first and last candle in range (resampled timeframes included).

    Holes at the edges of ``start``/``end`` are not counted: the report covers
    what is stored, from its first to its last candle.
    """
    ts = candles(exchange=exchange, symbol=symbol, timeframe=timeframe, start=start, end=end).timestamp
    if len(ts) == 0:
        return GapReport(exchange, symbol, timeframe, None, None, 0, 0, 0, [])
    gaps: list[Gap] = []
    if timeframe == MONTH:
        steps = np.array([_months_between(a, b) for a, b in pairwise(ts)], dtype=np.int64)
        expected = _months_between(ts[0], ts[-1]) + 1
        for i in np.flatnonzero(steps > 1):
            months = np.datetime64(int(ts[i]), "ms").astype("datetime64[M]")
            first_missing = (months + 1).astype("datetime64[ms]").astype(np.int64)
            last_missing = (months + int(steps[i]) - 1).astype("datetime64[ms]").astype(np.int64)
            gaps.append(
                Gap(
                    ms_to_datetime(ts[i]),
                    ms_to_datetime(first_missing),
                    ms_to_datetime(last_missing),
                    int(steps[i]) - 1,
                )
            )
    else:
        step = timeframe_ms(timeframe)
        diffs = np.diff(ts) // step
        expected = int((ts[-1] - ts[0]) // step) + 1
        for i in np.flatnonzero(diffs > 1):
            missing = int(diffs[i]) - 1
            gaps.append(
                Gap(
                    ms_to_datetime(ts[i]),
                    ms_to_datetime(ts[i] + step),
                    ms_to_datetime(ts[i + 1] - step),
                    missing,
                )
            )
    missing_total = sum(g.missing for g in gaps)
    return GapReport(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        first=ms_to_datetime(ts[0]),
        last=ms_to_datetime(ts[-1]),
        present=len(ts),
        expected=expected,
        missing=missing_total,
        gaps=gaps,
    )
