from __future__ import annotations

from django.contrib import admin

from apps.marketdata.models import Candle, Exchange, ImportJob, Market, Subscription


@admin.register(Exchange)
class ExchangeAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "is_active", "markets_loaded_at", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["slug", "name"]


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = [
        "symbol", "exchange", "type", "base", "quote", "precision_price", "precision_amount", "min_notional",
        "maker_fee", "taker_fee", "active",
    ]  # fmt: skip
    list_filter = ["exchange", "type", "quote", "active"]
    search_fields = ["symbol", "exchange_symbol", "base", "quote"]
    list_select_related = ["exchange"]


@admin.register(Candle)
class CandleAdmin(admin.ModelAdmin):
    list_display = ["market", "timeframe", "open_at", "open", "high", "low", "close", "volume"]
    list_filter = ["timeframe", "market__exchange"]
    search_fields = ["market__symbol"]
    list_select_related = ["market", "market__exchange"]
    raw_id_fields = ["market"]
    # Millions of rows: no full COUNT(*) for the paginator, newest first via the unique index.
    show_full_result_count = False
    ordering = ["-open_time"]

    @admin.display(description="open time (UTC)", ordering="open_time")
    def open_at(self, obj: Candle):
        return obj.open_at


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    list_display = ["user", "market", "timeframe", "note", "created_at"]
    list_filter = ["timeframe", "market__exchange"]
    search_fields = ["user__email", "market__symbol", "note"]
    list_select_related = ["user", "market", "market__exchange"]
    raw_id_fields = ["user", "market"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "exchange",
        "symbol",
        "timeframe",
        "status",
        "progress",
        "inserted",
        "user",
        "created_at",
    ]
    list_filter = ["kind", "status", "timeframe"]
    search_fields = ["symbol", "user__email", "error"]
    list_select_related = ["user"]
    readonly_fields = ["created_at", "started_at", "finished_at", "heartbeat_at", "worker", "task_id"]
