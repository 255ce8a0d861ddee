from __future__ import annotations

from django.contrib import admin

from apps.portfolio.models import EquitySnapshot


@admin.register(EquitySnapshot)
class EquitySnapshotAdmin(admin.ModelAdmin):
    list_display = ("timestamp", "owner", "equity", "currency")
    list_filter = ("currency",)
    search_fields = ("owner__email", "currency")
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    date_hierarchy = "timestamp"
    readonly_fields = ("created_at",)
