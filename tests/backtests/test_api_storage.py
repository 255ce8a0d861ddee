"""Pure pieces behind the results API: compact curve storage, downsampling, Monte Carlo."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.backtests import storage
from apps.backtests.montecarlo import monte_carlo


def test_pack_round_trips_exactly_and_compresses_regular_timestamps():
    n = 525_600
    ts = 1_546_300_800_000 + np.arange(n, dtype=np.int64) * 60_000
    equity = 10_000 * np.cumprod(1 + np.random.default_rng(1).normal(0, 1e-4, n))
    blob = storage.pack({"timestamp": ts, "equity": equity})
    back = storage.unpack(blob)
    np.testing.assert_array_equal(back["timestamp"], ts)
    np.testing.assert_array_equal(back["equity"], equity)
    assert len(blob) < 0.6 * (ts.nbytes + equity.nbytes)  # the timestamps cost almost nothing


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=3000),
    points=st.integers(4, 500),
)
def test_downsampling_keeps_ends_and_extremes(values, points):
    arr = np.array(values)
    keep = storage.downsample_indices(arr, points)
    assert len(keep) <= max(points, 4) or len(arr) <= points
    assert np.all(np.diff(keep) > 0)
    assert keep[0] == 0 and keep[-1] == len(arr) - 1
    assert arr[keep].min() == arr.min() and arr[keep].max() == arr.max()


def test_monte_carlo_is_seeded_and_shuffle_keeps_the_total():
    pnls = np.array([100.0, -50.0, 80.0, -120.0, 30.0, 60.0, -20.0, 10.0])
    a = monte_carlo(pnls=pnls, initial_cash=1000.0, simulations=300, seed=5)
    b = monte_carlo(pnls=pnls, initial_cash=1000.0, simulations=300, seed=5)
    assert a == b
    total = a["total_return"]
    assert total["p5"] == pytest.approx(total["p95"]) == pytest.approx(total["original"])
    assert total["original"] == pytest.approx(pnls.sum() / 1000.0)
    dd = a["max_drawdown"]
    assert dd["p5"] <= dd["original"] <= 0 and dd["p5"] <= dd["p50"] <= dd["p95"] <= 0
    boot = monte_carlo(pnls=pnls, initial_cash=1000.0, simulations=2000, method="bootstrap", seed=5)
    assert boot["total_return"]["p5"] < boot["total_return"]["p50"] < boot["total_return"]["p95"]
    assert 0 < boot["probability_of_loss"] < 1
    assert boot["paths"]["x"][0] == 0 and boot["paths"]["x"][-1] == len(pnls)
