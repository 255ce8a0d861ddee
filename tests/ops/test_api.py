"""The operations API (/api/v1/ops/, staff only): schedules, task results and retry, dead letters
and replay, workers and queues, the cache; and every user's own job list (/api/v1/jobs/)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from rest_framework.test import APIClient

from apps.core.schedules import declared_schedules, install_schedules
from apps.ops.models import DeadLetter
from tests.factories import UserFactory
from tests.ops.support import dead_letter, task_result
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

OPS = "/api/v1/ops/"
STAFF_GETS = ["jobs/", "workers/", "queues/", "schedules/", "results/", "dead-letters/", "cache/"]
HARMLESS_TASK = "apps.core.tasks.heartbeat"  # what a retry sends, should a worker take it


@pytest.fixture
def staff_client() -> APIClient:
    client = APIClient()
    client.force_authenticate(UserFactory(is_staff=True))
    return client


@pytest.mark.parametrize("path", STAFF_GETS)
def test_ops_endpoints_refuse_anonymous_401_and_non_staff_403(auth_client, path):
    assert_error(APIClient().get(OPS + path), 401)
    assert_error(auth_client.get(OPS + path), 403, "permission_denied")


def test_ops_actions_refuse_non_staff_and_change_nothing(auth_client):
    install_schedules()
    schedule = PeriodicTask.objects.get(name="orders: sync open orders")
    letter = dead_letter(task_name=HARMLESS_TASK, args=[], kwargs={})
    failed = task_result(name=HARMLESS_TASK, args="()", kwargs="{}")
    for path in (
        f"schedules/{schedule.pk}/pause/",
        f"dead-letters/{letter.pk}/replay/",
        f"results/{failed.pk}/retry/",
        "cache/clear/",
    ):
        assert_error(auth_client.post(OPS + path, {"group": "prices"}), 403, "permission_denied")
    schedule.refresh_from_db()
    letter.refresh_from_db()
    assert schedule.enabled and letter.replayed_at is None


def test_every_required_periodic_job_is_declared_in_code_and_installed():
    tasks = {schedule.task for schedule in declared_schedules()}
    required = {
        "apps.marketdata.tasks.refresh_markets": "market refresh",
        "apps.marketdata.tasks.poll_prices": "price polling",
        "apps.bots.tasks.bots_enqueue_due": "bot ticks",
        "apps.orders.tasks.orders_sync_open": "order sync",
        "apps.risk.tasks.risk_monitor_all": "risk monitoring",
        "apps.portfolio.tasks.portfolio_snapshot_all": "portfolio snapshots",
        "apps.marketdata.tasks.refresh_funding_rates": "funding-rate download",
        "apps.ops.tasks.results_cleanup": "cleanup of old results",
    }
    assert not set(required) - tasks, {required[t] for t in set(required) - tasks}
    install_schedules()
    assert set(required) <= set(PeriodicTask.objects.values_list("task", flat=True))


def test_schedules_list_last_and_next_run_and_pause_then_resume(staff_client):
    install_schedules()
    body = staff_client.get(OPS + "schedules/", {"page_size": 100}).json()
    rows = {row["name"]: row for row in body["results"]}
    assert body["count"] == PeriodicTask.objects.count()
    sync = rows["orders: sync open orders"]
    assert (
        sync["enabled"] and sync["declared_in_code"] and sync["task"] == "apps.orders.tasks.orders_sync_open"
    )
    assert sync["schedule"] == "every 5 seconds" and sync["next_run_at"] and sync["last_run_at"] is None

    paused = staff_client.post(OPS + f"schedules/{sync['id']}/pause/")
    assert paused.status_code == 200, paused.content
    assert paused.json()["enabled"] is False and paused.json()["next_run_at"] is None
    assert PeriodicTask.objects.get(pk=sync["id"]).enabled is False
    # A later migrate (install_schedules) keeps the admin's choice.
    install_schedules()
    assert PeriodicTask.objects.get(pk=sync["id"]).enabled is False

    resumed = staff_client.post(OPS + f"schedules/{sync['id']}/resume/")
    assert resumed.json()["enabled"] is True
    assert PeriodicTask.objects.get(pk=sync["id"]).enabled is True


def _schedules(client) -> dict[str, dict]:
    body = client.get(OPS + "schedules/", {"page_size": 100}).json()
    return {row["name"]: row for row in body["results"]}


def _at(row: dict) -> datetime:
    return datetime.fromisoformat(row["next_run_at"])


def test_next_run_of_schedules_that_never_ran_is_when_beat_will_run_them_not_now(staff_client):
    """django-celery-beat's own estimate for a schedule with no last run is "now"; the page shows
    when beat will really send it (as its scheduler counts a first run)."""
    now = timezone.now()
    ten_minutes, _ = IntervalSchedule.objects.get_or_create(every=10, period=IntervalSchedule.MINUTES)
    fresh = PeriodicTask.objects.create(name="t: interval", task=HARMLESS_TASK, interval=ten_minutes)
    later = PeriodicTask.objects.create(
        name="t: interval from its start",
        task=HARMLESS_TASK,
        interval=ten_minutes,
        start_time=now + timedelta(hours=2),
    )
    ran = PeriodicTask.objects.create(
        name="t: interval that ran",
        task=HARMLESS_TASK,
        interval=ten_minutes,
        last_run_at=now - timedelta(minutes=3),
    )
    nightly, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="UTC"
    )
    PeriodicTask.objects.create(name="t: crontab", task=HARMLESS_TASK, crontab=nightly)
    PeriodicTask.objects.create(name="t: paused crontab", task=HARMLESS_TASK, crontab=nightly, enabled=False)
    berlin, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="3", day_of_week="*", day_of_month="*", month_of_year="*", timezone="Europe/Berlin"
    )
    PeriodicTask.objects.create(name="t: crontab in Berlin", task=HARMLESS_TASK, crontab=berlin)

    rows = _schedules(staff_client)
    # An interval counts from when its row last changed (beat's first "last run").
    assert _at(rows["t: interval"]) == fresh.date_changed + timedelta(minutes=10)
    assert _at(rows["t: interval from its start"]) == later.start_time
    assert _at(rows["t: interval that ran"]) == ran.last_run_at + timedelta(minutes=10)
    # A crontab runs at its next matching time from now: the next 03:30 UTC.
    next_half_past_three = now.replace(hour=3, minute=30, second=0, microsecond=0)
    if next_half_past_three <= now:
        next_half_past_three += timedelta(days=1)
    assert _at(rows["t: crontab"]) == next_half_past_three
    assert rows["t: paused crontab"]["next_run_at"] is None
    # A crontab's hours are in its own time zone: the next 03:30 in Berlin.
    berlin_now = now.astimezone(ZoneInfo("Europe/Berlin"))
    next_in_berlin = berlin_now.replace(hour=3, minute=30, second=0, microsecond=0)
    if next_in_berlin <= berlin_now:
        next_in_berlin += timedelta(days=1)
    assert _at(rows["t: crontab in Berlin"]) == next_in_berlin


@pytest.mark.parametrize("pk", ["0", "999999", "9223372036854775808"])
def test_unknown_schedule_result_and_dead_letter_are_404(staff_client, pk):
    assert_error(staff_client.post(OPS + f"schedules/{pk}/pause/"), 404)
    assert_error(staff_client.get(OPS + f"results/{pk}/"), 404)
    assert_error(staff_client.post(OPS + f"results/{pk}/retry/"), 404)
    assert_error(staff_client.get(OPS + f"dead-letters/{pk}/"), 404)
    assert_error(staff_client.post(OPS + f"dead-letters/{pk}/replay/"), 404)


def test_results_list_failures_with_tracebacks_and_filters(staff_client):
    failed = task_result(status="FAILURE")
    task_result(status="SUCCESS", name="apps.other.task", traceback=None, result="42")
    every = staff_client.get(OPS + "results/").json()
    assert every["count"] == 2
    failures = staff_client.get(OPS + "results/", {"status": "FAILURE"}).json()["results"]
    assert [row["id"] for row in failures] == [failed.pk]
    assert "RuntimeError: boom" in failures[0]["traceback"]
    by_name = staff_client.get(OPS + "results/", {"task_name": "apps.other.task"}).json()["results"]
    assert [row["status"] for row in by_name] == ["SUCCESS"]
    assert_error(staff_client.get(OPS + "results/", {"status": "EXPLODED"}), 400, "invalid", "status")


def test_retry_sends_a_failed_task_again_with_its_recorded_arguments(staff_client, monkeypatch):
    sent = []
    from config.celery import app

    original = app.send_task
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)) or original(name, **kw))
    failed = task_result(name=HARMLESS_TASK, args="(None,)", kwargs="{}")
    response = staff_client.post(OPS + f"results/{failed.pk}/retry/")
    assert response.status_code == 202, response.content
    assert response.json()["task_id"]
    assert sent == [(HARMLESS_TASK, {"args": [None], "kwargs": {}})]


def test_retry_refuses_a_task_that_did_not_fail_or_whose_arguments_were_cut(staff_client):
    done = task_result(status="SUCCESS", name=HARMLESS_TASK, args="()", kwargs="{}")
    assert_error(staff_client.post(OPS + f"results/{done.pk}/retry/"), 409, "conflict")
    # Celery records a repr cut at 1 KiB: not something to send again.
    cut = task_result(name=HARMLESS_TASK, args="([1, 2, 3, ...", kwargs="{}")
    assert_error(staff_client.post(OPS + f"results/{cut.pk}/retry/"), 409, "arguments_unavailable")


def test_dead_letters_list_and_replay_once(staff_client, monkeypatch):
    from config.celery import app

    sent = []
    original = app.send_task
    monkeypatch.setattr(app, "send_task", lambda name, **kw: sent.append((name, kw)) or original(name, **kw))
    letter = dead_letter(task_name=HARMLESS_TASK, args=[None], kwargs={}, queue="default")
    replayed_before = dead_letter(task_name="x.y", task_id="dead-2")
    DeadLetter.objects.filter(pk=replayed_before.pk).update(replayed_at=letter.failed_at)

    listed = staff_client.get(OPS + "dead-letters/", {"replayed": "false"}).json()
    assert [row["id"] for row in listed["results"]] == [letter.pk]
    row = listed["results"][0]
    assert row["args"] == [None] and row["retries"] == 3 and "RuntimeError" in row["traceback"]

    response = staff_client.post(OPS + f"dead-letters/{letter.pk}/replay/")
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["replayed"] is True and body["replay_count"] == 1 and body["replay_task_id"]
    assert sent == [(HARMLESS_TASK, {"args": [None], "kwargs": {}, "queue": "default"})]
    again = staff_client.post(OPS + f"dead-letters/{letter.pk}/replay/")
    assert_error(again, 409, "conflict", "replayed_at")
    assert len(sent) == 1


def test_a_replay_the_broker_refuses_is_503_and_leaves_the_letter_unreplayed(staff_client, monkeypatch):
    from config.celery import app

    def broker_down(*args, **kwargs):
        raise ConnectionRefusedError("broker down")

    monkeypatch.setattr(app, "send_task", broker_down)
    letter = dead_letter(task_name=HARMLESS_TASK, args=[], kwargs={})
    assert_error(staff_client.post(OPS + f"dead-letters/{letter.pk}/replay/"), 503, "unavailable")
    letter.refresh_from_db()
    assert letter.replayed_at is None and letter.replay_count == 0


def test_queues_lists_every_worker_queue(staff_client):
    body = staff_client.get(OPS + "queues/").json()
    if body["available"]:
        assert set(body["queues"]) == set(settings.CELERY_WORKER_QUEUES)
        assert all(isinstance(n, int) and n >= 0 for n in body["queues"].values())
    else:
        assert body["detail"]


def test_cache_clear_refuses_unknown_and_kept_families(staff_client):
    assert_error(staff_client.post(OPS + "cache/clear/", {"group": "login"}), 400, "invalid", "group")
    assert_error(staff_client.post(OPS + "cache/clear/", {"group": "*"}), 400, "invalid", "group")
    assert_error(staff_client.post(OPS + "cache/clear/", {}), 400, "invalid", "group")
    body = staff_client.post(OPS + "cache/clear/", {"group": "prices", "all": True})
    assert_error(body, 400, "invalid", "all")


def test_schema_documents_the_ops_and_jobs_endpoints(staff_client):
    schema = staff_client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    paths = json.loads(schema)["paths"] if schema.lstrip().startswith("{") else None
    if paths is None:
        import yaml

        paths = yaml.safe_load(schema)["paths"]
    for path in (
        "/api/v1/jobs/",
        "/api/v1/ops/jobs/",
        "/api/v1/ops/workers/",
        "/api/v1/ops/queues/",
        "/api/v1/ops/schedules/",
        "/api/v1/ops/schedules/{id}/pause/",
        "/api/v1/ops/results/{id}/retry/",
        "/api/v1/ops/dead-letters/{id}/replay/",
        "/api/v1/ops/cache/",
        "/api/v1/ops/cache/clear/",
    ):
        assert path in paths, path
    assert "403" in paths["/api/v1/ops/cache/clear/"]["post"]["responses"]
    assert "202" in paths["/api/v1/ops/dead-letters/{id}/replay/"]["post"]["responses"]


def test_actions_take_no_body_and_refuse_one_changing_nothing(staff_client):
    install_schedules()
    schedule = PeriodicTask.objects.get(name="orders: sync open orders")
    letter = dead_letter(task_name=HARMLESS_TASK, args=[], kwargs={})
    assert_error(
        staff_client.post(OPS + f"schedules/{schedule.pk}/pause/", {"now": True}), 400, "invalid", "now"
    )
    assert_error(staff_client.post(OPS + f"dead-letters/{letter.pk}/replay/", {"x": 1}), 400, "invalid", "x")
    schedule.refresh_from_db()
    letter.refresh_from_db()
    assert schedule.enabled and letter.replayed_at is None


def test_embedded_mode_lists_the_in_process_worker_and_its_running_tasks(staff_client, settings, monkeypatch):
    from types import SimpleNamespace

    from celery.worker import state

    from apps.core import embedded

    settings.EMBEDDED = True
    monkeypatch.setattr(embedded, "worker_alive", lambda: True)
    running = SimpleNamespace(
        id="t-1", task_name="apps.backtests.tasks.run", argsrepr="(7,)", kwargsrepr="{}", time_start=1.5
    )
    monkeypatch.setattr(state, "active_requests", [running])
    body = staff_client.get(OPS + "workers/").json()
    assert body["mode"] == "embedded" and body["available"] is True and "Embedded mode" in body["detail"]
    (worker,) = body["workers"]
    assert worker["name"] == "embedded@localhost"
    assert worker["queues"] == settings.CELERY_WORKER_QUEUES
    assert worker["active"] == [
        {"id": "t-1", "name": "apps.backtests.tasks.run", "args": "(7,)", "kwargs": "{}", "started": 1.5}
    ]


def test_a_failure_is_a_dead_letter_unless_beat_sent_it():
    from types import SimpleNamespace

    from apps.ops.receivers import record_dead_letter

    def fail(**request):
        task = SimpleNamespace(name="apps.x.tasks.y", request=SimpleNamespace(**request))
        record_dead_letter(sender=task, task_id="t-9", exception=ValueError("bad"), args=[1], kwargs={"k": 2})

    fail(retries=1, hostname="w@h", delivery_info={"routing_key": "bots"})
    (letter,) = DeadLetter.objects.all()
    assert (letter.task_name, letter.args, letter.kwargs, letter.queue) == (
        "apps.x.tasks.y",
        [1],
        {"k": 2},
        "bots",
    )
    assert (letter.retries, letter.worker, letter.exception_type, letter.error) == (
        1,
        "w@h",
        "ValueError",
        "bad",
    )
    # The next beat run is its retry: nothing to replay.
    fail(periodic_task_name="orders: sync open orders", retries=0)
    assert DeadLetter.objects.count() == 1
