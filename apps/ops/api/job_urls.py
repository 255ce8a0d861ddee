"""``/api/v1/jobs/``: the signed-in user's own jobs (not staff-only, unlike ``/api/v1/ops/``)."""

from __future__ import annotations

from django.urls import path

from apps.ops.api import views

app_name = "jobs-api"

urlpatterns = [path("", views.UserJobViewSet.as_view({"get": "list"}), name="list")]
