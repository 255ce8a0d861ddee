from __future__ import annotations

import io

import pytest

from apps.marketdata.models import Candle, ImportJob, Subscription
from apps.marketdata.services import market_ensure, subscription_create

pytestmark = pytest.mark.django_db
BASE = "/api/v1/market-data"


def err(response):
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "fields"}
    return body["error"]


def test_requires_authentication(api_client):
    assert api_client.get(f"{BASE}/markets/").status_code == 401


def test_markets_list_filters(auth_client):
    market_ensure(exchange="binance", symbol="BTC/USDT")
    market_ensure(exchange="binance", symbol="XRP/ETH")
    market_ensure(exchange="binanceusdm", symbol="XRP/USDT:USDT")
    body = auth_client.get(f"{BASE}/markets/", {"quote": "usdt"}).json()
    assert {m["symbol"] for m in body["results"]} == {"BTC/USDT", "XRP/USDT:USDT"}
    body = auth_client.get(f"{BASE}/markets/", {"exchange": "binance", "type": "spot"}).json()
    assert {m["symbol"] for m in body["results"]} == {"BTC/USDT", "XRP/ETH"}
    btc = body["results"][0]
    assert btc["precision_price"].rstrip("0") == "0.01" and btc["exchange"] == "binance"


def test_candles_endpoint_rows_and_limit(auth_client, stored_candles):
    r = auth_client.get(
        f"{BASE}/candles/",
        {
            "symbol": "BTC/USDT",
            "timeframe": "4h",
            "start": "2023-01-01T00:00:00Z",
            "end": "2023-01-02T00:00:00Z",
        },
    )
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["count"] == 6 and body["source_timeframe"] == "4h"
    assert body["candles"][0][0] == 1672531200000 and body["candles"][0][1] == 16541.77
    newest = auth_client.get(f"{BASE}/candles/", {"symbol": "BTC/USDT", "timeframe": "4h", "limit": 5}).json()
    assert newest["count"] == 5
    assert (
        newest["candles"][-1][0] == Candle.objects.filter(timeframe="4h").order_by("-open_time")[0].open_time
    )


def test_candles_resampled_with_limit_and_ohlc_columns(auth_client, stored_candles):
    body = auth_client.get(f"{BASE}/ohlc/", {"symbol": "BTC/USDT", "timeframe": "12h", "limit": 10}).json()
    assert body["count"] == 10 and body["source_timeframe"] == "4h"
    assert len(body["open"]) == len(body["timestamp"]) == 10
    assert all(t % 43_200_000 == 0 for t in body["timestamp"])
    weekly = auth_client.get(f"{BASE}/ohlc/", {"symbol": "ETH/USDT", "timeframe": "1w", "limit": 3}).json()
    assert weekly["count"] == 3 and weekly["source_timeframe"] == "1d"


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"symbol": "DOGE/USDT", "timeframe": "1h"}, 404, "symbol"),
        ({"symbol": "BTC/USDT", "timeframe": "7m"}, 400, "timeframe"),
        ({"symbol": "BTC/USDT", "start": "2024-01-02", "end": "2024-01-01"}, 400, "start"),
        ({"symbol": "BTC/USDT", "limit": 0}, 400, "limit"),
        ({"symbol": "BTC/USDT", "limit": 5001}, 400, "limit"),
        ({"symbol": "BTC/USDT", "limit": "many"}, 400, "limit"),
        ({"symbol": "BTC/USDT", "start": "yesterday"}, 400, "start"),
        ({"timeframe": "1h"}, 400, "symbol"),
        ({"symbol": "BTC/USDT", "exchange": "nope"}, 404, "symbol"),
    ],
)
def test_candles_validation(auth_client, stored_candles, params, status, field):
    for endpoint in ("candles", "ohlc"):
        r = auth_client.get(f"{BASE}/{endpoint}/", params)
        assert r.status_code == status, r.content
        error = err(r)
        assert field in error["fields"] and error["message"]


def test_no_candles_for_timeframe_is_404(auth_client, stored_candles):
    r = auth_client.get(f"{BASE}/candles/", {"symbol": "ETH/USDT", "timeframe": "4h"})
    assert r.status_code == 404 and err(r)["code"] == "no_candles"


def test_gaps_endpoint(auth_client, stored_candles):
    body = auth_client.get(f"{BASE}/gaps/", {"symbol": "BTC/USDT", "timeframe": "4h"}).json()
    assert body["missing"] == 16 and len(body["gaps"]) == 8


