from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.ops.api import views

app_name = "ops-api"

router = SimpleRouter()
router.register("schedules", views.ScheduleViewSet, basename="schedule")
router.register("results", views.TaskResultViewSet, basename="result")
router.register("dead-letters", views.DeadLetterViewSet, basename="dead-letter")

urlpatterns = [
    path("jobs/", views.JobsOverviewView.as_view(), name="jobs"),
    path("workers/", views.WorkersView.as_view(), name="workers"),
    path("queues/", views.QueuesView.as_view(), name="queues"),
    path("cache/", views.CacheView.as_view(), name="cache"),
    path("cache/clear/", views.CacheClearView.as_view(), name="cache-clear"),
    *router.urls,
]
