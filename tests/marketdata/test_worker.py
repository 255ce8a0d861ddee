"""The import job and the price poller on a real Celery worker (Redis broker, PostgreSQL)."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from apps.marketdata import jobs, services
from apps.marketdata.models import Candle, ImportJob
from apps.marketdata.tasks import poll_prices

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.worker]


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_import_job_runs_on_the_worker(celery_worker, user, shared_data_dir, settings, tmp_path):
    # The upload lives where the worker can read it (same machine, shared VAR_DIR in production).
    path = tmp_path / "binance_XRPETH_5m.csv.gz"
    shutil.copy(shared_data_dir / "ohlcv" / "binance_XRPETH_5m.csv.gz", path)
    job = jobs.job_create(
        user=user,
        kind="import",
        exchange="binance",
        symbol="XRP/ETH",
        timeframe="5m",
        params={"path": str(path)},
    )
    assert wait_for(lambda: ImportJob.objects.get(id=job.id).is_finished)
    job.refresh_from_db()
    assert job.status == "completed", job.error
    assert job.inserted == 706 and job.progress == 100
    assert Candle.objects.filter(market__symbol="XRP/ETH").count() == 706


def test_price_poller_on_the_worker_publishes_to_the_watcher(celery_worker, user, shared_data_dir):
    import asyncio

    from channels.layers import get_channel_layer

    from apps.core.events import user_group

    services.candles_import_file(
        path=shared_data_dir / "ohlcv" / "binance_XRPETH_5m.csv.gz", symbol="XRP/ETH", timeframe="5m"
    )
    services.subscription_create(user=user, exchange="binance", symbol="XRP/ETH")
    layer = get_channel_layer()

    async def receive_price():
        channel = await layer.new_channel()
        await layer.group_add(user_group(user.id), channel)
        poll_prices.apply_async(queue="default")
        message = await asyncio.wait_for(layer.receive(channel), timeout=60)
        await layer.group_discard(user_group(user.id), channel)
        return json.loads(message["text"])

    # Its own thread and loop: Playwright (browser tests in the same session) keeps a loop on this one.
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(event=asyncio.run(receive_price())))
    thread.start()
    thread.join(90)
    event = result["event"]
    assert event["type"] == "price" and event["payload"]["symbol"] == "XRP/ETH"
    assert event["payload"]["source"] == "replay" and float(event["payload"]["last"]) > 0