def test_price_ticker_and_stats_offline_come_from_replay(auth_client, stored_candles):
    price = auth_client.get(f"{BASE}/price/", {"symbol": "BTC/USDT"}).json()
    assert price["source"] == "replay" and float(price["price"]) > 0
    ticker = auth_client.get(f"{BASE}/ticker/", {"symbol": "BTC/USDT"}).json()
    assert ticker["source"] == "replay" and float(ticker["low"]) <= float(ticker["last"]) <= float(
        ticker["high"]
    )
    stats = auth_client.get(f"{BASE}/stats/", {"symbol": "BTC/USDT"}).json()
    assert "percentage" in stats


def test_orderbook_and_trades_offline_are_503_with_message(auth_client, stored_candles):
    for endpoint in ("orderbook", "trades"):
        r = auth_client.get(f"{BASE}/{endpoint}/", {"symbol": "BTC/USDT"})
        assert r.status_code == 503 and "MARKETDATA_ONLINE=false" in err(r)["message"]
    r = auth_client.get(f"{BASE}/orderbook/", {"symbol": "BTC/USDT", "limit": 0})
    assert r.status_code == 400


def test_subscriptions_crud_is_owner_scoped(auth_client, user, other_user, stored_candles):
    r = auth_client.post(f"{BASE}/subscriptions/", {"symbol": "BTC/USDT", "timeframe": "15m"}, format="json")
    assert r.status_code == 201, r.content
    sub = r.json()
    assert sub["market"]["symbol"] == "BTC/USDT" and sub["timeframe"] == "15m"
    dup = auth_client.post(f"{BASE}/subscriptions/", {"symbol": "BTC/USDT"}, format="json")
    assert dup.status_code == 409 and err(dup)["code"] == "conflict"
    bad = auth_client.post(f"{BASE}/subscriptions/", {"symbol": "NOPE/USDT"}, format="json")
    assert bad.status_code == 404
    bad_tf = auth_client.post(
        f"{BASE}/subscriptions/", {"symbol": "ETH/USDT", "timeframe": "2m"}, format="json"
    )
    assert bad_tf.status_code == 400 and "timeframe" in err(bad_tf)["fields"]
    assert auth_client.get(f"{BASE}/subscriptions/").json()["count"] == 1
    r = auth_client.patch(f"{BASE}/subscriptions/{sub['id']}/", {"timeframe": "4h"}, format="json")
    assert r.status_code == 200 and r.json()["timeframe"] == "4h"
    # PUT replaces the whole entry: both fields, or a 400 naming the one missing.
    put = auth_client.put(
        f"{BASE}/subscriptions/{sub['id']}/", {"timeframe": "1d", "note": ""}, format="json"
    )
    assert put.status_code == 200 and put.json()["timeframe"] == "1d"
    partial = auth_client.put(f"{BASE}/subscriptions/{sub['id']}/", {"timeframe": "4h"}, format="json")
    assert partial.status_code == 400 and set(err(partial)["fields"]) == {"note"}

    others = subscription_create(user=other_user, exchange="binance", symbol="ETH/USDT")
    assert auth_client.get(f"{BASE}/subscriptions/{others.id}/").status_code == 404
    assert auth_client.delete(f"{BASE}/subscriptions/{others.id}/").status_code == 404
    assert (
        auth_client.patch(f"{BASE}/subscriptions/{others.id}/", {"note": "x"}, format="json").status_code
        == 404
    )
    assert Subscription.objects.filter(id=others.id).exists()
    assert auth_client.delete(f"{BASE}/subscriptions/{sub['id']}/").status_code == 204
    assert not Subscription.objects.filter(user=user).exists()


def test_watched_stats_and_overview(auth_client, user, stored_candles):
    subscription_create(user=user, exchange="binance", symbol="BTC/USDT")
    subscription_create(user=user, exchange="binance", symbol="SOL/USDT")  # nothing stored: reported, not 500
    body = auth_client.get(f"{BASE}/stats/watched/").json()
    by_symbol = {row["symbol"]: row for row in body["results"]}
    assert by_symbol["BTC/USDT"]["source"] == "replay" and by_symbol["BTC/USDT"]["last"]
    assert by_symbol["SOL/USDT"]["last"] is None and by_symbol["SOL/USDT"]["error"]
    overview = auth_client.get(f"{BASE}/overview/").json()
    stored = {(r["symbol"], r["timeframe"]): r["count"] for r in overview["stored"]}
    assert stored[("BTC/USDT", "4h")] == 19051 and stored[("ETH/USDT", "1d")] == 3178


