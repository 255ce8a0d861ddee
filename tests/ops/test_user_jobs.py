"""A user's own jobs of every kind (/api/v1/jobs/ and the /jobs/ page): owner-scoped, newest
first, filtered by kind and status, paged in the database."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tests.ops.support import jobs_of_every_kind
from tests.support.api import assert_error

pytestmark = pytest.mark.django_db

URL = "/api/v1/jobs/"
NEWEST_FIRST = ["bot_replay", "download", "import", "optimization", "backtest"]


def test_lists_every_kind_of_the_users_jobs_newest_first(auth_client, user, other_user):
    mine = jobs_of_every_kind(user)
    jobs_of_every_kind(other_user)
    body = auth_client.get(URL).json()
    assert body["count"] == 5
    assert [row["kind"] for row in body["results"]] == NEWEST_FIRST
    rows = {row["kind"]: row for row in body["results"]}
    assert {kind: rows[kind]["id"] for kind in rows} == {kind: job.pk for kind, job in mine.items()}
    assert rows["backtest"]["status"] == "completed" and rows["backtest"]["progress"] == 100
    assert rows["backtest"]["url"] == reverse("backtests:detail", args=[mine["backtest"].pk])
    assert rows["optimization"]["status"] == "running" and rows["optimization"]["progress"] == 40
    assert rows["download"]["error"] == {"code": "offline", "message": "The exchange could not be reached."}
    assert rows["bot_replay"]["url"] == reverse("bots:detail", args=[mine["bot_replay"].bot_id])
    assert set(rows["import"]) >= {"created_at", "started_at", "finished_at", "duration_seconds", "title"}


def test_the_attempt_of_a_job_sent_again_after_a_fault_shows_in_the_list_and_on_the_page(
    auth_client, client, user
):
    mine = jobs_of_every_kind(user)
    type(mine["import"]).objects.filter(pk=mine["import"].pk).update(attempt=2)
    rows = {row["kind"]: row for row in auth_client.get(URL).json()["results"]}
    assert {kind: row["attempt"] for kind, row in rows.items()} == {
        "backtest": 1, "optimization": 1, "import": 2, "download": 1, "bot_replay": 1,
    }  # fmt: skip
    client.force_login(user)
    html = client.get(reverse("ops:my-jobs")).content.decode()
    assert html.count('data-field="attempt"') == 5 and html.count("attempt 2</span>") == 1


def test_another_users_jobs_never_show(api_client, user, other_user):
    jobs_of_every_kind(other_user)
    api_client.force_authenticate(user)
    assert api_client.get(URL).json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_filters_by_kind_and_status_and_pages(auth_client, user):
    mine = jobs_of_every_kind(user)
    downloads = auth_client.get(URL, {"kind": "download"}).json()["results"]
    assert [(row["kind"], row["id"]) for row in downloads] == [("download", mine["download"].pk)]
    imports = auth_client.get(URL, {"kind": "import"}).json()["results"]
    assert [row["id"] for row in imports] == [mine["import"].pk]
    failed = auth_client.get(URL, {"status": "failed"}).json()["results"]
    assert [row["kind"] for row in failed] == ["download"]
    pending = auth_client.get(URL, {"status": "pending", "kind": "bot_replay"}).json()["results"]
    assert [row["kind"] for row in pending] == ["bot_replay"]

    first = auth_client.get(URL, {"page_size": 2}).json()
    second = auth_client.get(URL, {"page_size": 2, "page": 2}).json()
    assert first["count"] == 5 and first["next"] and second["previous"]
    assert [row["kind"] for row in first["results"] + second["results"]] == NEWEST_FIRST[:4]


def test_bad_filters_are_400_and_anonymous_401(auth_client):
    assert_error(auth_client.get(URL, {"kind": "bogus"}), 400, "invalid", "kind")
    assert_error(auth_client.get(URL, {"status": "exploded"}), 400, "invalid", "status")
    assert_error(APIClient().get(URL), 401)


def test_jobs_page_shows_only_the_users_jobs_with_status_and_progress(client, user, other_user):
    mine = jobs_of_every_kind(user)
    theirs = jobs_of_every_kind(other_user)
    client.force_login(user)
    html = client.get(reverse("ops:my-jobs")).content.decode()
    for kind, job in mine.items():
        assert f'data-job="{kind}-{job.pk}"' in html
    for kind, job in theirs.items():
        assert f'data-job="{kind}-{job.pk}"' not in html
    assert '<progress data-field="progress-bar" max="100" value="40">' in html
    assert "The exchange could not be reached." in html
    only = client.get(reverse("ops:my-jobs"), {"kind": "import"}).content.decode()
    assert f'data-job="import-{mine["import"].pk}"' in only and 'data-job="backtest-' not in only


def test_jobs_page_needs_login_and_is_in_the_navigation(client, user):
    assert client.get(reverse("ops:my-jobs")).status_code == 302
    client.force_login(user)
    html = client.get(reverse("home:index")).content.decode()
    assert f'href="{reverse("ops:my-jobs")}"' in html
    assert 'href="/ops/jobs/"' not in html  # the admin pages are linked for staff only


def test_every_job_model_of_the_apps_has_a_kind_in_the_list():
    # The list is built from every concrete apps.core.jobs.Job model (job_models()); a new one is
    # listed under its model name until it gets its kind and page in apps.ops.selectors.JOB_KINDS.
    from apps.core.jobs import job_models
    from apps.ops.selectors import JOB_KINDS

    assert {model._meta.label for model in job_models()} == set(JOB_KINDS)
