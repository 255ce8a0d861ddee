"""Risk profile API: defaults without a write, full replacement with validated limits."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from apps.risk.models import RiskProfile
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

URL = reverse("risk-api:profile")


def limits(**overrides):
    data = {
        "currency": "usdt",
        "max_position_notional": "2500.50",
        "max_daily_loss": "150",
        "max_leverage": "3",
        "max_open_orders": 20,
        "kill_switch": False,
    }
    data.update(overrides)
    return data


def test_get_answers_the_defaults_without_creating_a_profile(auth_client):
    body = auth_client.get(URL).json()
    assert body["max_position_notional"] is None
    assert body["max_daily_loss"] is None
    assert Decimal(body["max_leverage"]) == 1
    assert body["max_open_orders"] == 50
    assert body["kill_switch"] is False
    assert not RiskProfile.objects.exists()


def test_put_creates_then_replaces_the_profile(auth_client, user):
    response = auth_client.put(URL, limits(), format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["currency"] == "USDT"
    assert Decimal(body["max_position_notional"]) == Decimal("2500.50")

    response = auth_client.put(URL, limits(max_daily_loss=None, kill_switch=True), format="json")
    assert response.status_code == 200, response.content
    profile = RiskProfile.objects.get(owner=user)
    assert profile.max_daily_loss is None and profile.kill_switch is True
    assert RiskProfile.objects.count() == 1
    assert auth_client.get(URL).json()["kill_switch"] is True


def test_profiles_are_per_user(auth_client, api_client, other_user):
    auth_client.put(URL, limits(kill_switch=True), format="json")
    api_client.force_authenticate(other_user)
    assert api_client.get(URL).json()["kill_switch"] is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_position_notional", "0"),
        ("max_position_notional", "-10"),
        ("max_position_notional", "1e30"),
        ("max_position_notional", "0.0000000000000000001"),
        ("max_daily_loss", "abc"),
        ("max_daily_loss", "NaN"),
        ("max_leverage", "0.5"),
        ("max_leverage", "126"),
        ("max_leverage", "2.555"),
        ("max_open_orders", 0),
        ("max_open_orders", "many"),
        ("currency", "US DOLLAR"),
        ("kill_switch", "perhaps"),
    ],
)
def test_bad_limits_are_400_naming_the_field(auth_client, field, value):
    assert_error(auth_client.put(URL, limits(**{field: value}), format="json"), 400, "invalid", field)
    assert not RiskProfile.objects.exists()


def test_put_needs_every_field(auth_client):
    data = limits()
    del data["max_leverage"]
    assert_error(auth_client.put(URL, data, format="json"), 400, "invalid", "max_leverage")
    assert_error(auth_client.put(URL, [], format="json"), 400, "invalid")


def test_patch_and_anonymous_are_refused(auth_client, api_client):
    assert_error(auth_client.patch(URL, {"kill_switch": True}, format="json"), 405, "method_not_allowed")
    assert_error(api_client.get(URL), 401, "not_authenticated")


def test_database_refuses_out_of_range_limits(user):
    with pytest.raises(IntegrityError), transaction.atomic():
        RiskProfile.objects.create(owner=user, max_leverage=Decimal("0"))


def test_unknown_fields_are_refused_and_nothing_is_saved(auth_client):
    assert_error(auth_client.put(URL, limits(max_lverage="2"), format="json"), 400, "invalid", "max_lverage")
    assert not RiskProfile.objects.exists()


def test_the_unsaved_defaults_null_updated_at_is_in_the_schema(auth_client):
    from drf_spectacular.generators import SchemaGenerator

    assert auth_client.get(URL).json()["updated_at"] is None
    schema = SchemaGenerator().get_schema(request=None, public=True)
    ref = schema["paths"]["/api/v1/risk/profile/"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    component = schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[-1]]
    assert component["properties"]["updated_at"].get("nullable") is True


def test_put_engages_and_releases_through_the_kill_switch_with_its_audit(auth_client, user):
    from apps.bots.models import Bot
    from apps.risk.models import KillSwitchActivation
    from tests.factories import BotFactory

    bot = BotFactory(owner=user, status=Bot.Status.RUNNING)
    auth_client.put(URL, limits(), format="json")
    response = auth_client.put(URL, limits(kill_switch=True), format="json")
    assert response.status_code == 200 and response.json()["kill_switch"] is True
    [activation] = KillSwitchActivation.objects.filter(owner=user)
    assert (activation.source, activation.engaged_by, activation.released_at) == ("api", user, None)
    assert activation.bots_stopped == [bot.pk]  # not a bare flag: the bots were stopped
    bot.refresh_from_db()
    assert bot.status in (Bot.Status.STOPPING, Bot.Status.STOPPED)
    # The same value again is no second press; other limits still change.
    assert auth_client.put(URL, limits(kill_switch=True, max_open_orders=9), format="json").status_code == 200
    assert KillSwitchActivation.objects.filter(owner=user).count() == 1
    assert RiskProfile.objects.get(owner=user).max_open_orders == 9
    response = auth_client.put(URL, limits(kill_switch=False), format="json")
    assert response.status_code == 200 and response.json()["kill_switch"] is False
    activation.refresh_from_db()
    assert activation.released_at is not None and activation.released_by == user
    # Bad limits change nothing, the kill switch included.
    bad = auth_client.put(URL, limits(kill_switch=True, max_leverage="0"), format="json")
    assert_error(bad, 400, fields=["max_leverage"])
    assert RiskProfile.objects.get(owner=user).kill_switch is False
    assert KillSwitchActivation.objects.filter(owner=user).count() == 1
