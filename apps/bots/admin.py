from __future__ import annotations

from django.contrib import admin

from apps.bots.models import Bot, BotEvent


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "owner",
        "strategy",
        "exchange",
        "symbol",
        "timeframe",
        "mode",
        "status",
        "updated_at",
    )
    list_filter = ("status", "mode", "exchange", "timeframe", "strategy")
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
