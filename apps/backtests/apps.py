from __future__ import annotations

from django.apps import AppConfig


class BacktestsConfig(AppConfig):
    name = "apps.backtests"
    label = "backtests"
    verbose_name = "Backtests"

    def ready(self) -> None:
        from apps.accounts.quotas import Quota, quota_usage_register
        from apps.backtests.selectors import research_jobs_active_count

        quota_usage_register(Quota.RESEARCH_JOBS, "backtests", research_jobs_active_count)
