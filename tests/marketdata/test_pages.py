from __future__ import annotations

import pytest
from django.urls import reverse

from apps.marketdata import services
from apps.marketdata.models import Candle, Exchange, ImportJob, Market, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


def test_markets_page_renders_watchlist_shell(logged_in):
    services.market_ensure(exchange="binance", symbol="BTC/USDT")
    response = logged_in.get(reverse("marketdata:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="watchlist"' in html and "marketdata/markets.js" in html and 'value="BTC/USDT"' in html


def test_chart_page_and_unknown_market(logged_in):
    services.market_ensure(exchange="binance", symbol="ETH/USDT")
    response = logged_in.get(reverse("marketdata:chart"), {"symbol": "ETHUSDT", "timeframe": "4h"})
    html = response.content.decode()
    assert response.status_code == 200 and "plotly.min.js" in html and 'data-symbol="ETH/USDT"' in html
    assert 'data-timeframe="4h"' in html
    missing = logged_in.get(reverse("marketdata:chart"), {"symbol": "NOPE/USDT"})
    assert missing.status_code == 404 and "Unknown market" in missing.content.decode()


def test_pages_need_login(client):
    assert client.get(reverse("marketdata:index")).status_code == 302


@pytest.mark.parametrize("model", [Exchange, Market, Candle, Subscription, ImportJob])
def test_admin_changelists(admin_client, model, user, shared_data_dir):
    services.candles_import_file(
        path=shared_data_dir / "ohlcv" / "binance_XRPETH_5m.csv.gz", symbol="XRP/ETH", timeframe="5m"
    )
    services.subscription_create(user=user, exchange="binance", symbol="XRP/ETH")
    ImportJob.objects.create(user=user, kind="import", exchange="binance", symbol="XRP/ETH", timeframe="5m")
    url = reverse(f"admin:marketdata_{model._meta.model_name}_changelist")
    assert admin_client.get(url, {"q": "XRP"}).status_code == 200
    obj = model.objects.first()
    assert (
        admin_client.get(
            reverse(f"admin:marketdata_{model._meta.model_name}_change", args=[obj.pk])
        ).status_code
        == 200
    )
