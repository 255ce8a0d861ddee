from __future__ import annotations

from django.contrib import admin

from apps.risk.models import KillSwitchActivation, NotificationChannel, NotificationDelivery, RiskProfile


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


@admin.register(NotificationChannel)
class NotificationChannelAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "kind", "enabled", "created_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "owner__email")
    raw_id_fields = ("owner",)
    # The secret is never shown, not even to staff: only its masked form.
    exclude = ("secret",)
    readonly_fields = ("masked_secret", "created_at", "updated_at")


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ("pk", "owner", "channel", "event", "status", "attempts", "created_at", "delivered_at")
    list_filter = ("status", "event")
    search_fields = ("owner__email",)
    list_select_related = ("owner", "channel")
    raw_id_fields = ("owner", "channel")
    readonly_fields = [f.name for f in NotificationDelivery._meta.fields]


@admin.register(KillSwitchActivation)
class KillSwitchActivationAdmin(admin.ModelAdmin):
    list_display = ("pk", "owner", "engaged_at", "engaged_by", "source", "retry", "attempts", "released_at")
    list_filter = ("retry", "source", "close_positions")
    search_fields = ("owner__email",)
    list_select_related = ("owner", "engaged_by")
    # The audit is written by the kill switch only.
    readonly_fields = [f.name for f in KillSwitchActivation._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