def test_import_job_via_api_runs_and_reports(auth_client, user, settings, django_capture_on_commit_callbacks):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        upload = io.BytesIO(b"timestamp,open,high,low,close,volume\n1704067200000,10,11,9,10.5,100\n")
        upload.name = "mine.csv"
        with django_capture_on_commit_callbacks(execute=True):
            r = auth_client.post(
                f"{BASE}/jobs/",
                {"kind": "import", "symbol": "BTC/USDT", "timeframe": "1m", "file": upload},
                format="multipart",
            )
        assert r.status_code == 201, r.content
        job = ImportJob.objects.get(id=r.json()["id"])
        assert job.status == "completed" and job.inserted == 1 and job.progress == 100
        from pathlib import Path

        assert not Path(job.params["path"]).exists()  # the upload is discarded once imported
        detail = auth_client.get(f"{BASE}/jobs/{job.id}/").json()
        assert detail["status"] == "completed"

        bad = io.BytesIO(b"timestamp,open,high,low,close,volume\n1704067200000,10,9,11,10.5,100\n")
        bad.name = "bad.csv"
        with django_capture_on_commit_callbacks(execute=True):
            r = auth_client.post(
                f"{BASE}/jobs/",
                {"kind": "import", "symbol": "BTC/USDT", "timeframe": "1m", "file": bad},
                format="multipart",
            )
        job = ImportJob.objects.get(id=r.json()["id"])
        assert job.status == "failed" and "line 2" in job.error
    finally:
        app.conf.task_always_eager = False
    missing_file = auth_client.post(
        f"{BASE}/jobs/", {"kind": "import", "symbol": "BTC/USDT", "timeframe": "1m"}
    )
    assert missing_file.status_code == 400 and "file" in err(missing_file)["fields"]


