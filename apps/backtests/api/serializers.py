"""Output shapes of the backtests API (plain dicts: the results page must answer in milliseconds)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from apps.backtests.engine.results import TRADE_FIELDS
from apps.backtests.models import BacktestRun, BacktestTrade, Optimization, Strategy, StrategyVersion


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _dec(value) -> str | None:
    # normalize() drops the storage scale's trailing zeros; "f" avoids exponent notation (1E+4).
    return None if value is None else format(value.normalize(), "f")


def strategy_ref(job) -> dict[str, Any]:
    return {
        "kind": job.strategy_kind,
        "name": job.strategy_name,
        "id": job.strategy_id,
        "version": job.code_version,
        "code_hash": job.code_hash or None,
    }


def run_urls(run: BacktestRun) -> dict[str, str]:
    def u(name: str) -> str:
        return reverse(f"backtests-api:{name}", args=[run.id])

    return {
        "self": u("run-detail"),
        "status": u("run-status"),
        "results": u("run-results"),
        "trades": u("run-trades"),
        "equity": u("run-equity"),
        "positions": u("run-positions"),
        "candles": u("run-candles"),
        "export": u("run-export"),
        "cancel": u("run-cancel"),
        "monte_carlo": u("run-monte-carlo"),
    }


def run_status(run: BacktestRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "progress": run.progress,
        "cancel_requested": run.cancel_requested,
        "error": run.error_info,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": run.duration_seconds,
    }


def run_detail(run: BacktestRun, *, include_config: bool = True) -> dict[str, Any]:
    data = {
        **run_status(run),
        "name": run.name,
        "strategy": strategy_ref(run),
        "params": run.params,
        "exchange": run.exchange,
        "symbol": run.symbol,
        "timeframe": run.timeframe,
        "start": _iso(run.start),
        "end": _iso(run.end),
        "initial_cash": _dec(run.initial_cash),
        "candles": run.candles,
        "created_at": _iso(run.created_at),
        "headline": run.headline,
        "urls": run_urls(run),
    }
    if include_config:
        data["config"] = run.config
    return data


def trade(row: BacktestTrade) -> dict[str, Any]:
    from datetime import UTC, datetime

    return {
        "n": row.n,
        "entry_time": datetime.fromtimestamp(row.entry_time / 1000, tz=UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        "exit_time": datetime.fromtimestamp(row.exit_time / 1000, tz=UTC).isoformat().replace("+00:00", "Z"),
        "entry_ts": row.entry_time,
        "exit_ts": row.exit_time,
        "side": row.side,
        "size": _dec(row.size),
        "entry_price": _dec(row.entry_price),
        "exit_price": _dec(row.exit_price),
        "fees": _dec(row.fees),
        "funding": _dec(row.funding),
        "pnl": _dec(row.pnl),
        "return_pct": row.return_pct,
        "mae": row.mae,
        "mfe": row.mfe,
        "duration": row.duration,
        "exit_reason": row.exit_reason,
        "leverage": row.leverage,
    }


# The CSV has the engine's trade columns, numbered.
TRADE_CSV_FIELDS = ("n", *TRADE_FIELDS)


def strategy(obj: Strategy) -> dict[str, Any]:
    return {
        "id": obj.id,
        "name": obj.name,
        "description": obj.description,
        "style": obj.style,
        "params": obj.params_schema,
        "version": obj.version,
        "source": obj.source,
        "created_at": _iso(obj.created_at),
        "updated_at": _iso(obj.updated_at),
        "url": reverse("backtests-api:strategy-detail", args=[obj.id]),
    }


def strategy_version(obj: StrategyVersion) -> dict[str, Any]:
    return {
        "version": obj.version,
        "name": obj.name,
        "description": obj.description,
        "style": obj.style,
        "params": obj.params_schema,
        "source": obj.source,
        "code_hash": obj.code_hash,
        "created_at": _iso(obj.created_at),
    }


def optimization(obj: Optimization, *, full: bool = True) -> dict[str, Any]:
    def u(name: str) -> str:
        return reverse(f"backtests-api:{name}", args=[obj.id])

    pct = 100 if obj.status == "completed" else (int(100 * obj.completed / obj.total) if obj.total else 0)
    data = {
        "id": obj.id,
        "name": obj.name,
        "kind": obj.kind,
        "status": obj.status,
        "progress": pct,
        "total": obj.total,
        "completed": obj.completed,
        "strategy": strategy_ref(obj),
        "params": obj.params,
        "space": obj.space,
        "objective": obj.objective,
        "maximize": obj.maximize,
        "samples": obj.samples,
        "seed": obj.seed,
        "exchange": obj.exchange,
        "symbol": obj.symbol,
        "timeframe": obj.timeframe,
        "start": _iso(obj.start),
        "end": _iso(obj.end),
        "initial_cash": _dec(obj.initial_cash),
        "created_at": _iso(obj.created_at),
        "started_at": _iso(obj.started_at),
        "finished_at": _iso(obj.finished_at),
        "duration_seconds": obj.duration_seconds,
        "error": obj.error_info,
        "best": obj.best,
        "urls": {
            "self": u("optimization-detail"),
            "results": u("optimization-results"),
            "heatmap": u("optimization-heatmap"),
            "cancel": u("optimization-cancel"),
        },
    }
    if full:
        data["config"] = obj.config
        data["walk_forward_options"] = obj.walk_forward_options or None
        data["walk_forward"] = obj.walk_forward
    return data
