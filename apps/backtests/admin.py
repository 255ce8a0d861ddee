from __future__ import annotations

from django.contrib import admin

from apps.backtests.models import BacktestRun, BacktestTrade, Optimization, Strategy, StrategyVersion


class StrategyVersionInline(admin.TabularInline):
    model = StrategyVersion
    extra = 0
    fields = ("version", "name", "style", "code_hash", "created_at")
    readonly_fields = fields
    can_delete = False


@admin.register(Strategy)
class StrategyAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "style", "version", "updated_at")
    list_filter = ("style",)
    search_fields = ("name", "owner__email")
    inlines = [StrategyVersionInline]


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "strategy_name",
        "symbol",
        "timeframe",
        "status",
        "progress",
        "total_return",
        "created_at",
    )
    list_filter = ("status", "strategy_kind", "timeframe")
    search_fields = ("name", "strategy_name", "symbol", "owner__email")
    readonly_fields = ("heartbeat_at", "started_at", "finished_at", "task_id", "worker")
    raw_id_fields = ("owner", "strategy", "strategy_version")


@admin.register(BacktestTrade)
class BacktestTradeAdmin(admin.ModelAdmin):
    list_display = ("run", "n", "side", "entry_price", "exit_price", "pnl", "exit_reason")
    list_filter = ("side", "exit_reason")
    search_fields = ("run__strategy_name", "run__symbol", "exit_reason")
    raw_id_fields = ("run",)


@admin.register(Optimization)
class OptimizationAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "owner",
        "kind",
        "strategy_name",
        "symbol",
        "status",
        "completed",
        "total",
        "best_value",
    )
    list_filter = ("status", "kind")
    search_fields = ("name", "strategy_name", "symbol", "owner__email")
    raw_id_fields = ("owner", "strategy", "strategy_version")
    exclude = ("plan",)