def test_an_import_lost_to_a_database_outage_keeps_its_upload_for_the_next_attempt(
    user, settings, monkeypatch
):
    from pathlib import Path

    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.db import OperationalError

    from apps.marketdata import jobs
    from apps.marketdata.tasks import run_job  # noqa: F401 - the task job_send records

    settings.JOB_AUTO_RETRIES = 2
    upload = SimpleUploadedFile(
        "mine.csv", b"timestamp,open,high,low,close,volume\n1704067200000,10,11,9,10.5,100\n"
    )
    job = jobs.job_submit(user=user, kind="import", exchange="binance", symbol="BTC/USDT", timeframe="1m",
                          upload=upload)  # fmt: skip
    # What job_send records (this test's transaction is never committed: nothing is sent).
    ImportJob.objects.filter(pk=job.pk).update(task_name=jobs.RUN_JOB_TASK)
    real_import = jobs.candles_import_file

    def connection_lost(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(jobs, "candles_import_file", connection_lost)
    jobs.job_run(job_id=job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempt, job.error_code) == ("pending", 2, "")
    assert Path(job.params["path"]).exists()  # the next attempt imports it

    monkeypatch.setattr(jobs, "candles_import_file", real_import)
    jobs.job_run(job_id=job.pk, attempt=1)  # the old task redelivered: nothing
    assert ImportJob.objects.get(pk=job.pk).status == "pending"
    jobs.job_run(job_id=job.pk, attempt=2)
    job.refresh_from_db()
    assert (job.status, job.attempt, job.inserted) == ("completed", 2, 1)
    assert not Path(job.params["path"]).exists()


def test_candles_rows_are_exact_and_empty_range_is_empty_list(auth_client, stored_candles):
    from apps.marketdata import selectors

    body = auth_client.get(f"{BASE}/candles/", {"symbol": "BTC/USDT", "timeframe": "4h", "limit": 50}).json()
    frame = selectors.candles(exchange="binance", symbol="BTC/USDT", timeframe="4h", limit=50).to_frame()
    assert [row[0] for row in body["candles"]] == frame.index.as_unit("ms").asi8.tolist()
    assert [row[1:] for row in body["candles"]] == frame.to_numpy().tolist()
    assert all(isinstance(row[0], int) for row in body["candles"])
    empty = auth_client.get(
        f"{BASE}/candles/",
        {"symbol": "BTC/USDT", "timeframe": "4h", "start": "2010-01-01", "end": "2010-02-01"},
    ).json()
    assert empty["count"] == 0 and empty["candles"] == []


def test_download_job_offline_fails_with_a_clear_message(
    auth_client, settings, django_capture_on_commit_callbacks
):
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            r = auth_client.post(
                f"{BASE}/jobs/",
                {"kind": "download", "symbol": "BTC/USDT", "timeframe": "1h", "start": "2024-01-01"},
                format="json",
            )
    finally:
        app.conf.task_always_eager = False
    assert r.status_code == 201, r.content
    job = ImportJob.objects.get(id=r.json()["id"])
    assert job.status == "failed" and "MARKETDATA_ONLINE=false" in job.error
    body = auth_client.get(f"{BASE}/jobs/{job.id}/").json()
    assert body["status"] == "failed" and body["error"]["code"] == "offline"
    assert "MARKETDATA_ONLINE=false" in body["error"]["message"]
    bad = auth_client.post(
        f"{BASE}/jobs/", {"kind": "download", "symbol": "BTC/USDT", "timeframe": "9h"}, format="json"
    )
    assert bad.status_code == 400 and "timeframe" in err(bad)["fields"]


def test_jobs_show_the_states_every_job_has_and_a_pending_one_can_be_cancelled(auth_client, user, other_user):
    from apps.marketdata.jobs import job_create

    job = job_create(
        user=user, kind="download", exchange="binance", symbol="BTC/USDT", timeframe="1h", params={},
        enqueue=False,
    )  # fmt: skip
    body = auth_client.get(f"{BASE}/jobs/{job.id}/").json()
    assert body["status"] == "pending" and body["progress"] == 0 and body["error"] is None
    assert body["cancel_requested"] is False

    r = auth_client.post(f"{BASE}/jobs/{job.id}/cancel/")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    job.refresh_from_db()
    assert job.status == "cancelled" and job.finished_at is not None

    again = auth_client.post(f"{BASE}/jobs/{job.id}/cancel/")
    assert again.status_code == 409 and err(again)["code"] == "conflict"

    theirs = job_create(
        user=other_user, kind="download", exchange="binance", symbol="BTC/USDT", timeframe="1h", params={},
        enqueue=False,
    )  # fmt: skip
    assert auth_client.post(f"{BASE}/jobs/{theirs.id}/cancel/").status_code == 404
    assert auth_client.get(f"{BASE}/jobs/{theirs.id}/").status_code == 404
    assert auth_client.post(f"{BASE}/jobs/9223372036854775808/cancel/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "pending"


def test_unknown_fields_on_subscriptions_are_rejected_with_every_other_bad_field(auth_client, user):
    r = auth_client.post(
        f"{BASE}/subscriptions/",
        {"symbol": "BTC/USDT", "timeframe": "2m", "colour": "red", "id": 5},
        format="json",
    )
    assert r.status_code == 400
    assert set(err(r)["fields"]) == {"colour", "id", "timeframe"}
    assert not Subscription.objects.exists()

    sub = subscription_create(user=user, exchange="binance", symbol="BTC/USDT")
    r = auth_client.patch(f"{BASE}/subscriptions/{sub.id}/", {"note": "x", "timefram": "4h"}, format="json")
    assert r.status_code == 400 and set(err(r)["fields"]) == {"timefram"}
    sub.refresh_from_db()
    assert sub.note == "" and sub.timeframe == "1h"


def test_unknown_fields_and_exchanges_on_jobs_are_rejected(auth_client):
    r = auth_client.post(
        f"{BASE}/jobs/",
        {
            "kind": "download",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "strat": "2024-01-01",
            "exchange": "nope",
        },
        format="json",
    )
    assert r.status_code == 400 and set(err(r)["fields"]) == {"strat", "exchange"}
    assert not ImportJob.objects.exists()


def test_the_schema_documents_the_timeframes_list_not_an_import_job(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operation = schema["paths"]["/api/v1/market-data/jobs/timeframes/"]["get"]
    body = operation["responses"]["200"]["content"]["application/json"]["schema"]
    ref = body["$ref"].rsplit("/", 1)[-1]
    assert ref != "ImportJob"
    assert set(schema["components"]["schemas"][ref]["properties"]) == {"timeframes"}
    cancel = schema["paths"]["/api/v1/market-data/jobs/{id}/cancel/"]["post"]
    assert "202" in cancel["responses"]
