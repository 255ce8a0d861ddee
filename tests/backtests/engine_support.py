"""Helpers for the engine tests: tiny candle series and scripted event strategies."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from apps.backtests.engine import Candles, Strategy

MINUTE = 60_000
DAY = 86_400_000
T0 = 1_700_000_000_000 // DAY * DAY  # a UTC midnight


def shared_data_dir() -> Path:
    """Same rule as the project fixture: $SHARED_DATA_DIR or ../shared/data from the repo root."""
    env = os.environ.get("SHARED_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def candles(rows: list[tuple[float, ...]], *, step: int = MINUTE, start: int = T0) -> Candles:
    """Rows of (open, high, low, close[, volume]) to ``Candles``."""
    arr = np.array([r if len(r) == 5 else (*r, 1000.0) for r in rows], dtype=float)
    ts = start + np.arange(len(rows), dtype=np.int64) * step
    return Candles.from_arrays(ts, arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4])


def random_walk(n: int, *, seed: int = 7, step: int = MINUTE, vol: float = 0.002) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, vol / 4, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, vol, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, vol, n)))
    ts = T0 + np.arange(n, dtype=np.int64) * step
    return Candles.from_arrays(ts, open_, high, low, close, rng.uniform(10, 1000, n))


class Script(Strategy):
    """Runs ``actions[i](self)`` on candle i and records the account after each candle."""

    name = "script"

    def __init__(self, actions: dict[int, Callable[[Strategy], object]] | None = None) -> None:
        super().__init__()
        self.actions = actions or {}
        self.seen: list[tuple[float, float, float, float | None]] = []
        self.ids: dict[int, object] = {}
        self.filled: list = []

    def on_fill(self, fill) -> None:
        self.filled.append(fill)

    def on_data(self, candle) -> None:
        action = self.actions.get(candle.index)
        if action is not None:
            self.ids[candle.index] = action(self)
        self.seen.append(
            (
                self.get_equity(),
                self.get_cash(),
                self.get_position_size(),
                self.get_entry_price(),
            )
        )
