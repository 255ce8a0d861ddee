"""Indicators: hand-computed values on tiny series, and no dependence on the future."""

from __future__ import annotations

import math

import numpy as np
import pytest

from apps.backtests.strategies import indicators as ta

nan = math.nan


def assert_series(actual, expected):
    np.testing.assert_allclose(
        np.asarray(actual, dtype=float),
        np.asarray(expected, dtype=float),
        rtol=1e-12,
        atol=1e-12,
    )


def test_sma_averages_the_last_period_values():
    assert_series(ta.sma([1, 2, 3, 4, 5], 3), [nan, nan, 2, 3, 4])


def test_ema_is_seeded_with_the_sma_then_recursive():
    # alpha = 2 / (3 + 1) = 0.5; seed = (2 + 4 + 6) / 3 = 4; then 0.5*8 + 0.5*4 = 6; 0.5*4 + 0.5*6 = 5
    assert_series(ta.ema([2, 4, 6, 8, 4], 3), [nan, nan, 4, 6, 5])


def test_rsi_uses_wilder_smoothing():
    # deltas 1, 1, -1, 2; period 2: avg gain/loss seeded (1, 0) -> RSI 100;
    # then gain 0.5*0 + 0.5*1 = 0.5, loss 0.5*1 + 0 = 0.5 -> 50;
    # then gain 0.5*2 + 0.5*0.5 = 1.25, loss 0.25 -> rs 5 -> 100 - 100/6
    assert_series(ta.rsi([10, 11, 12, 11, 13], 2), [nan, nan, 100, 50, 100 - 100 / 6])


def test_rsi_of_a_flat_series_is_neutral():
    assert_series(ta.rsi([5.0] * 6, 3)[3:], [50, 50, 50])


def test_bollinger_bands_use_population_std():
    lower, middle, upper = ta.bollinger_bands([1, 2, 3], 3, 2.0)
    width = 2 * math.sqrt(2 / 3)
    assert_series(middle, [nan, nan, 2])
    assert_series(lower, [nan, nan, 2 - width])
    assert_series(upper, [nan, nan, 2 + width])


def test_macd_is_the_difference_of_emas_with_an_ema_signal():
    close = np.linspace(100, 130, 60) + np.sin(np.arange(60))
    line, signal, hist = ta.macd(close, 5, 10, 4)
    expected_line = ta.ema(close, 5) - ta.ema(close, 10)
    assert_series(line, expected_line)
    first = 9  # slow EMA exists from index 9
    assert_series(signal[first:], ta.ema(expected_line[first:], 4))
    assert np.isnan(signal[: first + 3]).all()
    assert_series(hist, expected_line - signal)


def test_donchian_channel_excludes_the_current_candle():
    lower, upper = ta.donchian_channel([1, 3, 2, 5, 4], [0, 1, 1, 2, 3], 2)
    assert_series(upper, [nan, nan, 3, 3, 5])
    assert_series(lower, [nan, nan, 0, 1, 1])


def test_true_range_and_atr():
    high, low, close = [10, 12, 11], [8, 9, 7], [9, 11, 8]
    assert_series(ta.true_range(high, low, close), [2, 3, 4])
    # period 2: seed mean(2, 3) = 2.5, then 0.5*4 + 0.5*2.5 = 3.25
    assert_series(ta.atr(high, low, close, 2), [nan, 2.5, 3.25])


def test_crossings():
    a = [1, 2, 3, 2, 1]
    assert ta.crossed_above(a, 2).tolist() == [False, False, True, False, False]
    assert ta.crossed_below(a, 2).tolist() == [False, False, False, False, True]
    # touching the level is not a cross; NaN never crosses
    assert ta.crossed_above([nan, 3, 4], [2, 2, 2]).tolist() == [False, False, False]


def test_period_must_be_positive():
    with pytest.raises(ValueError):
        ta.sma([1, 2, 3], 0)


@pytest.mark.parametrize(
    "compute",
    [
        lambda c, h, lo: ta.sma(c, 7),
        lambda c, h, lo: ta.ema(c, 7),
        lambda c, h, lo: ta.rsi(c, 7),
        lambda c, h, lo: ta.bollinger_bands(c, 7, 2.0)[0],
        lambda c, h, lo: ta.macd(c, 3, 8, 4)[1],
        lambda c, h, lo: ta.donchian_channel(h, lo, 5)[1],
        lambda c, h, lo: ta.atr(h, lo, c, 5),
        lambda c, h, lo: ta.rolling_max(c, 5),
        lambda c, h, lo: ta.rolling_min(c, 5),
    ],
)
def test_indicators_never_use_future_values(compute):
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, 300))
    high, low = close + 1, close - 1
    full = compute(close, high, low)
    for k in (20, 57, 150, 299):
        part = compute(close[:k], high[:k], low[:k])
        np.testing.assert_array_equal(part, full[:k])


def test_sma_of_a_long_price_series_is_exact_to_a_few_ulps():
    # Prefix sums over a year of minute prices at ~30,000 would lose ~1e-6 without compensation.
    rng = np.random.default_rng(11)
    close = np.round(30_000 * np.exp(np.cumsum(rng.normal(0, 0.0008, 525_600))), 2)
    for period in (20, 200, 5000):
        fast = ta.sma(close, period)
        for i in (period - 1, 1000 + period, 300_017, 525_599):
            exact = math.fsum(close[i - period + 1 : i + 1]) / period
            assert fast[i] == pytest.approx(exact, rel=4e-16, abs=0)
        assert np.isnan(fast[: period - 1]).all()


def test_sma_of_a_flat_series_is_flat():
    for value in (0.1, 30_000.07, 1e-8):
        for period in (2, 20, 50):
            assert (ta.sma(np.full(400, value), period)[period - 1 :] == value).all()


def test_sma_is_nan_while_a_nan_or_infinity_is_in_the_window():
    values = [nan, 1, 2, math.inf, 3, 4, 5, 6, -math.inf, 1, 2, 3]
    assert_series(ta.sma(values, 3), [nan, nan, nan, nan, nan, nan, 4, 5, nan, nan, nan, 2])
    assert_series(ta.sma([math.inf] * 3 + [1] * 3, 3), [nan] * 5 + [1])
    assert_series(ta.sma([1, 2], 3), [nan, nan])
