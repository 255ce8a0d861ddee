"""A Celery app for the operations worker tests: the project's app plus two test tasks.

``celery -A tests.ops.worker_app worker --queues=ops-test`` runs them (and every real task):

* ``ops_test.sleep(seconds)`` keeps a worker busy, so inspect shows it running;
* ``ops_test.flaky(marker)`` fails, retrying twice, while the cache holds ``ops-test:fail:<marker>``
  (then ends in the dead-letter list); once the key is gone it succeeds and counts its runs in
  ``ops-test:runs:<marker>``.
"""

from __future__ import annotations

import time

from django.core.cache import cache

from config.celery import app

__all__ = ["app"]

RETRIES = 2


@app.task(name="ops_test.sleep")
def sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@app.task(name="ops_test.flaky", bind=True, max_retries=RETRIES)
def flaky(self, marker: str) -> str:
    if cache.get(f"ops-test:fail:{marker}"):
        try:
            raise RuntimeError(f"flaky {marker} failed")
        except RuntimeError as exc:
            raise self.retry(exc=exc, countdown=0.2) from exc
    cache.add(f"ops-test:runs:{marker}", 0, 300)
    cache.incr(f"ops-test:runs:{marker}")
    return "ok"
