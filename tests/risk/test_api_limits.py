"""Risk API: limits CRUD with validation, alerts (filters, pagination, acknowledge), overview and exposure;
owner scoping and bad input on every endpoint."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.orders.models import Position
from apps.risk.models import RiskAlert, RiskLimit
from tests.factories import BotFactory, PaperAccountFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

LIMITS = reverse("risk-api:limit-list")
ALERTS = reverse("risk-api:alert-list")
OVERVIEW = reverse("risk-api:overview")
EXPOSURE = reverse("risk-api:exposure")


def limit_url(pk) -> str:
    return reverse("risk-api:limit-detail", args=[pk])


def ack_url(pk) -> str:
    return reverse("risk-api:alert-acknowledge", args=[pk])


def alert(owner, **kw) -> RiskAlert:
    kw.setdefault("key", f"monitor:k{RiskAlert.objects.count()}")
    kw.setdefault("kind", "daily_loss")
    kw.setdefault("severity", "warning")
    kw.setdefault("message", "Daily loss: too much")
    return RiskAlert.objects.create(owner=owner, last_seen_at=timezone.now(), **kw)


def test_create_list_update_delete_a_limit(auth_client, user):
    bot = BotFactory(owner=user)
    body = {"kind": "asset_exposure", "value": "0.5", "action": "pause_bot", "bot": bot.pk, "asset": "btc"}
    response = auth_client.post(LIMITS, body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["asset"], created["bot"], Decimal(created["value"])) == ("BTC", bot.pk, Decimal("0.5"))
    assert [item["id"] for item in auth_client.get(LIMITS).json()["results"]] == [created["id"]]
    changed = auth_client.patch(limit_url(created["id"]), {"value": "0.25", "enabled": False}, format="json")
    assert changed.status_code == 200, changed.content
    assert Decimal(changed.json()["value"]) == Decimal("0.25") and changed.json()["enabled"] is False
    assert auth_client.delete(limit_url(created["id"])).status_code == 204
    assert not RiskLimit.objects.exists()


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"kind": "nonsense", "value": "1"}, ["kind"]),
        ({"kind": "order_notional", "value": "0"}, ["value"]),
        ({"kind": "order_notional", "value": "-5", "action": "explode"}, ["value", "action"]),
        ({"kind": "drawdown", "value": "1.5"}, ["value"]),
        ({"kind": "open_orders", "value": "2.5"}, ["value"]),
        ({"kind": "leverage", "value": "200"}, ["value"]),
        ({"kind": "order_notional", "value": "abc"}, ["value"]),
        ({"kind": "order_notional", "value": "1", "symbol": "BTCUSDT"}, ["symbol"]),
        ({"kind": "order_notional", "value": "1", "asset": "BTC"}, ["asset"]),
        ({"kind": "losing_streak", "value": "3", "cooldown_minutes": 0}, ["cooldown_minutes"]),
        ({"kind": "order_notional", "value": "1", "bot": 999999}, ["bot"]),
        ({"kind": "order_notional", "value": "1", "paper_account": 999999}, ["paper_account"]),
        ({"kind": "order_notional", "value": "1", "vaule": "2"}, ["vaule"]),
        ({"value": "1"}, ["kind"]),
    ],
)
def test_bad_limits_are_400_naming_every_field(auth_client, body, fields):
    assert_error(auth_client.post(LIMITS, body, format="json"), 400, "invalid", fields)
    assert not RiskLimit.objects.exists()


def test_a_bad_patch_is_400_and_changes_nothing(auth_client, user):
    limit = RiskLimit.objects.create(owner=user, kind="order_notional", value=Decimal("100"))
    assert_error(
        auth_client.patch(limit_url(limit.pk), {"value": "-1"}, format="json"), 400, "invalid", "value"
    )
    assert_error(auth_client.patch(limit_url(limit.pk), ["x"], format="json"), 400, "invalid")
    limit.refresh_from_db()
    assert limit.value == Decimal("100")


def test_limits_and_alerts_of_another_user_are_404(auth_client, other_user):
    other_bot = BotFactory(owner=other_user)
    other_paper = PaperAccountFactory(user=other_user)
    limit = RiskLimit.objects.create(owner=other_user, kind="order_notional", value=Decimal("100"))
    other_alert = alert(other_user)
    assert auth_client.get(LIMITS).json()["results"] == []
    assert_error(auth_client.get(limit_url(limit.pk)), 404, "not_found")
    assert_error(auth_client.patch(limit_url(limit.pk), {"value": "1"}, format="json"), 404, "not_found")
    assert_error(auth_client.delete(limit_url(limit.pk)), 404, "not_found")
    assert_error(auth_client.post(ack_url(other_alert.pk)), 404, "not_found")
    assert auth_client.get(ALERTS).json()["results"] == []
    # Naming another user's bot or account in a scope is a bad field, not a way to probe it.
    body = {"kind": "order_notional", "value": "1", "bot": other_bot.pk, "paper_account": other_paper.pk}
    assert_error(auth_client.post(LIMITS, body, format="json"), 400, "invalid", ["bot", "paper_account"])


def test_alerts_filter_paginate_and_acknowledge(auth_client, user):
    first = alert(user, severity="critical")
    alert(user, kind="drawdown", resolved_at=timezone.now())
    alert(user, severity="info", kind="leverage")
    body = auth_client.get(ALERTS, {"severity": "critical"}).json()
    assert [a["id"] for a in body["results"]] == [first.pk]
    assert auth_client.get(ALERTS, {"state": "resolved"}).json()["count"] == 1
    assert auth_client.get(ALERTS, {"kind": "leverage"}).json()["count"] == 1
    page = auth_client.get(ALERTS, {"page_size": 2}).json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    acked = auth_client.post(ack_url(first.pk))
    assert acked.status_code == 200 and acked.json()["acknowledged_at"]
    again = auth_client.post(ack_url(first.pk)).json()
    assert again["acknowledged_at"] == acked.json()["acknowledged_at"]
    assert auth_client.get(ALERTS, {"state": "unacknowledged"}).json()["count"] == 2


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"severity": "loud"}, "severity"),
        ({"state": "sleepy"}, "state"),
        ({"page_size": "0"}, "page_size"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_alert_filters_are_400(auth_client, query, field):
    assert_error(auth_client.get(ALERTS, query), 400, "invalid", field)


def test_acknowledge_of_a_missing_alert_is_404_and_anonymous_is_401(auth_client, api_client):
    assert_error(auth_client.post(ack_url(999999)), 404, "not_found")
    for url in (LIMITS, ALERTS, OVERVIEW, EXPOSURE):
        assert_error(api_client.get(url), 401, "not_authenticated")


def test_overview_and_exposure_compute_the_figures_now(auth_client, user):
    account = PaperAccountFactory(user=user, initial_balances={"USDT": "8000", "BTC": "0.1"})
    Position.objects.create(
        owner=user, paper_account=account, symbol="BTC/USDT", side="long", size=Decimal("0.1"),
        average_entry=Decimal("20000"), mark_price=Decimal("20000"),
    )  # fmt: skip
    RiskLimit.objects.create(owner=user, kind="daily_loss", value=Decimal("300"))
    body = auth_client.get(OVERVIEW).json()
    assert Decimal(body["equity"]) == Decimal("10000") and Decimal(body["gross_exposure"]) == Decimal("2000")
    assert Decimal(body["leverage"]) == Decimal("0.2") and Decimal(body["daily_loss_limit"]) == Decimal("300")
    assert 1 <= body["score"] <= 100 and set(body["components"]) >= {"leverage", "var"}
    assert body["var_95"] is None and body["var_days"] == 0  # no daily prices stored
    exposure = auth_client.get(EXPOSURE).json()
    assert [
        (a["asset"], Decimal(a["value"]), Decimal(a["fraction_of_equity"])) for a in exposure["assets"]
    ] == [("BTC", Decimal("2000"), Decimal("0.2"))]
    assert exposure["positions"][0]["account"] == f"paper:{account.pk}"


def test_every_risk_endpoint_is_in_the_schema():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in ("/api/v1/risk/overview/", "/api/v1/risk/exposure/", "/api/v1/risk/limits/",
                 "/api/v1/risk/limits/{id}/", "/api/v1/risk/alerts/", "/api/v1/risk/alerts/{id}/acknowledge/"):  # fmt: skip
        assert path in paths, path
    assert "400" in paths["/api/v1/risk/limits/"]["post"]["responses"]
