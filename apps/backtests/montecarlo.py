"""Monte Carlo robustness check: resample a run's trades, get confidence intervals.

Each trade is turned into its return on the equity it started from
(``pnl / equity before``), so compounding position sizing is respected. A
simulation reorders the trades (``shuffle``: same trades, other order — shows
how much of the drawdown was luck of the sequence) or draws them with
replacement (``bootstrap``: also varies which trades happen). Pure numpy, no
Django.
"""

from __future__ import annotations

from typing import Any

import numpy as np

PERCENTILES = (5, 50, 95)


def _max_drawdown(paths: np.ndarray) -> np.ndarray:
    """Per row: the worst peak-to-trough fall as a negative fraction (0 when never below a peak)."""
    peaks = np.maximum.accumulate(paths, axis=1)
    return np.min(paths / peaks - 1.0, axis=1)


def _stats(values: np.ndarray, original: float) -> dict[str, float]:
    p5, p50, p95 = np.percentile(values, PERCENTILES)
    return {
        "p5": float(p5),
        "p50": float(p50),
        "p95": float(p95),
        "mean": float(values.mean()),
        "original": original,
    }


def monte_carlo(
    *, pnls: np.ndarray, initial_cash: float, simulations: int = 1000, method: str = "shuffle", seed: int = 0
) -> dict[str, Any]:
    """Confidence intervals (5/50/95th percentiles) of total return and max drawdown."""
    pnls = np.asarray(pnls, dtype=np.float64)
    before = initial_cash + np.concatenate(([0.0], np.cumsum(pnls)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        rets = np.where(before > 0, pnls / before, 0.0)
    rets = np.clip(rets, -1.0, None)  # a trade cannot lose more than the account
    n = len(rets)
    rng = np.random.default_rng(seed)
    step = max(1, (n + 1) // 200)  # the fan chart needs ~200 points, not one per trade
    xs = np.arange(0, n + 1, step)
    if xs[-1] != n:
        xs = np.append(xs, n)
    # Batches keep memory bounded (~16 MB of paths at a time) whatever simulations x trades is.
    batch = max(1, 2_000_000 // (n + 1))
    totals, drawdowns, fan_rows = [], [], []
    for lo in range(0, simulations, batch):
        size = min(batch, simulations - lo)
        if method == "bootstrap":
            sample = rets[rng.integers(0, n, size=(size, n))]
        else:
            sample = rets[np.argsort(rng.random((size, n)), axis=1)]
        paths = np.concatenate((np.ones((size, 1)), np.cumprod(1.0 + sample, axis=1)), axis=1)
        totals.append(paths[:, -1] - 1.0)
        drawdowns.append(_max_drawdown(paths))
        fan_rows.append(paths[:, xs])
    totals, drawdowns = np.concatenate(totals), np.concatenate(drawdowns)
    fan = np.percentile(np.concatenate(fan_rows), PERCENTILES, axis=0)
    original_path = np.concatenate(([1.0], np.cumprod(1.0 + rets)))
    return {
        "simulations": simulations,
        "method": method,
        "seed": seed,
        "trades": n,
        "confidence": [0.05, 0.5, 0.95],
        "total_return": _stats(totals, float(original_path[-1] - 1.0)),
        "max_drawdown": _stats(drawdowns, float(_max_drawdown(original_path[None, :])[0])),
        "probability_of_loss": float(np.mean(totals < 0)),
        "paths": {
            "x": xs.tolist(),
            "p5": (fan[0] - 1.0).tolist(),
            "p50": (fan[1] - 1.0).tolist(),
            "p95": (fan[2] - 1.0).tolist(),
        },
    }
