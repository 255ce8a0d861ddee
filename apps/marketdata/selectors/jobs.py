"""Reads of users' import/download jobs (owner-scoped: another user's job is ``NotFound``)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.marketdata.models import ImportJob


def import_job_list(*, user) -> QuerySet[ImportJob]:
    """The user's import/download jobs, newest first."""
    return ImportJob.objects.filter(user=user)


def import_job_get(*, user, pk: int | str) -> ImportJob:
    """One of the user's jobs; another user's (or a missing one) is ``NotFound``."""
    try:
        number = int(pk)
        if not 0 < number < 2**63:  # beyond the id column: nothing to look up
            raise ImportJob.DoesNotExist
        return import_job_list(user=user).get(pk=number)
    except (ImportJob.DoesNotExist, ValueError):
        raise NotFound("Job not found.") from None
