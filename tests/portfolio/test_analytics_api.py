"""Portfolio analytics API: owner scoping, bad input in the one error body, empty states, CSV."""

from __future__ import annotations

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.portfolio import services
from apps.portfolio.models import CashFlow, EquitySnapshot, Tier
from tests.factories import BotFactory, FillFactory, OrderFactory, PaperAccountFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

VIEWS = [
    "summary",
    "accounts",
    "balances",
    "exposure",
    "positions",
    "equity-curve",
    "drawdown",
    "daily-pnl",
    "monthly-pnl",
    "performance",
    "trading-metrics",
    "trade-distribution",
    "comparison",
    "monthly-strategy",
    "cash-flows",
]


def url(name: str) -> str:
    return reverse(f"portfolio-api:{name}")


@pytest.fixture
def history(user):
    """A paper account with 40 days of daily equity, a deposit, and two closed trades of a bot."""
    account = PaperAccountFactory(user=user, initial_balances={"USDT": "1000"})
    services.snapshot_take(user=user)
    today = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    EquitySnapshot.objects.bulk_create(
        EquitySnapshot(
            owner=user,
            timestamp=today - timedelta(days=40 - d, hours=-12),
            equity=Decimal(1000 + 10 * d + (500 if d >= 20 else 0)),
            currency="USDT",
            tier=Tier.DAY,
        )
        for d in range(40)
    )
    CashFlow.objects.create(
        owner=user,
        paper_account=account,
        timestamp=today - timedelta(days=20),
        kind=CashFlow.Kind.DEPOSIT,
        amount=Decimal(500),
        currency="USDT",
    )
    bot = BotFactory(owner=user, strategy="dca")
    for i, (buy, sell) in enumerate([(100, 110), (100, 95)]):
        order = OrderFactory(owner=user, paper_account=account, bot=bot, side="buy")
        FillFactory(
            order=order,
            price=Decimal(buy),
            amount=Decimal(1),
            fee=Decimal(0),
            timestamp=today - timedelta(days=5 - i),
        )
        order = OrderFactory(owner=user, paper_account=account, bot=bot, side="sell")
        FillFactory(
            order=order,
            price=Decimal(sell),
            amount=Decimal(1),
            fee=Decimal(0),
            timestamp=today - timedelta(days=4 - i),
        )
    return account


@pytest.mark.parametrize("name", VIEWS)
def test_every_view_answers_a_brand_new_user_with_an_empty_state(auth_client, name):
    response = auth_client.get(url(name))
    assert response.status_code == 200, response.content


def test_empty_summary_is_all_null(auth_client):
    body = auth_client.get(url("summary")).json()
    assert body["equity"] is None and body["today_pnl"] is None and body["accounts"] == 0


@pytest.mark.parametrize("name", VIEWS)
def test_every_view_refuses_anonymous_users(api_client, name):
    assert_error(api_client.get(url(name)), 401, "not_authenticated")


@pytest.mark.parametrize("name", [v for v in VIEWS if v != "accounts"])
def test_someone_elses_account_is_404(auth_client, other_user, name):
    theirs = PaperAccountFactory(user=other_user)
    assert_error(auth_client.get(url(name), {"account": f"paper:{theirs.pk}"}), 404)


def test_bad_query_lists_every_bad_field(auth_client):
    error = assert_error(
        auth_client.get(
            url("daily-pnl"), {"days": "7", "start": "yesterday", "account": "mine", "colour": "red"}
        ),
        400,
        "invalid",
        ["days", "start", "account", "colour"],
    )
    assert len(error["fields"]) == 4


def test_range_must_be_ordered_and_days_exclusive_of_start(auth_client):
    assert_error(
        auth_client.get(
            url("equity-curve"), {"start": "2026-11-05T00:00:00Z", "end": "2026-11-01T00:00:00Z"}
        ),
        400,
        "invalid",
        "end",
    )
    assert_error(
        auth_client.get(url("daily-pnl"), {"days": 30, "start": "2026-11-01T00:00:00Z"}),
        400,
        "invalid",
        "days",
    )
    assert_error(auth_client.get(url("trade-distribution"), {"bins": 1}), 400, "invalid", "bins")
    assert_error(auth_client.get(url("comparison"), {"by": "exchange"}), 400, "invalid", "by")


def test_daily_pnl_keeps_the_deposit_apart(auth_client, history):
    body = auth_client.get(url("daily-pnl"), {"days": 30}).json()
    assert len(body["days"]) >= 29
    by_day = {d["day"]: d for d in body["days"]}
    deposit_day = (timezone.now().astimezone(UTC) - timedelta(days=20)).date().isoformat()
    assert by_day[deposit_day]["flows"] == 500
    assert by_day[deposit_day]["pnl"] == pytest.approx(10)


def test_views_with_history(auth_client, history, other_user):
    key = f"paper:{history.pk}"
    assert auth_client.get(url("accounts")).json() == [
        {"account": key, "label": "Paper account", "kind": "paper"}
    ]
    curve = auth_client.get(url("equity-curve"), {"account": key}).json()
    assert len(curve["timestamps"]) == len(curve["equity"]) >= 1
    perf = auth_client.get(url("performance"), {"days": 90}).json()
    assert perf["metrics"]["max_drawdown"] is not None
    trading = auth_client.get(url("trading-metrics")).json()["metrics"]
    assert trading["total_trades"] == 2 and trading["win_rate"] == 0.5
    assert trading["profit_factor"] == pytest.approx(2.0)
    compare = auth_client.get(url("comparison"), {"by": "bot"}).json()["rows"]
    assert [r["total_trades"] for r in compare] == [2] and compare[0]["name"].startswith("bot")
    monthly = auth_client.get(url("monthly-strategy")).json()["rows"]
    assert sum(r["trades"] for r in monthly) == 2 and {r["strategy"] for r in monthly} == {"dca"}
    flows = auth_client.get(url("cash-flows")).json()
    assert {f["kind"] for f in flows["results"]} == {"opening", "deposit"}
    balances = auth_client.get(url("balances")).json()
    assert balances["accounts"][0]["account"] == key
    assert auth_client.get(url("exposure")).json()["assets"][0]["asset"] == "USDT"
    # The other user sees none of it.
    from rest_framework.test import APIClient

    theirs = APIClient()
    theirs.force_authenticate(other_user)
    assert theirs.get(url("trading-metrics")).json()["metrics"]["total_trades"] == 0
    assert theirs.get(url("equity-curve")).json()["equity"] == []


def test_csv_exports(auth_client, history):
    trades = auth_client.get(url("trades-csv"))
    assert trades["Content-Type"].startswith("text/csv")
    lines = b"".join(trades.streaming_content).decode().strip().splitlines()
    assert lines[0].startswith("account,symbol,side,entry_time")
    assert len(lines) == 3
    daily = auth_client.get(url("daily-pnl-csv"), {"days": 30})
    lines = b"".join(daily.streaming_content).decode().strip().splitlines()
    assert lines[0] == "day,close,flows,pnl" and len(lines) >= 30
    assert_error(auth_client.get(url("trades-csv"), {"days": "12"}), 400, "invalid", "days")


def test_schema_lists_the_portfolio_endpoints(auth_client):
    body = auth_client.get("/api/schema/", {"format": "json"}).json()
    for name in ("summary", "daily-pnl", "performance", "comparison", "cash-flows"):
        assert f"/api/v1/portfolio/{name}/" in body["paths"]
    assert "/api/v1/portfolio/trades.csv" in body["paths"]
