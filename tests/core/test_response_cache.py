"""The per-user cache of polled reads (apps/core/api/response_cache.py).

An answer is served again only while no table it read has been written; every way of
writing (save, QuerySet.update, bulk_create, delete, raw SQL) drops it, at commit when in a
transaction; the key holds the user, the URL and what the rendering depends on. These run on
whatever cache the suite has: the local memory cache without services (one process), Redis
with them.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from apps.core.api import response_cache
from apps.orders.models import Order
from tests.factories import OrderFactory, UserFactory

ORDERS = "/api/v1/orders/"


@pytest.fixture(autouse=True)
def _cache_on(settings):
    settings.API_RESPONSE_CACHE = True
    response_cache._learned.clear()


def _client(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _ids(client, path=ORDERS) -> list[int]:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def _warm(client, path=ORDERS) -> None:
    """The first answer teaches the tables, the second is kept."""
    _ids(client, path)
    _ids(client, path)


def _order_queries(client, path=ORDERS) -> tuple[int, list[int]]:
    with CaptureQueriesContext(connection) as queries:
        ids = _ids(client, path)
    return sum('"orders_order"' in q["sql"] for q in queries.captured_queries), ids


@pytest.mark.django_db
def test_an_unchanged_answer_is_served_without_running_the_view(user):
    orders = OrderFactory.create_batch(3, owner=user)
    client = _client(user)
    first = client.get(ORDERS).json()
    _ids(client)
    read, ids = _order_queries(client)
    assert read == 0
    assert ids == [o.pk for o in sorted(orders, key=lambda o: (o.created_at, o.pk), reverse=True)]
    assert client.get(ORDERS).json() == first


def _save(user, order):
    OrderFactory(owner=user)


def _update(user, order):
    Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)


def _bulk_create(user, order):
    Order.objects.bulk_create([Order(owner=user, paper_account=order.paper_account, exchange="binance",
                                     symbol="ETH/USDT", side="sell", type="limit", amount=Decimal("1"),
                                     price=Decimal("3000"), status="open")])  # fmt: skip


def _delete(user, order):
    Order.objects.filter(pk=order.pk).delete()


def _raw_sql(user, order):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE orders_order SET status = %s WHERE id = %s", ["cancelled", order.pk])


@pytest.mark.django_db
@pytest.mark.parametrize("write", [_save, _update, _bulk_create, _delete, _raw_sql])
def test_every_way_of_writing_drops_the_answer(user, write):
    order = OrderFactory(owner=user)
    client = _client(user)
    _warm(client)
    before = client.get(ORDERS).json()
    write(user, order)
    read, _ids_after = _order_queries(client)
    assert read > 0  # the view ran again
    after = client.get(ORDERS).json()
    assert after != before
    # What the view computes from the database now, without the cache:
    response_cache._learned.clear()
    assert after == client.get(ORDERS).json()


@pytest.mark.django_db
def test_each_user_has_their_own_answers(user, other_user):
    mine = OrderFactory(owner=user)
    theirs = OrderFactory(owner=other_user)
    me, them = _client(user), _client(other_user)
    _warm(me)
    _warm(them)
    assert _ids(me) == [mine.pk]
    assert _ids(them) == [theirs.pk]


@pytest.mark.django_db
def test_the_query_string_is_part_of_the_key(user):
    open_order = OrderFactory(owner=user)
    done = OrderFactory(owner=user, status=Order.Status.FILLED)
    client = _client(user)
    for _ in range(3):
        assert _ids(client, ORDERS + "?status=open") == [open_order.pk]
        assert _ids(client, ORDERS + "?status=filled") == [done.pk]


@pytest.mark.django_db
def test_dates_follow_the_time_zone_they_render_in(user):
    """A session renders in the user's time zone, a token in UTC: the same URL, two answers."""
    user.timezone = "Asia/Tokyo"
    user.save()
    OrderFactory(owner=user)
    session = APIClient()
    session.force_login(user)
    token = _client(user)
    for _ in range(3):
        local = session.get(ORDERS).json()["results"][0]["created_at"]
        utc = token.get(ORDERS).json()["results"][0]["created_at"]
        assert local.endswith("+09:00"), local
        assert utc.endswith("Z") or utc.endswith("+00:00"), utc


@pytest.mark.django_db
def test_an_own_profile_change_shows_at_once(user):
    client = _client(user)
    for _ in range(2):
        client.get("/api/v1/auth/me/")
    response = client.patch("/api/v1/auth/me/", {"display_name": "Renamed"}, format="json")
    assert response.status_code == 200
    assert client.get("/api/v1/auth/me/").json()["display_name"] == "Renamed"


def _version(table: str):
    return cache.get(response_cache.TABLE_PREFIX + table)


@pytest.fixture
def kept_order(transactional_db):
    """A user's order, its orders list kept, and the orders table's version then."""
    user = UserFactory()
    order = OrderFactory(owner=user)
    client = _client(user)
    _warm(client)
    return client, order, _version("orders_order")


def test_a_write_in_a_transaction_counts_when_it_commits(kept_order):
    client, order, before = kept_order
    with transaction.atomic():
        Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
        # Not yet committed: other connections still read the old row, the answer stays.
        assert _version("orders_order") == before
    assert _version("orders_order") != before
    assert client.get(ORDERS).json()["results"][0]["status"] == "cancelled"


