from __future__ import annotations

from django.urls import path

from apps.ops import views

app_name = "ops"

urlpatterns = [
    path("jobs/", views.my_jobs, name="my-jobs"),
    path("ops/jobs/", views.jobs, name="jobs"),
    path(
        "ops/jobs/schedules/<int:pk>/pause/", views.schedule_toggle, {"enabled": False}, name="schedule-pause"
    ),
    path(
        "ops/jobs/schedules/<int:pk>/resume/",
        views.schedule_toggle,
        {"enabled": True},
        name="schedule-resume",
    ),
    path("ops/jobs/results/<int:pk>/retry/", views.result_retry, name="result-retry"),
    path("ops/jobs/dead-letters/<int:pk>/replay/", views.dead_letter_replay, name="dead-letter-replay"),
    path("ops/cache/", views.cache, name="cache"),
    path("ops/cache/clear/", views.cache_clear, name="cache-clear"),
]
