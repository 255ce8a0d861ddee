"""Futures runs take funding history (by default) and mark-price candles from the store, and say so."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from django.urls import reverse

from apps.backtests.models import BacktestResultData, BacktestTrade
from apps.backtests.services import backtest_create, backtest_execute, futures_inputs
from apps.core.errors import ValidationFailed
from apps.core.jobs import JobStatus
from apps.marketdata import services as md
from apps.marketdata import store
from apps.marketdata.models import FundingRate
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

EXCHANGE, SYMBOL = "binanceusdm", "XRP/USDT:USDT"
EIGHT_HOURS = 8 * 3_600_000
FUTURES_BODY = {
    "strategy": "buy_and_hold",
    "exchange": EXCHANGE,
    "symbol": SYMBOL,
    "timeframe": "5m",
    "initial_cash": "1000",
    "market_type": "futures",
    "leverage": 2,
}


@pytest.fixture
def xrp_perp(shared_data_dir):
    """A week of real Binance USD-M XRP/USDT perpetual 5m candles (2021-11-15 .. 21)."""
    md.candles_import_file(
        path=shared_data_dir / "ohlcv" / "binanceusdm_XRPUSDT_5m.csv.gz", exchange=EXCHANGE, symbol=SYMBOL,
        timeframe="5m",
    )  # fmt: skip
    from apps.marketdata.selectors import candles, market_get

    return market_get(exchange=EXCHANGE, symbol=SYMBOL), candles(
        exchange=EXCHANGE, symbol=SYMBOL, timeframe="5m"
    )


def store_funding(market, candles) -> list[tuple[int, float]]:
    """Funding every 8 hours over the candles, alternating in sign and size."""
    first = int(candles.timestamp[0]) - int(candles.timestamp[0]) % EIGHT_HOURS
    events = [(first + k * EIGHT_HOURS, (k % 5 - 1) * 0.0001) for k in range(1 + 7 * 3)]
    FundingRate.objects.bulk_create(
        FundingRate(market=market, funding_time=ts, rate=Decimal(repr(rate))) for ts, rate in events
    )
    return events


def expected_funding(trade: BacktestTrade, events, timestamps: np.ndarray, price: np.ndarray) -> float:
    """``size x mark x rate`` for each event charged while the trade was open (docs/engine.md *Funding*)."""
    total = 0.0
    for ts, rate in events:
        i = int(np.searchsorted(timestamps, ts))  # the first candle opening at or after the event
        if i < len(timestamps) and trade.entry_time < timestamps[i] <= trade.exit_time:
            total += float(trade.size) * price[i] * rate
    return total


def run(user, **body):
    created = backtest_create(user=user, data={**FUTURES_BODY, **body}, enqueue=False)
    assert backtest_execute(run_id=created.id) == JobStatus.COMPLETED
    created.refresh_from_db()
    return created, BacktestResultData.objects.get(run=created).info


def test_futures_run_uses_the_stored_funding_history_by_default(user, xrp_perp):
    market, candles = xrp_perp
    events = store_funding(market, candles)
    created, info = run(user)
    assert created.funding_source == "history"
    assert (
        info["funding_source"] == "history" and info["funding_events"] == 21
    )  # the events from the first to the last candle
    assert "stored history" in info["funding_note"]
    trade = BacktestTrade.objects.get(run=created)
    want = expected_funding(trade, events, candles.timestamp, candles.open)
    assert want != 0
    assert float(trade.funding) == pytest.approx(want, rel=1e-9)
    assert info["price_source"] == "last" and "no mark-price candles" in info["price_source_note"]


def test_funding_none_or_a_constant_only_when_asked(user, xrp_perp):
    market, candles = xrp_perp
    store_funding(market, candles)
    off, info = run(user, funding="none")
    assert off.funding_source == "none" and info["funding_source"] == "none"
    assert BacktestTrade.objects.get(run=off).funding == 0
    constant, info = run(user, funding=0.0001)
    assert constant.funding_source == "constant" and constant.config["funding_rates"] == 0.0001
    assert info["funding_source"] == "constant" and "0.0001" in info["funding_note"]
    assert BacktestTrade.objects.get(run=constant).funding > 0


def test_history_with_nothing_stored_runs_without_funding_and_says_why(user, xrp_perp):
    created, info = run(user)
    assert created.funding_source == "history"
    assert info["funding_source"] == "none" and "no funding history is stored" in info["funding_note"]
    assert BacktestTrade.objects.get(run=created).funding == 0


def test_stored_mark_price_candles_drive_funding_and_the_result_says_mark(user, xrp_perp):
    market, candles = xrp_perp
    events = store_funding(market, candles)
    mark_open = candles.open * 1.002
    ohlcv = np.column_stack([mark_open, candles.high * 1.002, candles.low * 1.002, candles.close * 1.002,
                             np.zeros(len(candles))])  # fmt: skip
    store.upsert(
        market_id=market.id, timeframe="5m", ts=candles.timestamp, ohlcv=ohlcv, table=store.MARK_TABLE
    )
    created, info = run(user)
    assert info["price_source"] == "mark" and info.get("mark_missing_candles", 0) == 0
    trade = BacktestTrade.objects.get(run=created)
    assert float(trade.funding) == pytest.approx(
        expected_funding(trade, events, candles.timestamp, mark_open), rel=1e-9
    )


def test_spot_runs_get_no_funding_and_pass_through(user, xrp_perp):
    _, candles = xrp_perp
    inputs = futures_inputs(exchange=EXCHANGE, symbol=SYMBOL, timeframe="5m", candles=candles,
                            config={"market_type": "spot"}, funding_source="")  # fmt: skip
    assert inputs.candles is candles and inputs.info == {}


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"funding": "sometimes"}, "funding"),
        ({"funding": True}, "funding"),
        ({"funding": 0.5}, "funding_rates"),  # the engine's bound: a rate is a small fraction
        ({"funding": "none", "funding_rates": 0.0001}, "funding"),
        ({"funding": "history", "market_type": "spot", "leverage": 1}, "funding"),
    ],
)
def test_bad_funding_option_is_a_field_error(user, xrp_perp, extra, field):
    with pytest.raises(ValidationFailed) as caught:
        backtest_create(user=user, data={**FUTURES_BODY, **extra}, enqueue=False)
    assert field in caught.value.fields


def test_api_accepts_funding_and_reports_bad_values_in_the_error_body(api_client, user, xrp_perp):
    api_client.force_authenticate(user)
    url = reverse("backtests-api:run-list")
    bad = api_client.post(url, {**FUTURES_BODY, "funding": "sometimes", "leverage": 500}, format="json")
    assert_error(bad, 400, fields=["funding", "leverage"])
    ok = api_client.post(url, {**FUTURES_BODY, "funding": "none"}, format="json")
    assert ok.status_code == 202
    detail = api_client.get(ok.json()["url"]).json()
    assert detail["funding_source"] == "none"


def cli(tmp_path, *extra: str) -> dict:
    import json

    from django.core.management import call_command

    out = tmp_path / "result.json"
    call_command(
        "backtest", "--exchange", EXCHANGE, "--symbol", SYMBOL, "--timeframe", "5m", "--strategy", "buy_and_hold",
        "--leverage", "2", "--cash", "1000", "--output", str(out), *extra,
    )  # fmt: skip
    return json.loads(out.read_text())


def test_cli_funding_option_history_none_or_a_rate(user, xrp_perp, shared_data_dir, tmp_path):
    from django.core.management.base import CommandError

    market, candles = xrp_perp
    events = store_funding(market, candles)
    history = cli(tmp_path)  # candles from the store: its funding history by default
    assert history["info"]["funding_source"] == "history" and history["info"]["funding_events"] == 21
    trade = history["trades"][0]
    size, entry_ms, exit_ms = trade["size"], trade["entry_time"], trade["exit_time"]
    want = sum(
        size * candles.open[i] * rate
        for ts, rate in events
        if (i := int(np.searchsorted(candles.timestamp, ts))) < len(candles) and entry_ms < candles.timestamp[i] <= exit_ms
    )  # fmt: skip
    assert trade["funding"] == pytest.approx(want, rel=1e-9)
    file = str(shared_data_dir / "ohlcv" / "binanceusdm_XRPUSDT_5m.csv.gz")
    from_file = cli(tmp_path, "--data", file, "--funding", "history")  # a file's candles, the store's funding
    assert from_file["trades"][0]["funding"] == pytest.approx(want, rel=1e-9)
    assert cli(tmp_path, "--funding", "none")["trades"][0]["funding"] == 0
    constant = cli(tmp_path, "--data", file, "--funding", "0.0001")
    assert constant["info"]["funding_source"] == "constant" and constant["trades"][0]["funding"] > 0
    with pytest.raises(CommandError, match="--funding"):
        cli(tmp_path, "--funding", "sometimes")


def test_an_optimization_over_a_futures_market_pays_the_stored_funding_as_a_run_does(user, xrp_perp):
    from apps.backtests.models import OptimizationTrial
    from apps.backtests.optimization import optimization_create, optimization_plan, optimization_run_chunk

    market, candles = xrp_perp
    store_funding(market, candles)
    body = {**FUTURES_BODY, "strategy": "sma_crossover", "space": {"fast": [5, 10], "slow": [30]}}
    opt = optimization_create(user=user, data=body, enqueue=False)
    for chunk in range(optimization_plan(optimization_id=opt.id, worker="inline")):
        optimization_run_chunk(optimization_id=opt.id, chunk=chunk, worker="inline")
    opt.refresh_from_db()
    assert opt.status == JobStatus.COMPLETED, opt.error
    assert opt.plan["futures"]["funding_source"] == "history" and opt.plan["futures"]["funding_events"] == 21
    for trial in OptimizationTrial.objects.filter(optimization=opt):
        single, _ = run(user, strategy="sma_crossover", params=trial.params)
        off, _ = run(user, strategy="sma_crossover", params=trial.params, funding="none")
        assert single.total_return != off.total_return  # funding changed the run
        assert trial.metrics["total_return"] == pytest.approx(single.total_return, rel=1e-12)
