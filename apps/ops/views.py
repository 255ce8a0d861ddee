"""Dashboard pages: the admin jobs and cache pages (staff only) and a user's own jobs."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, NotFound
from apps.core.jobs import JobStatus
from apps.ops import selectors, services

RESULTS_SHOWN = 50
DEAD_LETTERS_SHOWN = 50


def staff_required(view):
    """Signed in (else the login page) and staff (else 403)."""

    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not request.user.is_staff:
            raise PermissionDenied("Staff only.")
        return view(request, *args, **kwargs)

    return wrapped


@staff_required
def jobs(request):
    failed_only = request.GET.get("failed") == "1"
    results = selectors.task_result_list(status="FAILURE" if failed_only else None)[:RESULTS_SHOWN]
    context = {
        "section": "Ops",
        "overview": selectors.jobs_overview(),
        "schedules": selectors.schedule_list(),
        "results": results,
        "failed_only": failed_only,
        "dead_letters": selectors.dead_letter_list()[:DEAD_LETTERS_SHOWN],
    }
    return render(request, "ops/jobs.html", context)


def _act(request, action, success: str, anchor: str):
    try:
        action()
    except DomainError as exc:
        if isinstance(exc, NotFound):
            raise Http404(exc.message) from None
        messages.error(request, exc.message)
    else:
        messages.success(request, success)
    return redirect(f"{reverse('ops:jobs')}#{anchor}")


@staff_required
@require_POST
def schedule_toggle(request, pk: int, enabled: bool):
    return _act(
        request,
        lambda: services.schedule_set_enabled(pk=pk, enabled=enabled),
        "Schedule resumed." if enabled else "Schedule paused.",
        "schedules",
    )


@staff_required
@require_POST
def result_retry(request, pk: int):
    return _act(
        request,
        lambda: services.task_result_retry(result=selectors.task_result_get(pk=pk)),
        "Task sent again.",
        "results",
    )


@staff_required
@require_POST
def dead_letter_replay(request, pk: int):
    return _act(
        request,
        lambda: services.dead_letter_replay(letter=selectors.dead_letter_get(pk=pk)),
        "Dead letter replayed.",
        "dead-letters",
    )


@staff_required
def cache(request):
    return render(request, "ops/cache.html", {"section": "Ops", "cache": selectors.cache_overview()})


@staff_required
@require_POST
def cache_clear(request):
    group = request.POST.get("group", "")
    try:
        cleared = services.cache_clear_group(group=group)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Cleared {cleared['deleted']} keys under {cleared['prefix']!r}.")
    return redirect("ops:cache")


@login_required
def my_jobs(request):
    kind = request.GET.get("kind") or None
    status = request.GET.get("status") or None
    if kind not in (None, *selectors.USER_JOB_KINDS) or status not in (None, *JobStatus.values):
        kind = status = None
    page = Paginator(selectors.user_job_index(user=request.user, kind=kind, status=status), 50).get_page(
        request.GET.get("page")
    )
    context = {
        "section": "Jobs",
        "page": page,
        "jobs": selectors.user_job_rows(page.object_list),
        "kinds": selectors.USER_JOB_KINDS,
        "statuses": JobStatus.values,
        "kind": kind or "",
        "status": status or "",
    }
    return render(request, "ops/my_jobs.html", context)
