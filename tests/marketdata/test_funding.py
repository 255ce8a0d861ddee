"""Funding-rate history and mark-price candles: ccxt's real Binance USD-M client against the local fake server.

ccxt's recorded Binance fixtures have no ``fetchFundingRateHistory`` response,
so the fake serves ``/fapi/v1/fundingRate`` in Binance's documented format
(``symbol``, ``fundingTime``, ``fundingRate``, ``markPrice`` as strings), paged
by ``startTime``/``limit`` like the exchange.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import ccxt
import numpy as np
import pytest
from django.urls import reverse

from apps.core.errors import ValidationFailed
from apps.exchanges.gateway.ccxt_gateway import CcxtGateway
from apps.exchanges.gateway.errors import ExchangeUnavailable
from apps.marketdata import selectors, services
from apps.marketdata.download import candles_download
from apps.marketdata.funding import funding_rates_download, funding_rates_refresh_watched
from apps.marketdata.models import Candle, FundingRate, MarkCandle
from tests.support.fake_exchange import INTERVAL_MS, FakeBinance

pytestmark = pytest.mark.django_db

EIGHT_HOURS = 8 * 3_600_000
START = int(datetime(2021, 11, 15, tzinfo=UTC).timestamp() * 1000)
# Three weeks of 8-hourly funding events with exchange-exact strings, positive and negative.
EVENTS = [
    {"symbol": "XRPUSDT", "fundingTime": START + k * EIGHT_HOURS, "fundingRate": f"{(k % 7 - 2) * 0.00003:.8f}",
     "markPrice": f"{1.05 + k * 0.001:.8f}"}
    for k in range(63)
]  # fmt: skip


def serve_funding(request):
    """Binance's ``GET /fapi/v1/fundingRate``: oldest first from ``startTime``, at most ``limit`` (max 1000)."""
    start = request.int("startTime", 0)
    limit = min(request.int("limit", 100) or 100, 1000)
    return [e for e in EVENTS if e["fundingTime"] >= start][:limit]


@pytest.fixture
def fake():
    with FakeBinance() as server:
        server.route("GET", "/fapi/v1/fundingRate", serve_funding)
        yield server


@pytest.fixture
def usdm(fake):
    client = fake.attach(ccxt.binanceusdm({"enableRateLimit": False, "timeout": 3000}))
    return CcxtGateway("binanceusdm", client=client, retries=2, backoff_seconds=0, retry_rate_limited=True)


def test_funding_history_is_paged_through_ccxt_and_stored_exactly(fake, usdm):
    report = funding_rates_download(
        exchange="binanceusdm", symbol="XRP/USDT:USDT", start=datetime(2021, 11, 15, tzinfo=UTC),
        end=datetime(2021, 12, 31, tzinfo=UTC), gateway=usdm, page_limit=20,
    )  # fmt: skip
    assert report.inserted == len(EVENTS) == 63 and report.pages == 4  # 20 + 20 + 20 + 3
    pages = fake.requests_to("/fapi/v1/fundingRate")
    assert [int(r.query["limit"]) for r in pages] == [20] * 4
    starts = [int(r.query["startTime"]) for r in pages]
    assert starts == sorted(starts) and len(set(starts)) == 4  # real paging, no re-fetch
    stored = list(FundingRate.objects.order_by("funding_time"))
    assert [r.funding_time for r in stored] == [e["fundingTime"] for e in EVENTS]
    assert [r.rate for r in stored] == [Decimal(e["fundingRate"]) for e in EVENTS]
    assert stored[5].mark_price == Decimal(EVENTS[5]["markPrice"])
    market = selectors.market_get(exchange="binanceusdm", symbol="XRP/USDT:USDT")
    series = selectors.funding_rates(market=market, start_ms=START, end_ms=START + 3 * EIGHT_HOURS)
    assert series == [[e["fundingTime"], float(e["fundingRate"])] for e in EVENTS[:3]]
    assert "63 funding rates inserted" in report.summary()


def test_funding_download_resumes_after_the_last_stored_event(fake, usdm):
    funding_rates_download(exchange="binanceusdm", symbol="XRP/USDT:USDT", start=datetime(2021, 11, 15, tzinfo=UTC),
                           end=datetime(2021, 11, 20, tzinfo=UTC), gateway=usdm)  # fmt: skip
    first_batch = FundingRate.objects.count()
    assert first_batch == 15
    fake.requests.clear()
    again = funding_rates_download(exchange="binanceusdm", symbol="XRP/USDT:USDT", gateway=usdm)
    assert again.inserted == len(EVENTS) - first_batch
    assert (
        int(fake.requests_to("/fapi/v1/fundingRate")[0].query["startTime"])
        == EVENTS[first_batch - 1]["fundingTime"] + 1
    )
    assert FundingRate.objects.count() == len(EVENTS)


def test_funding_of_a_spot_market_is_refused_with_the_field(usdm):
    with pytest.raises(ValidationFailed) as caught:
        funding_rates_download(exchange="binance", symbol="BTC/USDT", gateway=usdm)
    assert caught.value.fields == {"symbol": ["not a perpetual market"]}


