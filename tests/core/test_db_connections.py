"""PostgreSQL connections stay bounded under concurrent ASGI requests (the pool, not per-thread ones).

The probe found persistent per-thread connections under daphne: 16 clients
exhausted PostgreSQL's 100 connections. benchmarks/db_connections.py measures
the figures; this keeps the bound.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from tests.factories import OrderFactory, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

CLIENTS = 24


def test_postgresql_uses_a_bounded_pool_and_no_persistent_connections():
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL (SQLite has no connection limit)")
    assert db["CONN_MAX_AGE"] == 0
    assert 0 < db["OPTIONS"]["pool"]["max_size"] <= 20


def client_connections() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return {row[0] for row in cursor.fetchall()}


def test_concurrent_api_requests_under_daphne_stay_within_the_pool(live_server_url):
    user = UserFactory()
    for k in range(5):
        OrderFactory(owner=user, price=Decimal(60000 + k))
    token = str(AccessToken.for_user(user))
    request = urllib.request.Request(
        f"{live_server_url}/api/v1/orders/", headers={"Authorization": f"Bearer {token}"}
    )

    def get(_: int) -> int:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status

    get(0)  # the server's pool is open
    before = client_connections()
    peak: set[int] = set()
    done = threading.Event()

    def sample():
        try:
            while not done.is_set():
                peak.update(client_connections() - before)
                time.sleep(0.02)
        finally:
            connection.close()  # this thread's connection goes back to the pool

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
            statuses = list(pool.map(get, range(CLIENTS * 3)))
    finally:
        done.set()
        sampler.join()
    assert statuses == [200] * (CLIENTS * 3)
    # At most the pool's size in new connections, however many requests ran at once.
    assert len(peak) <= settings.DATABASES["default"]["OPTIONS"]["pool"]["max_size"]
