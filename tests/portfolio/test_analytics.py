"""Portfolio analytics on a seeded history equal independent pandas computations (no database)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from apps.portfolio import analytics

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def _ms(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ms").asi8.astype(np.int64)


@pytest.fixture
def history():
    """120 days of 4-hourly equity with two deposits and a withdrawal."""
    rng = np.random.default_rng(7)
    times = pd.date_range(T0, periods=120 * 6, freq="4h")
    equity = 10_000 * np.cumprod(1 + rng.normal(0.0005, 0.01, len(times)))
    flows = pd.Series(
        [10_000.0, 2_000.0, -1_500.0],
        index=pd.DatetimeIndex(
            [T0, T0 + pd.Timedelta(days=20, hours=3), T0 + pd.Timedelta(days=70, hours=9)]
        ),
    )
    # The equity includes the money moved in and out from the flow's time on.
    for when, amount in flows.iloc[1:].items():
        equity[times > when] += amount
    ts = _ms(times)
    f_ts = _ms(flows.index)
    return times, equity, flows, ts, f_ts


def test_daily_pnl_matches_pandas(history):
    times, equity, flows, ts, f_ts = history
    close = pd.Series(equity, index=times).resample("1D").last().dropna()
    day_flows = flows.resample("1D").sum().reindex(close.index, fill_value=0.0)
    expected = close - close.shift(1, fill_value=0.0) - day_flows
    got = analytics.daily_pnl(ts, equity, f_ts, flows.to_numpy())
    assert got["day"].tolist() == _ms(close.index).tolist()
    np.testing.assert_allclose(got["close"], close.to_numpy())
    np.testing.assert_allclose(got["pnl"], expected.to_numpy(), atol=1e-9)
    # Flows are kept apart: summed P&L is the end equity minus net deposits.
    assert got["pnl"].sum() == pytest.approx(equity[-1] - flows.sum())


def test_monthly_pnl_matches_pandas(history):
    _times, equity, flows, ts, f_ts = history
    daily = analytics.daily_pnl(ts, equity, f_ts, flows.to_numpy())
    series = pd.Series(daily["pnl"], index=pd.to_datetime(daily["day"], unit="ms", utc=True))
    expected = series.groupby(series.index.strftime("%Y-%m")).sum()
    got = analytics.monthly_pnl(daily["day"], daily["pnl"])
    assert got["month"].tolist() == expected.index.tolist()
    np.testing.assert_allclose(got["pnl"], expected.to_numpy())


def _pandas_index(times, equity, flows) -> pd.Series:
    eq = pd.Series(equity, index=times)
    # Each flow belongs to the first point at or after it (flows at the first point are the start).
    pos = np.searchsorted(_ms(times), _ms(flows.index), side="left")
    step_flows = pd.Series(0.0, index=times)
    for p, amount in zip(pos, flows.to_numpy(), strict=True):
        if 0 < p < len(times):
            step_flows.iloc[p] += amount
    growth = ((eq - step_flows) / eq.shift(1)).fillna(1.0)
    return equity[0] * growth.cumprod()


def test_time_weighted_index_and_drawdown_match_pandas(history):
    times, equity, flows, ts, f_ts = history
    expected = _pandas_index(times, equity, flows)
    index = analytics.performance_index(ts, equity, f_ts, flows.to_numpy())
    np.testing.assert_allclose(index, expected.to_numpy())
    dd = analytics.drawdown(index)
    np.testing.assert_allclose(dd, (expected / expected.cummax() - 1).to_numpy(), atol=1e-12)


def test_performance_metrics_match_pandas_including_beta(history):
    times, equity, flows, ts, f_ts = history
    index = _pandas_index(times, equity, flows)
    daily_index = index.resample("1D").last()
    r = daily_index.pct_change()
    r.iloc[0] = daily_index.iloc[0] / index.iloc[0] - 1
    rng = np.random.default_rng(3)
    btc_days = pd.date_range(T0 - pd.Timedelta(days=2), periods=125, freq="1D")
    btc = pd.Series(60_000 * np.cumprod(1 + rng.normal(0, 0.03, len(btc_days))), index=btc_days)
    b_ts = _ms(btc_days) + 86_400_000 - 1  # closes stamped at day end

    m = analytics.performance_metrics(
        ts, equity, f_ts, flows.to_numpy(), bench_ts=b_ts, bench_close=btc.to_numpy()
    )

    assert m["sharpe_ratio"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))
    assert m["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(365))
    assert m["max_drawdown"] == pytest.approx((index / index.cummax() - 1).min())
    assert m["total_return"] == pytest.approx(index.iloc[-1] / index.iloc[0] - 1)
    assert m["var_95"] == pytest.approx(r.quantile(0.05))
    # Beta: the portfolio's daily returns against BTC's close-to-close returns on the same days.
    aligned = (
        pd.Series(btc.to_numpy()[np.searchsorted(b_ts, ts, side="right") - 1], index=times)
        .resample("1D")
        .last()
    )
    b = aligned.pct_change()
    b.iloc[0] = aligned.iloc[0] / aligned.iloc[0] - 1
    assert m["beta"] == pytest.approx(np.cov(r, b, ddof=1)[0, 1] / b.var(ddof=1))


def test_a_record_under_a_year_is_not_annualized_a_year_or_more_is(history):
    # GIPS: returns for periods of less than one year must not be annualized (ten minutes of a
    # new account at -3.9% showed -100% a year). The 120-day history is under a year.
    _times, equity, flows, ts, f_ts = history
    m = analytics.performance_metrics(ts, equity, f_ts, flows.to_numpy())
    assert m["annualized_return"] is None and m["calmar_ratio"] is None
    assert m["total_return"] is not None and m["max_drawdown"] < 0  # the rest is reported
    # Spread over 400 days, the same record is annualized as the engine does.
    stretched = ts[0] + (ts - ts[0]) * 400 // 120
    m = analytics.performance_metrics(stretched, equity, stretched[:1], flows.to_numpy()[:1])
    days = (stretched[-1] - stretched[0] + int(np.median(np.diff(stretched)))) / 86_400_000
    index_ratio = equity[-1] / equity[0]
    assert m["annualized_return"] == pytest.approx(index_ratio ** (365 / days) - 1)
    assert m["calmar_ratio"] == pytest.approx(m["annualized_return"] / abs(m["max_drawdown"]))


def _fill(ts, side, price, amount, fee=0.0, symbol="BTC/USDT", account="paper:1", bot=None, strategy=""):
    return {
        "ts": ts,
        "account": account,
        "symbol": symbol,
        "side": side,
        "price": price,
        "amount": amount,
        "fee": fee,
        "bot": bot,
        "strategy": strategy,
    }


def test_round_trips_use_average_entry_and_split_flips():
    fills = [
        _fill(0, "buy", 100, 1, fee=0.1),
        _fill(1000, "buy", 110, 1, fee=0.1),  # average entry 105
        _fill(2000, "sell", 120, 3, fee=0.3),  # closes 2 long (+30), opens 1 short
        _fill(3000, "buy", 100, 1, fee=0.1),  # closes the short (+20)
        _fill(4000, "buy", 50, 1, symbol="ETH/USDT"),  # still open: no trade
    ]
    trades = analytics.round_trips(fills)
    assert [(t["side"], t["entry_ms"], t["exit_ms"]) for t in trades] == [
        ("long", 0, 2000),
        ("short", 2000, 3000),
    ]
    assert trades[0]["pnl"] == pytest.approx(30 - 0.1 - 0.1 - 0.2)
    assert trades[0]["return_pct"] == pytest.approx(trades[0]["pnl"] / 210)
    assert trades[1]["pnl"] == pytest.approx(20 - 0.1 - 0.1)
    assert trades[1]["duration"] == 1.0


def test_trading_metrics_histogram_and_comparison_match_pandas():
    rng = np.random.default_rng(11)
    fills = []
    for i in range(300):
        entry = 100 + rng.normal(0, 5)
        exit_ = entry * (1 + rng.normal(0.002, 0.02))
        bot = int(i % 3)
        strategy = "dca" if bot == 0 else "sma_crossover"
        fills.append(_fill(i * 10_000, "buy", entry, 1, fee=0.05, bot=bot, strategy=strategy))
        fills.append(_fill(i * 10_000 + 5000, "sell", exit_, 1, fee=0.05, bot=bot, strategy=strategy))
    trades = analytics.round_trips(fills)
    frame = pd.DataFrame(trades)
    pnl = frame["pnl"]
    m = analytics.trading_metrics(trades)
    assert m["total_trades"] == 300
    assert m["win_rate"] == pytest.approx((pnl > 0).mean())
    assert m["profit_factor"] == pytest.approx(pnl[pnl > 0].sum() / -pnl[pnl < 0].sum())
    assert m["expectancy"] == pytest.approx(pnl.mean())
    assert m["avg_trade_return"] == pytest.approx(frame["return_pct"].mean())

    hist = analytics.trade_histogram(trades, bins=10)
    counts = pd.cut(frame["return_pct"], bins=np.asarray(hist["edges"]), include_lowest=True).value_counts(
        sort=False
    )
    assert hist["counts"] == counts.tolist()

    by_strategy = {row["key"]: row for row in analytics.compare_trades(trades, "strategy")}
    expected = frame.groupby("strategy")["pnl"].agg(["sum", "count", lambda s: (s > 0).mean()])
    for name, row in expected.iterrows():
        assert by_strategy[name]["net_pnl"] == pytest.approx(row["sum"])
        assert by_strategy[name]["total_trades"] == row["count"]
        assert by_strategy[name]["win_rate"] == pytest.approx(row["<lambda_0>"])


def test_monthly_by_strategy_names_the_best_symbol():
    day = 86_400_000
    fills = [
        _fill(0, "buy", 100, 1, strategy="dca"),
        _fill(day, "sell", 110, 1, strategy="dca"),
        _fill(0, "buy", 10, 1, symbol="ETH/USDT", strategy="dca"),
        _fill(day, "sell", 30, 1, symbol="ETH/USDT", strategy="dca"),
    ]
    rows = analytics.monthly_by_strategy(analytics.round_trips(fills))
    assert rows == [
        {
            "month": "1970-01",
            "strategy": "dca",
            "net_pnl": 30.0,
            "trades": 2,
            "best_symbol": "ETH/USDT",
            "best_symbol_pnl": 20.0,
        }
    ]


def test_exposure_sums_assets_across_accounts():
    rows = [
        {"asset": "BTC", "value": "600"},
        {"asset": "USDT", "value": "300"},
        {"asset": "BTC", "value": "100"},
    ]
    assert analytics.exposure(rows, 1000.0) == [
        {"asset": "BTC", "value": 700.0, "share": 0.7},
        {"asset": "USDT", "value": 300.0, "share": 0.3},
    ]


def test_empty_inputs_give_empty_answers():
    empty_i, empty_f = analytics.EMPTY_I8, analytics.EMPTY_F8
    assert analytics.daily_pnl(empty_i, empty_f, empty_i, empty_f)["pnl"].size == 0
    assert analytics.performance_metrics(empty_i, empty_f, empty_i, empty_f)["sharpe_ratio"] is None
    assert analytics.trading_metrics([])["total_trades"] == 0
    assert analytics.trade_histogram([]) == {"edges": [], "counts": []}
