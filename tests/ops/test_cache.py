"""The Redis cache you can see: health, memory, hit ratio, keys by prefix, and clearing one family
of keys without touching Celery's (kombu queues and bindings, task results) or Channels' keys,
which live in the same Redis database. Embedded mode (local-memory cache) says what is missing."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from apps.ops import cachekeys
from tests.factories import UserFactory
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/ops/cache/"
PARKED_QUEUE = "ops-test-parked"  # no worker consumes it


@pytest.fixture
def staff_client() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    return client


@pytest.fixture
def redis_cache():
    if not settings.REDIS_URL:
        pytest.skip("needs REDIS_URL (a real Redis); embedded mode is tested below")
    client = cachekeys.redis_client()
    yield client
    client.close()


@pytest.fixture
def broker_and_layer_keys(redis_cache):
    """Real keys of Celery and Channels in the cache's Redis database: a message parked in a queue
    (with kombu's binding), a task result, a channel-layer group; plus the default names' keys."""
    from config.celery import app

    tag = uuid.uuid4().hex[:8]
    app.send_task("apps.core.tasks.heartbeat", queue=PARKED_QUEUE)
    async_to_sync(get_channel_layer().group_add)(f"ops-test-{tag}", f"specific.{tag}!x")
    extra = [f"celery-task-meta-{tag}", f"asgi:group:{tag}", f"_kombu.binding.{tag}"]
    for key in extra:
        redis_cache.set(key, "kept")
    before = {key.decode() for key in redis_cache.scan_iter(count=1000)}
    protected = {key for key in before if not key.startswith(cachekeys.cache_key_prefix())}
    assert PARKED_QUEUE in protected and any(k.startswith("_kombu.binding.") for k in protected)
    assert any(":group:ops-test-" in k for k in protected)
    yield protected
    redis_cache.delete(PARKED_QUEUE, *extra)
    async_to_sync(get_channel_layer().group_discard)(f"ops-test-{tag}", f"specific.{tag}!x")


def test_overview_reports_health_memory_hit_ratio_and_keys_by_prefix(staff_client, redis_cache):
    tag = uuid.uuid4().hex[:8]
    cache.set(f"marketdata:ticker:{tag}", {"last": 1})
    cache.set(f"marketdata:book:{tag}:10", {"bids": []})
    cache.set(f"login-failures:{tag}", 3)
    cache.set(f"zzz-unknown:{tag}", 1)
    cache.get(f"marketdata:ticker:{tag}")  # a hit
    cache.get(f"marketdata:ticker:missing-{tag}")  # a miss
    body = staff_client.get(URL).json()
    assert body["available"] is True and body["ping_ms"] >= 0
    assert body["memory"]["used_memory"] > 0 and body["memory"]["used_memory_human"]
    assert body["hits"] >= 1 and body["misses"] >= 1 and 0 < body["hit_ratio"] < 1
    assert body["cache_key_prefix"] == cache.make_key("")
    groups = {group["key"]: group for group in body["groups"]}
    assert groups["prices"]["keys"] >= 1 and groups["orderbooks"]["keys"] >= 1
    assert groups["marketdata"]["keys"] >= groups["prices"]["keys"] + groups["orderbooks"]["keys"]
    assert groups["prices"]["clearable"] and not groups["login"]["clearable"]
    assert body["other_prefixes"].get("zzz-unknown", 0) >= 1
    assert body["db_keys"] >= body["cache_keys_scanned"]


def test_the_key_scan_stops_at_its_cap(staff_client, redis_cache, monkeypatch):
    for n in range(3):
        cache.set(f"marketdata:ticker:cap-{n}", n)
    monkeypatch.setattr(cachekeys, "SCAN_CAP", 2)
    body = staff_client.get(URL).json()
    assert body["truncated"] is True and body["cache_keys_scanned"] == 2


def test_clearing_prices_deletes_only_price_keys_never_celery_or_channels_keys(
    staff_client, redis_cache, broker_and_layer_keys
):
    tag = uuid.uuid4().hex[:8]
    cache.set(f"marketdata:ticker:{tag}", {"last": 1})
    cache.set(f"marketdata:book:{tag}:10", {"bids": []})
    cache.set(f"login-failures:{tag}", 3)

    response = staff_client.post(URL + "clear/", {"group": "prices"})
    assert response.status_code == 200, response.content
    assert response.json()["deleted"] >= 1 and response.json()["prefix"] == "marketdata:ticker:"
    assert cache.get(f"marketdata:ticker:{tag}") is None
    assert cache.get(f"marketdata:book:{tag}:10") == {"bids": []}

    assert staff_client.post(URL + "clear/", {"group": "marketdata"}).status_code == 200
    assert cache.get(f"marketdata:book:{tag}:10") is None
    assert cache.get(f"login-failures:{tag}") == 3  # counters are never cleared

    after = {key.decode() for key in redis_cache.scan_iter(count=1000)}
    assert broker_and_layer_keys <= after, broker_and_layer_keys - after
    assert redis_cache.llen(PARKED_QUEUE) == 1  # the parked message is still there


def test_is_protected_refuses_broker_and_layer_keys():
    prefix = cachekeys.cache_key_prefix()
    for key in ("_kombu.binding.default", "celery-task-meta-1", "asgi:group:x", "default", "unacked"):
        assert cachekeys.is_protected(key), key
    channels_prefix = settings.CHANNEL_LAYERS["default"].get("CONFIG", {}).get("prefix", "asgi")
    assert cachekeys.is_protected(f"{channels_prefix}:group:user.1")
    assert not cachekeys.is_protected(f"{prefix}marketdata:ticker:1")


def test_embedded_mode_says_the_cache_is_in_process_and_refuses_to_clear(staff_client, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    body = staff_client.get(URL).json()
    assert body["available"] is False and "embedded mode" in body["detail"]
    assert_error(staff_client.post(URL + "clear/", {"group": "prices"}), 503, "unavailable")


def test_cache_page_for_staff_only_and_its_clear_form(client, user, redis_cache):
    client.force_login(user)
    assert client.get(reverse("ops:cache")).status_code == 403
    client.force_login(UserFactory(is_staff=True))
    html = client.get(reverse("ops:cache")).content.decode()
    assert 'id="cache-health"' in html and 'data-group="prices"' in html
    cache.set("marketdata:ticker:page", 1)
    response = client.post(reverse("ops:cache-clear"), {"group": "prices"}, follow=True)
    assert "Cleared" in response.content.decode() and cache.get("marketdata:ticker:page") is None


def test_cache_page_in_embedded_mode_explains_instead_of_failing(client, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    client.force_login(UserFactory(is_staff=True))
    response = client.get(reverse("ops:cache"))
    assert response.status_code == 200
    assert 'id="cache-unavailable"' in response.content.decode()