def test_periodic_task_downloads_funding_of_watched_perpetual_markets_only(fake, settings, user):
    from apps.core.schedules import declared_schedules
    from apps.marketdata import gateway

    schedule = {s.task: s for s in declared_schedules()}["apps.marketdata.tasks.refresh_funding_rates"]
    assert schedule.seconds == 3600
    import time

    now = int(time.time() * 1000)
    recent = [{**e, "fundingTime": now - (3 - k) * EIGHT_HOURS} for k, e in enumerate(EVENTS[:3])]
    fake.route(
        "GET",
        "/fapi/v1/fundingRate",
        lambda r: [e for e in recent if e["fundingTime"] >= r.int("startTime", 0)],
    )
    settings.MARKETDATA_ONLINE = True
    settings.MARKETDATA_API_OVERRIDES = fake.overrides()
    gateway.reset_gateways()
    services.subscription_create(user=user, exchange="binanceusdm", symbol="XRP/USDT:USDT")
    services.subscription_create(user=user, exchange="binance", symbol="BTC/USDT")  # spot: no funding
    from apps.marketdata.tasks import refresh_funding_rates

    result = refresh_funding_rates.apply().get()
    assert list(result) == ["binanceusdm:XRP/USDT:USDT"]
    assert "3 funding rates inserted" in result["binanceusdm:XRP/USDT:USDT"]
    assert FundingRate.objects.count() == 3
    assert fake.requests_to("/fapi/v1/fundingRate")


def test_periodic_funding_task_offline_reports_and_stores_nothing(settings, user):
    settings.MARKETDATA_ONLINE = False
    services.subscription_create(user=user, exchange="binanceusdm", symbol="XRP/USDT:USDT")
    result = funding_rates_refresh_watched()
    assert "MARKETDATA_ONLINE=false" in result["binanceusdm:XRP/USDT:USDT"]
    assert not FundingRate.objects.exists()
    with pytest.raises(ExchangeUnavailable):
        funding_rates_download(exchange="binanceusdm", symbol="XRP/USDT:USDT")


def test_mark_price_candles_download_into_their_own_table(fake, usdm, shared_data_dir):
    import pandas as pd

    df = pd.read_csv(shared_data_dir / "ohlcv" / "binanceusdm_XRPUSDT_5m.csv.gz").head(300)
    # The mark price: last price shifted a little, as a mark differs from the last trade.
    rows = [
        [int(r.timestamp), r.open * 1.001, r.high * 1.001, r.low * 1.001, r.close * 1.001, 0]
        for r in df.itertuples()
    ]

    def mark_klines(request):
        start, limit = request.int("startTime", 0), min(request.int("limit", 500) or 500, 1000)
        out = [r for r in rows if r[0] >= start][:limit]
        return [[r[0], *map(str, r[1:6]), r[0] + INTERVAL_MS["5m"] - 1, "0", 0, "0", "0", "0"] for r in out]

    fake.route("GET", "/fapi/v1/markPriceKlines", mark_klines)
    first = datetime.fromtimestamp(rows[0][0] / 1000, tz=UTC)
    end = datetime.fromtimestamp((rows[-1][0] + 300_000) / 1000, tz=UTC)
    report = candles_download(exchange="binanceusdm", symbol="XRP/USDT:USDT", timeframe="5m", start=first, end=end,
                              gateway=usdm, page_limit=100, price="mark")  # fmt: skip
    assert report.inserted == 300 and report.pages >= 3 and "mark-price candles" in report.summary()
    assert MarkCandle.objects.count() == 300 and not Candle.objects.exists()  # last-price store untouched
    assert not fake.requests_to("/fapi/v1/klines")
    market = selectors.market_get(exchange="binanceusdm", symbol="XRP/USDT:USDT")
    mark = selectors.mark_candles(market=market, timeframe="5m")
    np.testing.assert_array_equal(mark.close, np.asarray([r[4] for r in rows]))
    assert selectors.mark_candles(market=market, timeframe="1h") is None


def test_mark_price_candles_of_a_spot_market_are_refused(usdm):
    with pytest.raises(ValidationFailed) as caught:
        candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1h", gateway=usdm, price="mark")
    assert "price" in caught.value.fields


def test_chart_page_of_a_perpetual_market_shows_its_funding_history(client, user):
    client.force_login(user)
    market = services.market_ensure(exchange="binanceusdm", symbol="XRP/USDT:USDT")
    empty = client.get(reverse("marketdata:chart"), {"exchange": "binanceusdm", "symbol": "XRP/USDT:USDT"})
    assert 'id="funding"' in empty.content.decode() and "No funding rates stored" in empty.content.decode()
    FundingRate.objects.bulk_create(
        FundingRate(market=market, funding_time=e["fundingTime"], rate=Decimal(e["fundingRate"]),
                    mark_price=Decimal(e["markPrice"]))
        for e in EVENTS
    )  # fmt: skip
    html = client.get(
        reverse("marketdata:chart"), {"exchange": "binanceusdm", "symbol": "XRP/USDT:USDT"}
    ).content.decode()
    assert "63 funding rates stored" in html and "2021-11-15 00:00" in html
    assert "2021-12-05 16:00" in html  # the newest event is listed
    assert "-0.00006" in html  # exact rate
    services.market_ensure(exchange="binance", symbol="BTC/USDT")
    spot = client.get(reverse("marketdata:chart"), {"symbol": "BTC/USDT"}).content.decode()
    assert 'id="funding"' not in spot
