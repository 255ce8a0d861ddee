"""Per-user quotas: how many research jobs may be active, bots running, and bots exist at once.

Each quota has a platform default (``QUOTA_MAX_*`` settings) and an admin's
per-user override (``User.max_*``, empty: the default), edited in Django admin.
The apps that own what is counted register a counter at start-up
(``quota_usage_register`` in their ``AppConfig.ready``), so this module counts
backtests and bots without importing the apps above it.

A service that adds something a quota counts wraps the addition in
``quota_guard``: it locks the user's row first, so every addition of one user
waits for the previous one to commit, and counts after the addition, inside
the same transaction, so two concurrent requests can never both take the last
slot. Past the limit it raises ``QuotaExceeded`` (409 ``quota_exceeded``,
``fields``: the quota, its limit and how many are in use) and the addition
is rolled back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db import models, transaction

from apps.accounts.models import User
from apps.core.api.throttling import SCOPES, scope_rate
from apps.core.errors import QuotaExceeded


class Quota(models.TextChoices):
    RESEARCH_JOBS = (
        "research_jobs",
        "research jobs (backtests, optimizations, bot replays) pending or running",
    )
    RUNNING_BOTS = "running_bots", "bots starting, running or paused"
    BOTS = "bots", "bots"


# The user's override field and the setting with the default, per quota.
USER_FIELDS = {
    Quota.RESEARCH_JOBS: "max_research_jobs",
    Quota.RUNNING_BOTS: "max_running_bots",
    Quota.BOTS: "max_bots",
}
DEFAULT_SETTINGS = {
    Quota.RESEARCH_JOBS: "QUOTA_MAX_RESEARCH_JOBS",
    Quota.RUNNING_BOTS: "QUOTA_MAX_RUNNING_BOTS",
    Quota.BOTS: "QUOTA_MAX_BOTS",
}
# What to do at the limit, for the error message.
ADVICE = {
    Quota.RESEARCH_JOBS: "wait for one to finish or cancel one",
    Quota.RUNNING_BOTS: "stop a bot first",
    Quota.BOTS: "delete a bot first",
}

Counter = Callable[[int], int]
_counters: dict[str, dict[str, Counter]] = {quota: {} for quota in Quota}


def quota_usage_register(quota: Quota, name: str, counter: Counter) -> None:
    """Count part of ``quota``'s usage with ``counter(user_id)`` (one name per counter: re-registering
    replaces it, so an app's ``ready`` may run twice)."""
    _counters[quota][name] = counter


def quota_limit(*, user: User, quota: Quota) -> int:
    """The user's limit: the admin's override, else the platform's default."""
    override = getattr(user, USER_FIELDS[quota])
    return override if override is not None else int(getattr(settings, DEFAULT_SETTINGS[quota]))


def quota_used(*, user_id: int, quota: Quota) -> int:
    return sum(counter(user_id) for counter in _counters[quota].values())


def quota_summary(*, user: User) -> dict[str, dict[str, Any]]:
    """Every quota of ``user``: ``{"research_jobs": {"limit", "used", "description"}, ...}``."""
    return {
        quota.value: {
            "limit": quota_limit(user=user, quota=quota),
            "used": quota_used(user_id=user.pk, quota=quota),
            "description": quota.label,
        }
        for quota in Quota
    }


def account_limits(*, user: User) -> dict[str, Any]:
    """What the settings page shows: the user's ``quotas`` and the API's ``rate_limits``
    (``[{"scope", "rate", "description"}]``, the scopes that are on)."""
    rate_limits = [
        {"scope": scope, "rate": rate, "description": about}
        for scope, about in SCOPES.items()
        if (rate := scope_rate(scope))
    ]
    return {"quotas": quota_summary(user=user), "rate_limits": rate_limits}


@contextmanager
def quota_guard(*, user_id: int, quota: Quota) -> Iterator[None]:
    """Run the block that adds one thing ``quota`` counts; raise ``QuotaExceeded`` (rolling the block
    back) if it took the user past the limit. Race-safe: see the module docstring."""
    with transaction.atomic():
        user = User.objects.select_for_update().only("pk", USER_FIELDS[quota]).get(pk=user_id)
        yield
        limit = quota_limit(user=user, quota=quota)
        used = quota_used(user_id=user_id, quota=quota)
        if used > limit:
            raise QuotaExceeded(
                f"Your account allows {limit} {quota.label} at once and you have {used - 1}; "
                f"{ADVICE[quota]}. An admin can raise the limit.",
                fields={"quota": quota.value, "limit": limit, "in_use": used - 1},
            )
