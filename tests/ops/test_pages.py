"""The admin jobs page (/ops/jobs/, staff only): workers, queues, schedules, dead letters and task
results, its pause/resume, retry and replay forms; embedded mode explained, never a 500."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from apps.core.schedules import install_schedules
from tests.factories import UserFactory
from tests.ops.support import dead_letter, task_result

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(UserFactory(is_staff=True))
    return client


def test_jobs_page_is_staff_only(client, user):
    assert client.get(reverse("ops:jobs")).status_code == 302  # to the login page
    client.force_login(user)
    assert client.get(reverse("ops:jobs")).status_code == 403
    letter = dead_letter(task_name="apps.core.tasks.heartbeat", args=[], kwargs={})
    assert client.post(reverse("ops:dead-letter-replay", args=[letter.pk])).status_code == 403
    letter.refresh_from_db()
    assert letter.replayed_at is None


def test_jobs_page_shows_schedules_dead_letters_and_failures_with_tracebacks(staff):
    install_schedules()
    letter = dead_letter(error="the exchange said no")
    failed = task_result()
    html = staff.get(reverse("ops:jobs")).content.decode()
    for section in ("workers", "queues", "schedules", "dead-letters", "results"):
        assert f'id="{section}"' in html, section
    assert "orders: sync open orders" in html and "ops: clean up old results" in html
    assert f'data-dead-letter="{letter.pk}"' in html and "the exchange said no" in html
    assert f'data-result="{failed.pk}"' in html and "RuntimeError: boom" in html
    assert reverse("ops:result-retry", args=[failed.pk]) in html
    assert 'href="/ops/jobs/"' in html  # the staff navigation entry


def test_jobs_page_shows_the_next_matching_time_of_a_crontab_that_never_ran(staff):
    nightly = CrontabSchedule.objects.create(minute="30", hour="3", timezone="UTC")
    PeriodicTask.objects.create(name="t: nightly", task="apps.core.tasks.heartbeat", crontab=nightly)
    now = timezone.now()
    expected = now.replace(hour=3, minute=30, second=0, microsecond=0)
    if expected <= now:
        expected += timedelta(days=1)
    html = staff.get(reverse("ops:jobs")).content.decode()
    row = html[html.index("t: nightly") :].split("</tr>", 1)[0]
    assert expected.strftime("%Y-%m-%d %H:%M:%S") in row, row


def test_pause_and_resume_forms_change_the_schedule(staff):
    install_schedules()
    schedule = PeriodicTask.objects.get(name="risk: monitor every user")
    response = staff.post(reverse("ops:schedule-pause", args=[schedule.pk]), follow=True)
    assert "Schedule paused." in response.content.decode()
    schedule.refresh_from_db()
    assert not schedule.enabled
    staff.post(reverse("ops:schedule-resume", args=[schedule.pk]))
    schedule.refresh_from_db()
    assert schedule.enabled
    assert staff.post(reverse("ops:schedule-pause", args=[999999])).status_code == 404


def test_replay_form_marks_the_letter_and_a_second_replay_is_refused(staff):
    letter = dead_letter(task_name="apps.core.tasks.heartbeat", args=[None], kwargs={})
    first = staff.post(reverse("ops:dead-letter-replay", args=[letter.pk]), follow=True).content.decode()
    assert "Dead letter replayed." in first
    letter.refresh_from_db()
    assert letter.replayed_at is not None and letter.replay_task_id
    second = staff.post(reverse("ops:dead-letter-replay", args=[letter.pk]), follow=True).content.decode()
    assert "already replayed" in second


def test_retry_form_of_a_cut_argument_list_explains_why_not(staff):
    cut = task_result(args="([1, 2, ...", kwargs="{}")
    html = staff.post(reverse("ops:result-retry", args=[cut.pk]), follow=True).content.decode()
    assert "not recorded in full" in html


def test_embedded_mode_jobs_page_says_what_is_unavailable(staff, settings):
    settings.EMBEDDED = True  # no REDIS_URL: the worker would be threads in this process
    response = staff.get(reverse("ops:jobs"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="embedded-note"' in html and "Embedded mode" in html
    assert "not running in this process" in html  # no `manage.py serve` here


def test_results_cleanup_deletes_old_results_and_letters_but_keeps_jobs_by_default(settings, user):
    from datetime import timedelta

    from django.utils import timezone
    from django_celery_results.models import TaskResult

    from apps.ops.models import DeadLetter
    from apps.ops.tasks import results_cleanup
    from tests.ops.support import jobs_of_every_kind

    old = timezone.now() - timedelta(days=settings.TASK_RESULT_RETENTION_DAYS + 1)
    task_result(date_done=old)
    recent = task_result()
    dead_letter(failed_at=timezone.now() - timedelta(days=settings.DEAD_LETTER_RETENTION_DAYS + 1))
    kept_letter = dead_letter(task_id="dead-recent")
    jobs = jobs_of_every_kind(user)
    backtest = jobs["backtest"]
    type(backtest).objects.filter(pk=backtest.pk).update(finished_at=old - timedelta(days=365))

    settings.JOB_RETENTION_DAYS = 0
    counts = results_cleanup()
    assert counts["task_results"] == 1 and counts["dead_letters"] == 1
    assert list(TaskResult.objects.values_list("pk", flat=True)) == [recent.pk]
    assert list(DeadLetter.objects.values_list("pk", flat=True)) == [kept_letter.pk]
    assert type(backtest).objects.filter(pk=backtest.pk).exists()  # users' results are kept

    settings.JOB_RETENTION_DAYS = 30
    counts = results_cleanup()
    assert counts["backtests.BacktestRun"] == 1
    assert not type(backtest).objects.filter(pk=backtest.pk).exists()
    # Unfinished jobs are never cleaned up, however old.
    assert type(jobs["optimization"]).objects.filter(pk=jobs["optimization"].pk).exists()
