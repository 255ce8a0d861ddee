from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.risk import services
from apps.risk.killswitch import kill_switch_engage
from apps.risk.models import KillSwitchActivation, NotificationChannel, NotificationDelivery, RiskProfile
from apps.risk.notifications import notification_channel_create

pytestmark = pytest.mark.django_db


def test_risk_page_shows_defaults(client, user):
    client.force_login(user)
    response = client.get(reverse("risk:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "these are the defaults" in html and "No limit" in html
    assert not RiskProfile.objects.exists()


def test_risk_page_shows_saved_limits_and_kill_switch(client, user):
    services.risk_profile_update(
        user=user,
        currency="USDT",
        max_position_notional=Decimal("12500.000"),
        max_daily_loss=None,
        max_leverage=Decimal("2"),
        max_open_orders=7,
    )
    kill_switch_engage(user=user, actor=user, source="page")
    client.force_login(user)
    html = client.get(reverse("risk:index")).content.decode()
    assert "12,500" in html and "Kill switch ON" in html


def test_risk_form_saves_limits(client, user):
    client.force_login(user)
    data = {
        "currency": "usdt",
        "max_position_notional": "5000",
        "max_daily_loss": "",
        "max_leverage": "2",
        "max_open_orders": "10",
    }
    response = client.post(reverse("risk:index"), data)
    assert response.status_code == 302
    profile = RiskProfile.objects.get(owner=user)
    assert profile.max_position_notional == Decimal("5000") and profile.max_daily_loss is None
    assert profile.currency == "USDT" and profile.kill_switch is False


def test_risk_form_leaves_an_engaged_kill_switch_on(client, user):
    kill_switch_engage(user=user, actor=user, source="page")
    client.force_login(user)
    data = {"currency": "USDT", "max_leverage": "1", "max_open_orders": "3"}
    assert client.post(reverse("risk:index"), data).status_code == 302
    profile = RiskProfile.objects.get(owner=user)
    assert profile.kill_switch is True and profile.max_open_orders == 3


def test_risk_form_shows_the_services_errors_on_their_fields(client, user):
    client.force_login(user)
    data = {"currency": "USDT", "max_position_notional": "-1", "max_leverage": "500", "max_open_orders": "0"}
    response = client.post(reverse("risk:index"), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert {"max_position_notional", "max_leverage", "max_open_orders"} <= set(errors)
    assert not RiskProfile.objects.filter(owner=user).exists()


def test_kill_switch_button_keeps_the_other_limits(client, user):
    services.risk_profile_update(
        user=user,
        currency="USDT",
        max_position_notional=Decimal("900"),
        max_daily_loss=None,
        max_leverage=Decimal("1"),
        max_open_orders=5,
    )
    client.force_login(user)
    # The button is guarded: typed confirmation to engage, a ticked box to release.
    engage = {"engaged": "on", "confirm_text": "STOP"}
    assert client.post(reverse("risk:kill-switch"), engage).status_code == 302
    profile = RiskProfile.objects.get(owner=user)
    assert profile.kill_switch is True and profile.max_position_notional == Decimal("900")
    client.post(reverse("risk:kill-switch"), {"engaged": "off", "confirm": "on"})
    profile.refresh_from_db()
    assert profile.kill_switch is False
    assert client.get(reverse("risk:kill-switch")).status_code == 405


def test_risk_page_shows_the_score_exposure_limits_and_alerts(client, user):
    from django.utils import timezone

    from apps.orders.models import Position
    from apps.risk.models import RiskAlert, RiskLimit
    from tests.factories import PaperAccountFactory

    account = PaperAccountFactory(user=user, initial_balances={"USDT": "9000", "ETH": "1"})
    Position.objects.create(
        owner=user, paper_account=account, symbol="ETH/USDT", side="long", size=Decimal("1"),
        average_entry=Decimal("1000"), mark_price=Decimal("1000"),
    )  # fmt: skip
    RiskLimit.objects.create(owner=user, kind="order_notional", value=Decimal("750"))
    RiskAlert.objects.create(
        owner=user, key="monitor:x", kind="drawdown", severity="critical", message="Drawdown: 30% from peak",
        last_seen_at=timezone.now(),
    )  # fmt: skip
    client.force_login(user)
    html = client.get(reverse("risk:index")).content.decode()
    assert 'id="risk-score"' in html and "Exposure by asset" in html
    assert "<td>ETH</td>" in html and "10%" in html  # 1000 of 10000 equity
    assert "Max order notional" in html and "750" in html
    assert "Drawdown: 30% from peak" in html and "Acknowledge" in html
    assert "risk/risk.js" in html


def test_limit_form_adds_a_limit_or_shows_the_services_errors(client, user):
    from apps.risk.models import RiskLimit

    client.force_login(user)
    response = client.post(
        reverse("risk:limit-create"), {"kind": "drawdown", "value": "0.25", "action": "reject"}
    )
    assert response.status_code == 302
    assert RiskLimit.objects.get(owner=user).value == Decimal("0.25")
    response = client.post(
        reverse("risk:limit-create"), {"kind": "drawdown", "value": "3", "action": "reject"}
    )
    assert response.status_code == 400 and "value" in response.context["limit_form"].errors
    assert RiskLimit.objects.count() == 1


def test_limit_delete_and_alert_acknowledge_are_owner_scoped(client, user, other_user):
    from django.utils import timezone

    from apps.risk.models import RiskAlert, RiskLimit

    mine = RiskLimit.objects.create(owner=user, kind="drawdown", value=Decimal("0.2"))
    theirs = RiskLimit.objects.create(owner=other_user, kind="drawdown", value=Decimal("0.2"))
    alert = RiskAlert.objects.create(owner=other_user, key="k", kind="drawdown", severity="info", message="m",
                                     last_seen_at=timezone.now())  # fmt: skip
    client.force_login(user)
    assert client.post(reverse("risk:limit-delete", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("risk:alert-acknowledge", args=[alert.pk])).status_code == 404
    assert client.post(reverse("risk:limit-delete", args=[mine.pk])).status_code == 302
    assert list(RiskLimit.objects.values_list("pk", flat=True)) == [theirs.pk]


def test_kill_switch_button_does_nothing_without_its_confirmation(client, user):
    client.force_login(user)
    response = client.post(reverse("risk:kill-switch"), {"engaged": "on", "confirm_text": "stp"}, follow=True)
    assert "type STOP to confirm" in response.content.decode()
    assert not RiskProfile.objects.filter(owner=user, kill_switch=True).exists()
    assert not KillSwitchActivation.objects.exists()
    client.post(reverse("risk:kill-switch"), {"engaged": "on", "confirm_text": "STOP"})
    response = client.post(reverse("risk:kill-switch"), {"engaged": "off"}, follow=True)
    assert "tick the box" in response.content.decode()
    assert RiskProfile.objects.get(owner=user).kill_switch is True


def test_engaged_kill_switch_panel_shows_the_audit_and_the_release(client, user):
    activation, _ = kill_switch_engage(user=user, actor=user, source="page")
    client.force_login(user)
    html = client.get(reverse("risk:index")).content.decode()
    assert "Kill switch ON" in html and "Release kill switch" in html
    assert "0 bot(s) stopped, 0 order(s) cancelled" in html
    assert activation.source == "page"


def test_notification_settings_add_test_and_delete_a_channel(client, user, other_user):
    client.force_login(user)
    data = {
        "kind": "webhook", "name": "ops hook", "events": ["fill", "kill_switch"],
        "url": "https://hooks.example.com/t", "secret": "s3cret-signing-key-123",
    }  # fmt: skip
    response = client.post(reverse("risk:notification-channel-create"), data, follow=True)
    channel = NotificationChannel.objects.get(owner=user)
    html = response.content.decode()
    assert "ops hook" in html and "s3cret-signing-key-123" not in html and "•" in html
    response = client.post(reverse("risk:notification-channel-test", args=[channel.pk]), follow=True)
    assert NotificationDelivery.objects.filter(channel=channel, event="test").exists()
    assert "Test message queued" in response.content.decode()
    # Another user's channel is a 404; bad input is shown, nothing saved.
    theirs = notification_channel_create(
        user=other_user, kind="email", name="x", events=["fill"], email="x@example.com"
    )
    assert client.post(reverse("risk:notification-channel-delete", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("risk:notification-channel-test", args=[theirs.pk])).status_code == 404
    bad = client.post(
        reverse("risk:notification-channel-create"), {**data, "secret": "short", "name": "b"}, follow=True
    )
    assert "signing secret" in bad.content.decode()
    assert NotificationChannel.objects.filter(owner=user).count() == 1
    client.post(reverse("risk:notification-channel-delete", args=[channel.pk]))
    assert not NotificationChannel.objects.filter(owner=user).exists()


def test_risk_overview_shows_money_to_the_cent(client, user):
    """Found trying the platform: the equity card printed 18 places and ran into its neighbour."""
    from tests.factories import PaperAccountFactory

    PaperAccountFactory(user=user, initial_balances={"USDT": "10980.073559184860599217"})
    client.force_login(user)
    html = client.get(reverse("risk:index")).content.decode()
    assert "10,980.07" in html and "10,980.0735" not in html
