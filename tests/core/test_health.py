from __future__ import annotations

import pytest


def test_liveness(client):
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readiness_reports_each_check_and_fails_without_worker(client, settings):
    # No worker is running for this test: readiness must say so (503), not pretend.
    settings.EMBEDDED = True
    response = client.get("/health/ready/")
    body = response.json()
    assert response.status_code == 503
    assert body["checks"]["database"]["ok"] is True
    # A message went through the channel layer and came back (what live events use).
    assert body["checks"]["channel_layer"]["ok"] is True, body["checks"]["channel_layer"]
    assert body["checks"]["celery"]["ok"] is False
    assert "embedded worker" in body["checks"]["celery"]["error"]
