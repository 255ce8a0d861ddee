from __future__ import annotations

from django.contrib import admin

from apps.orders.models import Fill, Order


class FillInline(admin.TabularInline):
    model = Fill
    extra = 0
    readonly_fields = ("created_at",)


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "id", "owner", "exchange", "symbol", "side", "type", "amount", "price", "filled", "status", "created_at",
    )  # fmt: skip
    list_filter = ("status", "side", "type", "exchange")
    search_fields = ("symbol", "client_order_id", "exchange_order_id", "owner__email")
    list_select_related = ("owner",)
    raw_id_fields = ("owner", "bot")
    readonly_fields = ("created_at", "updated_at")
    inlines = [FillInline]


@admin.register(Fill)
class FillAdmin(admin.ModelAdmin):
    list_display = ("id", "order", "price", "amount", "fee", "fee_asset", "is_maker", "timestamp")
    list_filter = ("is_maker", "fee_asset")
    search_fields = ("exchange_trade_id", "order__client_order_id", "order__symbol", "order__owner__email")
    list_select_related = ("order",)
    raw_id_fields = ("order",)
    readonly_fields = ("created_at",)
