"""Benchmark of the strategy side: grid and DCA on a year of 1m candles, sandbox start-up,
lookahead check. Prints its figures; timings on a shared machine are noisy (medians of 3).

    .venv/bin/python benchmarks/strategies.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

_t0 = time.perf_counter()
import numpy as np

from apps.backtests.engine import BacktestConfig, Candles, run_backtest
from apps.backtests.strategies.registry import build_strategy

IMPORT_SECONDS = time.perf_counter() - _t0
N = 525_600  # one year of one-minute candles


def year_of_minutes(seed: int = 1) -> Candles:
    """A geometric random walk with realistic 1m BTC volatility (no real file is a year long)."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 0.0008, N)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0004, N)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0004, N)))
    ts = np.arange(N, dtype=np.int64) * 60_000 + 1_672_531_200_000
    return Candles.from_arrays(ts, open_, high, low, close, rng.uniform(1, 10, N))


def median_time(fn, repeat: int = 3) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def main() -> None:
    candles = year_of_minutes()
    lo, hi = float(candles.low.min()), float(candles.high.max())
    config = BacktestConfig(fee=0.001)
    print(f"imports (numpy, engine, strategies): {IMPORT_SECONDS:.2f} s")
    print(f"candles: {N:,} one-minute candles, price {lo:,.0f} .. {hi:,.0f}")
    cases = [
        ("grid, 10 levels over the whole price range", "grid", {"levels": 10, "lower": lo, "upper": hi}),
        ("grid, 10 levels, automatic +-10% range", "grid", {"levels": 10}),
        ("dca, defaults", "dca", {}),
        (
            "dca, 1% take profit, 8 safety orders",
            "dca",
            {"take_profit": 0.01, "max_safety_orders": 8, "safety_order": 0.05, "volume_scale": 1.2},
        ),
    ]
    for label, name, params in cases:
        seconds, result = median_time(
            lambda n=name, p=params: run_backtest(candles, build_strategy(n, p), config)
        )
        fills = result.info.get("fills", "?")
        print(
            f"{label}: {seconds:.3f} s (target < 2 s), {fills} fills, {result.metrics['total_trades']} trades"
        )

    from apps.backtests.strategies.lookahead import check_lookahead

    seconds, report = median_time(
        lambda: check_lookahead(lambda: build_strategy("sma_crossover"), candles), 1
    )
    print(
        f"lookahead check, sma_crossover on {N:,} candles: {seconds:.2f} s, {report.windows_checked} windows"
    )

    from apps.backtests.strategies.sandbox import run_user_backtest

    source = (
        "class Sma(SignalStrategy):\n"
        "    def signals(self, data):\n"
        "        fast = indicators.sma(data.close, 20)\n"
        "        slow = indicators.sma(data.close, 50)\n"
        "        return Signals(long_entries=indicators.crossed_above(fast, slow),\n"
        "                       long_exits=indicators.crossed_below(fast, slow))\n"
    )
    small = candles.slice(0, 1000)
    seconds, _ = median_time(lambda: run_user_backtest(source, small, {}, config))
    print(f"sandboxed user strategy, 1,000 candles (process start-up dominated): {seconds:.2f} s")
    seconds, _ = median_time(lambda: run_user_backtest(source, candles, {}, config))
    print(f"sandboxed user strategy, {N:,} candles: {seconds:.2f} s")


if __name__ == "__main__":
    main()
