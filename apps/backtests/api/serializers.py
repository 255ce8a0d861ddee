"""Serializers of the backtests API.

Input: ``StrictSerializer``s check types, lengths and bounds (every bad field at
once, unknown fields refused); the services then apply the domain rules (market,
stored candles, strategy parameters, engine settings). Output: serializers for
the small answers, and plain-dict builders for the big ones (run detail, trades,
optimizations), because the results page must answer in milliseconds; the
schema documents those as objects.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.backtests.engine.results import TRADE_FIELDS
from apps.backtests.models import (
    BacktestRun,
    BacktestTrade,
    Optimization,
    OptimizationKind,
    Strategy,
    StrategyVersion,
)
from apps.backtests.services.strategies import MAX_DESCRIPTION_CHARS, MAX_SOURCE_CHARS
from apps.backtests.specs import MAX_INITIAL_CASH, parse_time
from apps.core.api.serializers import StrictSerializer
from apps.core.errors import ValidationFailed
from apps.core.jobs import JobStatus

NUL_MESSAGE = "Null characters are not allowed."


def _reject_nul(value: Any) -> None:
    """JSON values (params, cost specs, spaces) may nest strings; PostgreSQL cannot store NUL in them."""
    if isinstance(value, str):
        if "\x00" in value:
            raise serializers.ValidationError(NUL_MESSAGE)
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_nul(key)
            _reject_nul(item)
    elif isinstance(value, list):
        for item in value:
            _reject_nul(item)


class JSONValueField(serializers.JSONField):
    """Any JSON value (a number or a spec object), refused if it holds a NUL character."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        _reject_nul(value)
        return value


class JSONObjectField(JSONValueField):
    default_error_messages = {"not_object": "Must be a JSON object."}

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        return value


