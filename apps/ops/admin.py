from __future__ import annotations

from django.contrib import admin

from apps.ops.models import DeadLetter


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ("failed_at", "task_name", "exception_type", "queue", "retries", "replayed_at")
    list_filter = ("task_name", "exception_type", "queue")
    search_fields = ("task_name", "task_id", "error")
    date_hierarchy = "failed_at"
    # A record of what happened; replaying goes through the jobs page (/ops/jobs/) or the API.
    readonly_fields = [f.name for f in DeadLetter._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
