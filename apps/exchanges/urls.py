from __future__ import annotations

from django.urls import path

from apps.exchanges import views

app_name = "exchanges"

urlpatterns = [
    path("", views.index, name="index"),
    path("connections/add/", views.connection_add, name="connection-add"),
    path("connections/<int:pk>/delete/", views.connection_delete, name="connection-delete"),
    path("paper/reset/", views.paper_reset, name="paper-reset"),
]
