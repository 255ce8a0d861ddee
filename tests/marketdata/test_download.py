"""Downloads through the exchange gateway: ccxt's real Binance client against a local fake Binance server."""

from __future__ import annotations

from datetime import UTC, datetime

import ccxt
import numpy as np
import pandas as pd
import pytest

from apps.exchanges.gateway.ccxt_gateway import CcxtGateway
from apps.exchanges.gateway.errors import ExchangeUnavailable, RateLimited, UnknownSymbol
from apps.marketdata import gateway as marketdata_gateway
from apps.marketdata import selectors
from apps.marketdata.download import candles_download, markets_refresh
from apps.marketdata.models import Market
from tests.support.fake_exchange import FakeBinance

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake():
    with FakeBinance() as server:
        yield server


@pytest.fixture
def client(fake):
    return fake.attach(ccxt.binance({"enableRateLimit": False, "timeout": 3000}))


def download_gateway(client, *, sleep, backoff: float = 1.0, retries: int = 5) -> CcxtGateway:
    """What ``marketdata.gateway.download_gateway`` builds, around the test's client and sleep."""
    return CcxtGateway(
        "binance",
        client=client,
        retries=retries,
        backoff_seconds=backoff,
        retry_rate_limited=True,
        sleep=sleep,
    )


@pytest.fixture(scope="module")
def btc_1m(shared_data_dir):
    """Three days of real BTC/USDT 1m candles (2025-06-02 .. 06-05, no gaps)."""
    df = pd.read_csv(shared_data_dir / "ohlcv" / "binance_BTCUSDT_1m.csv.gz")
    lo = int(datetime(2025, 6, 2, tzinfo=UTC).timestamp() * 1000)
    hi = int(datetime(2025, 6, 5, tzinfo=UTC).timestamp() * 1000)
    return df[(df.timestamp >= lo) & (df.timestamp < hi)].to_numpy().tolist()


def _no_sleep(waits):
    return waits.append


def test_download_pages_through_klines_and_stores_exact_values(fake, client, btc_1m):
    fake.set_klines("BTCUSDT", "1m", btc_1m)
    waits: list[float] = []
    report = candles_download(
        exchange="binance", symbol="BTC/USDT", timeframe="1m", start=datetime(2025, 6, 2), end=datetime(2025, 6, 5),
        gateway=download_gateway(client, sleep=waits.append),
    )  # fmt: skip
    assert report.inserted == 3 * 1440 == len(btc_1m)
    assert report.pages >= 5 and report.retries == 0 and waits == []
    klines = fake.requests_to("/api/v3/klines")
    assert all(int(r.query["limit"]) <= 1000 for r in klines)
    starts = [int(r.query["startTime"]) for r in klines]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)  # real paging, no re-fetch
    frame = selectors.candles(exchange="binance", symbol="BTC/USDT", timeframe="1m").to_frame()
    np.testing.assert_array_equal(frame.to_numpy(), np.asarray(btc_1m)[:, 1:])


def test_download_resumes_from_last_stored_candle(fake, client, btc_1m):
    fake.set_klines("BTCUSDT", "1m", btc_1m[:1500])
    first = candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1m", start=datetime(2025, 6, 2),
                             end=datetime(2025, 6, 5), gateway=download_gateway(client, sleep=lambda s: None))  # fmt: skip
    assert first.inserted == 1500
    fake.set_klines("BTCUSDT", "1m", btc_1m)
    fake.requests.clear()
    second = candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1m", start=datetime(2025, 6, 2),
                              end=datetime(2025, 6, 5), gateway=download_gateway(client, sleep=lambda s: None))  # fmt: skip
    assert second.inserted == len(btc_1m) - 1500
    assert second.resumed_from == datetime.fromtimestamp(btc_1m[1499][0] / 1000, tz=UTC)
    assert int(fake.requests_to("/api/v3/klines")[0].query["startTime"]) == btc_1m[1500][0]
    assert selectors.gap_report(exchange="binance", symbol="BTC/USDT", timeframe="1m").missing == 0


@pytest.mark.parametrize("status", [429, 418, 503])
def test_rate_limit_and_server_errors_are_retried_with_backoff(fake, client, btc_1m, status):
    fake.set_klines("BTCUSDT", "1m", btc_1m[:100])
    fake.fail("GET", "/api/v3/klines", status=status, times=2)
    waits: list[float] = []
    report = candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1m", start=datetime(2025, 6, 2),
                              end=datetime(2025, 6, 3), gateway=download_gateway(client, sleep=waits.append, backoff=0.5))  # fmt: skip
    assert report.inserted == 100 and report.retries == 2
    assert waits[1] > waits[0] >= 0.5  # exponential
    if status == 418:
        assert waits[0] >= 2.0  # an IP ban backs off harder


