"""API of notifications and the kill switch: strict input, the one error body, owner scoping, the schema."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.risk import killswitch, notifications
from apps.risk.models import KillSwitchActivation, NotificationChannel, NotificationDelivery, RiskProfile
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

CHANNELS = reverse("risk-api:notification-channel-list")
DELIVERIES = reverse("risk-api:notification-delivery-list")
STATUS = reverse("risk-api:kill-switch")
ENGAGE = reverse("risk-api:kill-switch-engage")
RELEASE = reverse("risk-api:kill-switch-release")
ACTIVATIONS = reverse("risk-api:kill-switch-activation-list")
SECRET = "whsec-0123456789abcdef"


def channel_url(pk: int, action: str = "") -> str:
    if action:
        return reverse(f"risk-api:notification-channel-{action}", args=[pk])
    return reverse("risk-api:notification-channel-detail", args=[pk])


def hook(user, **kw) -> NotificationChannel:
    values = {
        "name": "hook",
        "events": ["fill"],
        "url": "https://hooks.example.com/x",
        "secret": SECRET,
        **kw,
    }
    return notifications.notification_channel_create(user=user, kind="webhook", **values)


# ------------------------------------------------------------------- channels
def test_create_a_webhook_channel_and_never_see_its_secret_again(auth_client, user):
    body = {"kind": "webhook", "name": "ops", "events": ["fill", "kill_switch"],
            "url": "https://hooks.example.com/t", "secret": SECRET}  # fmt: skip
    response = auth_client.post(CHANNELS, body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["secret_set"] is True and data["secret_masked"].endswith("cdef")
    assert SECRET not in response.content.decode() and "secret" not in data
    assert data["events"] == ["fill", "kill_switch"] and data["enabled"] is True
    listed = auth_client.get(CHANNELS).json()
    assert listed["count"] == 1 and SECRET not in str(listed)


def test_patch_keeps_the_secret_unless_given_and_checks_the_merged_channel(auth_client, user):
    channel = hook(user)
    response = auth_client.patch(
        channel_url(channel.pk), {"events": ["bot_error"], "secret": ""}, format="json"
    )
    assert response.status_code == 200 and response.json()["events"] == ["bot_error"]
    channel.refresh_from_db()
    assert channel.secret == SECRET
    assert_error(
        auth_client.patch(channel_url(channel.pk), {"url": "notaurl", "kind": "email"}, format="json"),
        400, fields=["url", "kind"],
    )  # fmt: skip
    assert_error(
        auth_client.patch(channel_url(channel.pk), {"url": "ftp://x"}, format="json"), 400, fields="url"
    )


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, ["kind", "name", "events"]),
        ({"kind": "pager", "name": "x", "events": ["fill"]}, ["kind"]),
        ({"kind": "email", "name": "x", "events": ["lunch"], "email": "a@example.com"}, ["events"]),
        ({"kind": "email", "name": "x", "events": [], "email": "nope"}, ["events", "email"]),
        (
            {
                "kind": "webhook",
                "name": "x",
                "events": ["fill"],
                "url": "https://h.example.com",
                "secret": "short",
            },
            ["secret"],
        ),
        ({"kind": "telegram", "name": "x", "events": ["fill"]}, ["secret", "chat_id"]),
        (
            {"kind": "email", "name": "x", "events": ["fill"], "email": "a@example.com", "colour": "red"},
            ["colour"],
        ),
        (
            {"kind": "email", "name": "x", "events": "fill", "email": "a@example.com", "enabled": "maybe"},
            ["events", "enabled"],
        ),
    ],
)
def test_bad_channel_input_lists_every_bad_field(auth_client, body, fields):
    assert_error(auth_client.post(CHANNELS, body, format="json"), 400, fields=fields)
    assert not NotificationChannel.objects.exists()


def test_duplicate_channel_name_is_a_400(auth_client, user):
    hook(user, name="same")
    body = {"kind": "email", "name": "same", "events": ["fill"], "email": "a@example.com"}
    assert_error(auth_client.post(CHANNELS, body, format="json"), 400, fields="name")


def test_send_test_queues_a_delivery_and_takes_no_body(auth_client, user):
    channel = hook(user)
    response = auth_client.post(channel_url(channel.pk, "test"), format="json")
    assert response.status_code == 202 and response.json()["event"] == "test"
    assert NotificationDelivery.objects.filter(channel=channel, event="test").count() == 1
    assert_error(auth_client.post(channel_url(channel.pk, "test"), {"x": 1}, format="json"), 400, fields="x")


def test_other_users_channels_and_deliveries_are_404_and_unlisted(auth_client, user, other_user):
    theirs = hook(other_user)
    notifications.notify(other_user.pk, "fill", {"symbol": "BTC/USDT"})
    delivery = NotificationDelivery.objects.get()
    for response in (
        auth_client.get(channel_url(theirs.pk)),
        auth_client.patch(channel_url(theirs.pk), {"name": "mine"}, format="json"),
        auth_client.delete(channel_url(theirs.pk)),
        auth_client.post(channel_url(theirs.pk, "test")),
        auth_client.get(reverse("risk-api:notification-delivery-detail", args=[delivery.pk])),
        auth_client.get(channel_url(999999)),
    ):
        assert_error(response, 404, "not_found")
    assert auth_client.get(CHANNELS).json()["count"] == 0
    assert auth_client.get(DELIVERIES).json()["count"] == 0
    assert NotificationChannel.objects.filter(pk=theirs.pk, name="hook").exists()


def test_delete_a_channel(auth_client, user):
    channel = hook(user)
    assert auth_client.delete(channel_url(channel.pk)).status_code == 204
    assert not NotificationChannel.objects.exists()


# ----------------------------------------------------------------- deliveries
def test_deliveries_list_with_filters_and_attempts(auth_client, user):
    channel = hook(user, events=["fill", "bot_error"])
    notifications.notify(user.pk, "fill", {"symbol": "BTC/USDT"})
    notifications.notify(user.pk, "bot_error", {"message": "boom"})
    NotificationDelivery.objects.filter(event="bot_error").update(
        status="failed", attempts=1, last_error="HTTP 410",
        attempts_log=[{"at": "2026-01-01T00:00:00+00:00", "ok": False, "status_code": 410, "error": "HTTP 410", "duration_ms": 3}],
    )  # fmt: skip
    body = auth_client.get(DELIVERIES).json()
    assert body["count"] == 2 and body["results"][0]["channel_name"] == "hook"
    failed = auth_client.get(DELIVERIES, {"status": "failed", "channel": channel.pk}).json()["results"]
    assert [d["event"] for d in failed] == ["bot_error"] and failed[0]["attempts_log"][0][
        "status_code"
    ] == 410
    assert auth_client.get(DELIVERIES, {"event": "fill"}).json()["count"] == 1
    assert_error(
        auth_client.get(DELIVERIES, {"status": "lost", "event": "party", "channel": "x"}),
        400, fields=["status", "event", "channel"],
    )  # fmt: skip


# ---------------------------------------------------------------- kill switch
def test_engage_needs_confirm_true_and_refuses_unknown_fields(auth_client, user):
    assert_error(auth_client.post(ENGAGE, {}, format="json"), 400, fields="confirm")
    assert_error(auth_client.post(ENGAGE, {"confirm": False}, format="json"), 400, fields="confirm")
    assert_error(
        auth_client.post(ENGAGE, {"confirm": "perhaps", "close_positions": "x", "force": True}, format="json"),
        400, fields=["confirm", "close_positions", "force"],
    )  # fmt: skip
    assert_error(auth_client.post(ENGAGE, ["confirm"], format="json"), 400)
    assert not KillSwitchActivation.objects.exists()
    assert not RiskProfile.objects.filter(kill_switch=True).exists()


def test_engage_then_press_again_then_release(auth_client, user):
    assert auth_client.get(STATUS).json() == {"engaged": False, "activation": None}
    first = auth_client.post(ENGAGE, {"confirm": True}, format="json")
    assert first.status_code == 201, first.content
    body = first.json()
    assert body["engaged"] is True and body["engaged_by"] == user.email and body["failures"] == []
    again = auth_client.post(ENGAGE, {"confirm": True, "close_positions": True}, format="json")
    assert (
        again.status_code == 200
        and again.json()["id"] == body["id"]
        and again.json()["close_positions"] is True
    )
    status = auth_client.get(STATUS).json()
    assert status["engaged"] is True and status["activation"]["id"] == body["id"]

    assert_error(auth_client.post(RELEASE, {}, format="json"), 400, fields="confirm")
    assert_error(auth_client.post(RELEASE, {"confirm": True, "now": 1}, format="json"), 400, fields="now")
    released = auth_client.post(RELEASE, {"confirm": True}, format="json")
    assert released.status_code == 200 and released.json()["released_by"] == user.email
    assert released.json()["engaged"] is False
    assert_error(auth_client.post(RELEASE, {"confirm": True}, format="json"), 409, "kill_switch_not_engaged")
    assert auth_client.get(ACTIVATIONS).json()["count"] == 1


def test_activations_are_owner_scoped(auth_client, user, other_user):
    theirs, _ = killswitch.kill_switch_engage(user=other_user, actor=other_user)
    assert auth_client.get(ACTIVATIONS).json()["count"] == 0
    assert_error(auth_client.get(reverse("risk-api:kill-switch-activation-detail", args=[theirs.pk])), 404)
    assert_error(auth_client.get(reverse("risk-api:kill-switch-activation-detail", args=["abc"])), 404)
    # Releasing is per user: theirs stays on.
    assert_error(auth_client.post(RELEASE, {"confirm": True}, format="json"), 409)
    assert RiskProfile.objects.get(owner=other_user).kill_switch is True
    assert auth_client.get(STATUS).json()["engaged"] is False


def test_every_endpoint_needs_a_login(api_client):
    for method, url in (
        ("get", CHANNELS), ("post", CHANNELS), ("get", DELIVERIES), ("get", STATUS), ("post", ENGAGE),
        ("post", RELEASE), ("get", ACTIVATIONS),
    ):  # fmt: skip
        assert getattr(api_client, method)(url, {}, format="json").status_code in (401, 403)


def test_the_schema_documents_the_endpoints(auth_client):
    schema = auth_client.get(reverse("api-schema"), {"format": "json"}).json()
    paths = schema["paths"]
    for path in (
        "/api/v1/risk/notification-channels/", "/api/v1/risk/notification-channels/{id}/test/",
        "/api/v1/risk/notification-deliveries/", "/api/v1/risk/kill-switch/", "/api/v1/risk/kill-switch/engage/",
        "/api/v1/risk/kill-switch/release/", "/api/v1/risk/kill-switch/activations/{id}/",
    ):  # fmt: skip
        assert path in paths, path
    engage = schema["components"]["schemas"]["KillSwitchEngageRequest"]
    assert "confirm" in engage["required"]