class StrictBooleanField(serializers.BooleanField):
    """JSON ``true`` or ``false`` only (DRF's BooleanField also takes "yes", "on", 1 ...)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class NumberField(serializers.FloatField):
    """A finite JSON number (or numeric string); ``true``/``false`` are not numbers."""

    default_error_messages = {"invalid": "A valid number is required."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "format": "date-time"},
            {"type": "integer", "description": "epoch milliseconds"},
        ]
    }
)
class MomentField(serializers.Field):
    """An ISO-8601 date/time or epoch milliseconds (not a boolean, list or object)."""

    default_error_messages = {"invalid": "Expected an ISO-8601 date/time or epoch milliseconds."}

    def to_internal_value(self, data: Any):
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid")
        if isinstance(data, str) and "\x00" in data:
            self.fail("invalid")
        try:
            return parse_time(data, self.field_name)
        except ValidationFailed:
            self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class RunCreateSerializer(StrictSerializer):
    """``POST /api/v1/backtests/``: a built-in ``strategy`` or your own ``strategy_id``, a market, a range."""

    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    strategy = serializers.CharField(
        max_length=100,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="a built-in strategy name",
    )
    strategy_id = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, required=False, allow_null=True, help_text="one of your strategies"
    )
    strategy_version = serializers.IntegerField(
        min_value=1, max_value=2**31 - 1, required=False, allow_null=True, help_text="default: the latest"
    )
    params = JSONObjectField(required=False, allow_null=True)
    exchange = serializers.CharField(max_length=40, required=False, help_text="default: binance")
    symbol = serializers.CharField(max_length=60)
    timeframe = serializers.CharField(max_length=10)
    start = MomentField(required=False, allow_null=True)
    end = MomentField(required=False, allow_null=True)
    initial_cash = NumberField(required=False, allow_null=True, min_value=0, max_value=MAX_INITIAL_CASH)
    market_type = serializers.CharField(max_length=20, required=False, allow_null=True)
    leverage = NumberField(required=False, allow_null=True)
    margin_mode = serializers.CharField(max_length=20, required=False, allow_null=True)
    maintenance_margin_rate = NumberField(required=False, allow_null=True)
    fee = JSONValueField(required=False, allow_null=True, help_text="a rate or a fee spec object")
    slippage = JSONValueField(required=False, allow_null=True, help_text="a rate or a slippage spec object")
    sizing = JSONValueField(required=False, allow_null=True, help_text="a sizing spec object")
    allow_short = StrictBooleanField(required=False, allow_null=True)
    funding_rates = JSONValueField(required=False, allow_null=True)
    funding = JSONValueField(
        required=False,
        allow_null=True,
        help_text="futures: 'history' (default: the stored funding rates), 'none', or a rate per 8 hours",
    )
    stop_loss = JSONValueField(required=False, allow_null=True)
    take_profit = JSONValueField(required=False, allow_null=True)
    trailing_stop = JSONValueField(required=False, allow_null=True)


class OptimizationCreateSerializer(RunCreateSerializer):
    """``POST /api/v1/backtests/optimizations/``: a run request plus the search."""

    # A string, not an enum: the schema's enum names are global and "kind" is taken by imports.
    kind = serializers.CharField(
        max_length=20, required=False, help_text=f"one of {', '.join(OptimizationKind.values)} (default grid)"
    )
    space = JSONObjectField(help_text="parameter -> list of values or {min, max, step}")
    objective = serializers.CharField(max_length=40, required=False)
    maximize = StrictBooleanField(required=False)
    samples = serializers.IntegerField(required=False, allow_null=True)
    seed = serializers.IntegerField(required=False)
    walk_forward = JSONObjectField(required=False, allow_null=True)
    chunk_size = serializers.IntegerField(required=False, allow_null=True)


class StrategyCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_null=True, allow_blank=True)
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_CHARS,
        required=False,
        allow_null=True,
        allow_blank=True,
        trim_whitespace=False,
    )
    source = serializers.CharField(max_length=MAX_SOURCE_CHARS, trim_whitespace=False)


class StrategyUpdateSerializer(StrategyCreateSerializer):
    """PATCH: any of the fields; PUT: ``source`` required (the view validates with ``partial``)."""


class StrategyValidateSerializer(StrictSerializer):
    source = serializers.CharField(max_length=MAX_SOURCE_CHARS, trim_whitespace=False, allow_blank=True)


class MonteCarloSerializer(StrictSerializer):
    simulations = serializers.IntegerField(min_value=10, max_value=20_000, default=1000)
    method = serializers.ChoiceField(choices=["shuffle", "bootstrap"], default="shuffle")
    seed = serializers.IntegerField(min_value=0, max_value=2**32 - 1, default=0)


# ----------------------------------------------------------------------- output
class RunAcceptedSerializer(serializers.Serializer):
    """The 202 answer to a new run or optimization (``Location`` is ``url``)."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    status_url = serializers.CharField()
    url = serializers.CharField()


class JobErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    line = serializers.IntegerField(allow_null=True, required=False)


class RunStatusSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    progress = serializers.IntegerField(min_value=0, max_value=100)
    attempt = serializers.IntegerField(help_text="1, then one more for each automatic re-run after a fault")
    cancel_requested = serializers.BooleanField()
    error = JobErrorSerializer(allow_null=True)
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.FloatField(allow_null=True)


class JobCancelledSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=JobStatus.choices)
    cancel_requested = serializers.BooleanField()


class StrategySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    description = serializers.CharField()
    style = serializers.CharField()
    params = serializers.DictField(source="params_schema")
    version = serializers.IntegerField()
    source = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    url = serializers.SerializerMethodField()

    def get_url(self, obj: Strategy) -> str:
        return reverse("backtests-api:strategy-detail", args=[obj.id])


class CodeCheckSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    issues = serializers.ListField(child=serializers.DictField())
    strategy = serializers.DictField(allow_null=True)


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
        "attempt": run.attempt,
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
        "funding_source": run.funding_source or None,
        "lookahead": run.lookahead,
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
        "attempt": obj.attempt,
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
        "lookahead": obj.lookahead,
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