def test_retry_after_header_is_honoured(fake, client, btc_1m):
    fake.set_klines("BTCUSDT", "1m", btc_1m[:10])
    fake.fail("GET", "/api/v3/klines", status=429, headers={"Retry-After": "7"})
    waits: list[float] = []
    candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1m", start=datetime(2025, 6, 2),
                     end=datetime(2025, 6, 3), gateway=download_gateway(client, sleep=waits.append))  # fmt: skip
    assert waits == [7.0]


def test_dropped_connections_are_retried(fake, client, btc_1m):
    fake.set_klines("BTCUSDT", "1m", btc_1m[:10])
    fake.fail("GET", "/api/v3/klines", drop=True, times=1)
    report = candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1m", start=datetime(2025, 6, 2),
                              end=datetime(2025, 6, 3), gateway=download_gateway(client, sleep=lambda s: None))  # fmt: skip
    assert report.inserted == 10 and report.retries == 1


def test_persistent_failure_gives_a_clear_error_and_keeps_earlier_pages(fake, client, btc_1m):
    fake.set_klines("BTCUSDT", "1m", btc_1m)
    client.options["fetchOHLCV"] = {}

    original = fake._klines
    calls = {"n": 0}

    def flaky(request):
        calls["n"] += 1
        if calls["n"] > 2:
            from tests.support.fake_exchange import FakeResponse

            return FakeResponse(429, {"code": -1003, "msg": "Too many requests"})
        return original(request)

    fake.route("GET", "/api/v3/klines", flaky)
    with pytest.raises(RateLimited, match=r"rate-limiting us.*Gave up after 4 attempts"):
        candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1m", start=datetime(2025, 6, 2),
                         end=datetime(2025, 6, 5), gateway=download_gateway(client, sleep=lambda s: None, retries=3))  # fmt: skip
    # the two pages fetched before the failure are committed: a rerun resumes after them
    assert len(selectors.candles(exchange="binance", symbol="BTC/USDT", timeframe="1m")) == 2000


def test_timeout_is_a_network_error(fake, btc_1m):
    client = fake.attach(ccxt.binance({"enableRateLimit": False, "timeout": 300}))
    fake.set_klines("BTCUSDT", "1m", btc_1m[:10])
    client.load_markets()
    fake.fail("GET", "/api/v3/klines", status=200, body=[], delay=1.0, times=1)
    report = candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1m", start=datetime(2025, 6, 2),
                              end=datetime(2025, 6, 3), gateway=download_gateway(client, sleep=lambda s: None))  # fmt: skip
    assert report.retries == 1 and report.inserted == 10


def test_unknown_symbol_is_rejected(fake, client, settings):
    Market.objects.all().delete()
    fake.set_klines("BTCUSDT", "1m", [])
    with pytest.raises(UnknownSymbol):
        candles_download(exchange="binance", symbol="ETH/BTC", timeframe="1m", start=datetime(2025, 6, 2),
                         end=datetime(2025, 6, 3), gateway=download_gateway(client, sleep=lambda s: None))  # fmt: skip


def test_offline_gives_a_clear_message(settings):
    settings.MARKETDATA_ONLINE = False
    with pytest.raises(ExchangeUnavailable, match="MARKETDATA_ONLINE=false"):
        candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1h")


def test_unreachable_exchange_gives_a_clear_message(settings, monkeypatch):
    from apps.marketdata import gateway
    from tests.support.servers import free_port

    # Still every retry, but without the 1+2+4+8+16 s of backoff between them.
    monkeypatch.setattr(gateway, "DOWNLOAD_BACKOFF_SECONDS", 0.0)
    settings.MARKETDATA_ONLINE = True
    settings.MARKETDATA_API_OVERRIDES = {"binance": f"http://127.0.0.1:{free_port()}"}
    marketdata_gateway.reset_gateways()
    with pytest.raises(ExchangeUnavailable, match="Cannot reach binance"):
        candles_download(exchange="binance", symbol="BTC/USDT", timeframe="1h")


def test_markets_refresh_loads_the_catalog_through_ccxt(fake, client, settings):
    count = markets_refresh(exchange="binance", gateway=download_gateway(client, sleep=lambda s: None))
    assert count == 11
    btc = Market.objects.get(exchange__slug="binance", symbol="BTC/USDT")
    assert str(btc.precision_price.normalize()) == "0.01" and str(btc.min_notional.normalize()) == "5"
    swap = Market.objects.get(exchange__slug="binance", symbol="BTC/USDT:USDT")
    assert swap.type == "swap" and swap.exchange_symbol == "BTCUSDT"
    # the app-built client goes through MARKETDATA_API_OVERRIDES
    settings.MARKETDATA_ONLINE = True
    settings.MARKETDATA_API_OVERRIDES = fake.overrides()
    marketdata_gateway.reset_gateways()
    assert markets_refresh(exchange="binance") == 11
