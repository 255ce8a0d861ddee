from __future__ import annotations

from django.contrib import admin

from apps.risk.models import RiskProfile


@admin.register(RiskProfile)
class RiskProfileAdmin(admin.ModelAdmin):
    list_display = (
        "owner", "kill_switch", "currency", "max_position_notional", "max_daily_loss", "max_leverage",
        "max_open_orders", "updated_at",
    )  # fmt: skip
    list_filter = ("kill_switch", "currency")
    search_fields = ("owner__email",)
    list_select_related = ("owner",)
    raw_id_fields = ("owner",)
    readonly_fields = ("updated_at",)
