from __future__ import annotations

from django.contrib import admin

from apps.bots.models import Bot, BotEvent, BotSignal


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "source",
        "strategy",
        "exchange",
        "symbol",
        "timeframe",
        "mode",
        "status",
        "updated_at",
    )
    list_filter = ("status", "source", "mode", "exchange", "timeframe", "strategy")
    search_fields = ("name", "symbol", "strategy", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "connection", "user_strategy", "strategy_version")
    readonly_fields = ("created_at", "updated_at")


@admin.register(BotEvent)
class BotEventAdmin(admin.ModelAdmin):
    list_display = ("bot", "kind", "message", "created_at")
    list_filter = ("kind",)
    search_fields = ("message", "bot__name")
    raw_id_fields = ("bot",)


@admin.register(BotSignal)
class BotSignalAdmin(admin.ModelAdmin):
    """The webhook signals received. The token is never stored (only a hash, on ``BotWebhook``,
    which has no admin), so nothing here can show it."""

    list_display = ("received_at", "bot", "action", "signal_id", "outcome", "reason")
    list_filter = ("outcome", "action")
    search_fields = ("signal_id", "reason", "bot__name")
    list_select_related = ("bot",)
    raw_id_fields = ("bot",)
    readonly_fields = (
        "bot",
        "received_at",
        "payload",
        "action",
        "signal_id",
        "signal_time",
        "dedup_key",
        "outcome",
        "reason",
        "client_order_ids",
        "order_ids",
    )

    def has_add_permission(self, request) -> bool:
        return False  # a log: signals arrive on the webhook