def test_a_rolled_back_write_changes_nothing(kept_order):
    client, order, before = kept_order
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
        raise RuntimeError("abandon")
    assert _version("orders_order") == before
    # A write after a savepoint was rolled back still counts at commit.
    with transaction.atomic():
        try:
            with transaction.atomic():
                Order.objects.filter(pk=order.pk).update(status=Order.Status.FILLED)
                raise RuntimeError("inner")
        except RuntimeError:
            pass
        Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
    assert _version("orders_order") != before
    assert client.get(ORDERS).json()["results"][0]["status"] == "cancelled"


@pytest.mark.django_db
def test_lost_versions_are_a_miss(user):
    """A version evicted or flushed is unknown: the kept answer is not served."""
    order = OrderFactory(owner=user)
    client = _client(user)
    _warm(client)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(response_cache, "enabled", lambda: False)  # a write the cache does not see...
        Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
    cache.delete_many([response_cache.TABLE_PREFIX + t for t in response_cache._tables()])  # ...and a flush
    assert client.get(ORDERS).json()["results"][0]["status"] == "cancelled"


@pytest.mark.django_db
def test_the_cached_views_read_no_candles(user, monkeypatch):
    """The candle store's binary reads and writes bypass Django's connection (and so the table
    versions): no cached view may read candles."""
    from apps.marketdata import store

    reads = []
    real_read = store.read
    monkeypatch.setattr(store, "read", lambda *a, **k: reads.append(a) or real_read(*a, **k))
    OrderFactory(owner=user)
    client = _client(user)
    for path in [ORDERS, "/api/v1/orders/positions/", "/api/v1/orders/trades/", "/api/v1/bots/",
                 "/api/v1/portfolio/summary/", "/api/v1/portfolio/positions/", "/api/v1/portfolio/balances/",
                 "/api/v1/portfolio/exposure/", "/api/v1/market-data/markets/", "/api/v1/auth/me/"]:  # fmt: skip
        assert client.get(path).status_code == 200, path
    assert len(response_cache._learned) == 10, sorted(response_cache._learned)
    assert reads == []
    for action, tables in response_cache._learned.items():
        assert store.TABLE not in tables, (action, tables)


@pytest.mark.django_db(transaction=True)
def test_a_write_in_another_process_drops_the_servers_answer(live_server_url):
    """The real server keeps the answer; this process (a worker, a shell) writes: the next read sees it."""
    import json
    import urllib.request

    from rest_framework_simplejwt.tokens import AccessToken

    from apps.ops import cachekeys

    user = UserFactory()
    order = OrderFactory(owner=user)
    request = urllib.request.Request(
        f"{live_server_url}{ORDERS}", headers={"Authorization": f"Bearer {AccessToken.for_user(user)}"}
    )

    def statuses() -> list[str]:
        with urllib.request.urlopen(request, timeout=30) as response:
            return [row["status"] for row in json.load(response)["results"]]

    assert statuses() == statuses() == statuses() == ["open"]
    client = cachekeys.redis_client()
    try:  # the server kept its answer (in the Redis this process writes the versions to)
        pattern = f"{cachekeys.cache_key_prefix()}{response_cache.ENTRY_PREFIX}{user.pk}:*"
        assert list(client.scan_iter(match=pattern))
    finally:
        client.close()
    with transaction.atomic():
        Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)
    assert statuses() == ["cancelled"]
    OrderFactory(owner=user, status=Order.Status.FILLED)
    assert sorted(statuses()) == ["cancelled", "filled"]


@pytest.mark.django_db
def test_a_redis_outage_fails_no_write_and_serves_nothing_kept(settings, tmp_path, user):
    """Redis stopped (a private redis-server): writes succeed, reads are computed; back, it keeps answers again."""
    import shutil

    from tests.support import faults

    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (apt-get install redis-server)")
    redis_server = faults.PrivateRedis(tmp_path)
    redis_server.start()
    try:
        settings.CACHES = {
            "default": {
                "BACKEND": "apps.core.cache.RedisCache",
                "LOCATION": redis_server.url(),
                "KEY_PREFIX": "t",
            }
        }
        order = OrderFactory(owner=user)
        client = _client(user)
        for _ in range(3):  # learn the tables, start their versions in this Redis, keep the answer
            _ids(client)
        assert _order_queries(client)[0] == 0
        redis_server.stop()
        Order.objects.filter(pk=order.pk).update(status=Order.Status.CANCELLED)  # no exception
        assert response_cache._unsent == {"orders_order"}
        read, _ = _order_queries(client)
        assert read > 0
        assert client.get(ORDERS).json()["results"][0]["status"] == "cancelled"
        redis_server.start()  # empty: no persistence
        _ids(client)  # the unsent version is written first
        assert response_cache._unsent == set()
        _ids(client)  # the other versions are started
        _ids(client)  # the answer is kept again
        read, _ = _order_queries(client)
        assert read == 0
        assert client.get(ORDERS).json()["results"][0]["status"] == "cancelled"
    finally:
        response_cache._unsent.clear()
        redis_server.stop()
