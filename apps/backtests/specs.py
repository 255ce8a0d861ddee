"""Validation of what a run or an optimization is asked to do (market, range, strategy, costs).

Shared by ``services`` (runs) and ``optimization``: every problem becomes a
``ValidationFailed`` with per-field messages, so the API and the dashboard form
show them next to the right input.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.backtests.engine import BacktestConfig, Param
from apps.backtests.engine.errors import ConfigError, ParamError
from apps.backtests.engine.params import validate_params
from apps.backtests.models import Strategy, StrategyKind, StrategyVersion
from apps.core.errors import NotFound, ValidationFailed

# Options of the engine's BacktestConfig a client may set (everything but start/end/extra).
CONFIG_OPTIONS = (
    "initial_cash",
    "market_type",
    "leverage",
    "margin_mode",
    "maintenance_margin_rate",
    "fee",
    "slippage",
    "sizing",
    "allow_short",
    "funding_rates",
    "stop_loss",
    "take_profit",
    "trailing_stop",
)
# Far above any account, and small enough that every amount a run stores fits ``apps.core.money``.
MAX_INITIAL_CASH = 1e12
SPEC_KEYS = frozenset(
    {"name", "strategy", "strategy_id", "strategy_version", "params", "exchange", "symbol", "timeframe"}
    | {"start", "end", "funding"}
    | set(CONFIG_OPTIONS)
)
# Where a futures run's funding comes from (``ResearchJob.funding_source``): the stored history
# (the default), none, a constant rate or a series given with the request (``funding_rates``).
FUNDING_HISTORY, FUNDING_NONE, FUNDING_CONSTANT, FUNDING_SERIES = "history", "none", "constant", "series"


def resolve_funding(value: Any, options: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """Read the ``funding`` option (``"history"``, ``"none"`` or a rate) into ``options``.

    Returns ``(source, field errors)``; a rate becomes ``options["funding_rates"]``.
    Spot runs have no funding; a futures run without either option uses the
    stored history.
    """
    futures = options.get("market_type") == "futures"
    given = options.get("funding_rates")
    if value is not None and given is not None:
        return "", {"funding": "give either 'funding' or 'funding_rates', not both"}
    if value is None:
        if given is None:
            return (FUNDING_HISTORY if futures else ""), {}
        return (FUNDING_CONSTANT if isinstance(given, int | float) else FUNDING_SERIES), {}
    if isinstance(value, str) and value.strip().lower() in (FUNDING_HISTORY, FUNDING_NONE):
        value = value.strip().lower()
        if value == FUNDING_HISTORY and not futures:
            return "", {"funding": "funding applies to perpetual futures only"}
        return (value if futures else ""), {}
    try:
        if isinstance(value, bool):
            raise ValueError
        rate = float(value)
    except (TypeError, ValueError):
        return "", {"funding": "must be 'history', 'none' or a rate per 8 hours such as 0.0001"}
    options["funding_rates"] = rate  # the engine checks the rate (a small fraction, futures only)
    return FUNDING_CONSTANT, {}


def code_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def schema_from_json(schema: dict[str, dict[str, Any]]) -> dict[str, Param]:
    """Rebuild ``Param`` objects from a stored JSON schema (user strategies)."""
    out: dict[str, Param] = {}
    for name, spec in (schema or {}).items():
        choices = spec.get("choices")
        out[name] = Param(
            type=spec["type"],
            default=spec.get("default"),
            min=spec.get("min"),
            max=spec.get("max"),
            step=spec.get("step"),
            choices=tuple(choices) if choices is not None else None,
            help=spec.get("help") or "",
        )
    return out


@dataclass
class StrategyRef:
    kind: str
    name: str
    strategy: Strategy | None = None
    version: StrategyVersion | None = None

    @property
    def schema(self) -> dict[str, Param]:
        if self.kind == StrategyKind.BUILTIN:
            from apps.backtests.strategies.registry import get_strategy_class

            return dict(get_strategy_class(self.name).params)
        return schema_from_json(self.version.params_schema if self.version else {})

    def validate_params(self, params: dict[str, Any], *, prefix: str = "params") -> dict[str, Any]:
        """Coerce and check ``params`` (cross-field rules too, for built-ins)."""
        try:
            if self.kind == StrategyKind.BUILTIN:
                from apps.backtests.strategies.registry import build_strategy

                return dict(build_strategy(self.name, params).p)
            return validate_params(self.schema, params)
        except ParamError as exc:
            raise ValidationFailed(
                f"Invalid strategy parameters: {exc}",
                fields={f"{prefix}.{k}": [v] for k, v in exc.fields.items()},
            ) from None

    def fields(self) -> dict[str, Any]:
        return {
            "strategy_kind": self.kind,
            "strategy_name": self.name,
            "strategy": self.strategy,
            "strategy_version": self.version,
            "code_version": self.version.version if self.version else None,
            "code_hash": self.version.code_hash if self.version else "",
        }


def resolve_strategy(*, user, data: dict[str, Any]) -> StrategyRef:
    """``strategy`` (built-in name) or ``strategy_id`` (+ optional ``strategy_version``) of the user's."""
    name, sid = data.get("strategy"), data.get("strategy_id")
    if (name in (None, "")) == (sid in (None, "")):
        raise ValidationFailed(
            "Give either a built-in strategy name or a strategy_id of your own.",
            fields={"strategy": ["give either 'strategy' (built-in name) or 'strategy_id'"]},
        )
    if sid in (None, ""):
        from apps.backtests.strategies.registry import UnknownStrategy, get_strategy_class

        if not isinstance(name, str):
            raise ValidationFailed("strategy must be a name.", fields={"strategy": ["must be a string"]})
        try:
            get_strategy_class(name)
        except UnknownStrategy as exc:
            raise ValidationFailed(str(exc), fields={"strategy": [str(exc)]}) from None
        return StrategyRef(kind=StrategyKind.BUILTIN, name=name)
    if isinstance(sid, bool) or not isinstance(sid, int | str) or not str(sid).isdigit():
        raise ValidationFailed(
            "strategy_id must be an integer.", fields={"strategy_id": ["must be an integer"]}
        )
    strategy = Strategy.objects.filter(owner=user, id=int(sid)).first()
    if strategy is None:
        # Another user's strategy is indistinguishable from a missing one.
        raise ValidationFailed("Unknown strategy_id.", fields={"strategy_id": ["no such strategy"]})
    wanted = data.get("strategy_version")
    if wanted in (None, ""):
        version = strategy.versions.order_by("-version").first()
    else:
        if isinstance(wanted, bool) or not str(wanted).isdigit():
            raise ValidationFailed(
                "strategy_version must be an integer.", fields={"strategy_version": ["must be an integer"]}
            )
        version = strategy.versions.filter(version=int(wanted)).first()
        if version is None:
            raise ValidationFailed(
                f"Strategy {strategy.name} has no version {wanted}.",
                fields={"strategy_version": ["no such version"]},
            )
    return StrategyRef(kind=StrategyKind.USER, name=version.name, strategy=strategy, version=version)


def parse_time(value: Any, field: str) -> datetime | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int | float) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        if isinstance(value, datetime):
            moment = value
        else:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise ValidationFailed(
            f"{field}: expected an ISO-8601 date/time or epoch milliseconds.",
            fields={field: ["expected an ISO-8601 date/time or epoch milliseconds"]},
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _check_candles(market, timeframe: str, start: datetime | None, end: datetime | None) -> None:
    """Refuse a range with no stored candles now, rather than as a failed run later."""
    from apps.marketdata.selectors import candles_stored

    try:
        stored = candles_stored(market=market, timeframe=timeframe, start=start, end=end)
    except NotFound as exc:
        raise ValidationFailed(exc.message, fields=exc.fields, code="no_candles") from None
    if not stored:
        raise ValidationFailed(
            f"No {timeframe} candles are stored for {market.symbol} in the selected range.",
            fields={"start": ["no candles stored in this range"]},
            code="no_candles",
        )


@dataclass
class RunSpec:
    """A validated run request: strategy, params, market, range and engine config."""

    name: str
    strategy: StrategyRef
    params: dict[str, Any]
    exchange: str
    symbol: str
    timeframe: str
    start: datetime | None
    end: datetime | None
    config: BacktestConfig
    funding_source: str = ""

    def model_fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.strategy.fields(),
            "params": self.params,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "start": self.start,
            "end": self.end,
            "initial_cash": Decimal(repr(self.config.initial_cash)),
            "config": self.config.to_dict(),
            "funding_source": self.funding_source,
        }


def parse_run_spec(
    *, user, data: Any, extra_keys: frozenset[str] = frozenset(), check_params: bool = True
) -> RunSpec:
    """Validate a run request (the API body or a dashboard form's cleaned data)."""
    if not isinstance(data, dict):
        raise ValidationFailed("Expected a JSON object.")
    unknown = sorted(k for k in data if k not in SPEC_KEYS and k not in extra_keys)
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(unknown)}.", fields={k: ["unknown field"] for k in unknown}
        )
    errors: dict[str, list[str]] = {}
    name = data.get("name")
    name = "" if name is None else name
    if not isinstance(name, str) or len(name) > 200:
        errors["name"] = ["must be a string of at most 200 characters"]
    for key in ("exchange", "symbol", "timeframe"):
        value = data.get(key, "binance" if key == "exchange" else None)
        if not isinstance(value, str) or not value.strip():
            errors[key] = ["this field is required"]
    if errors:
        raise ValidationFailed(next(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors)
    exchange = data.get("exchange", "binance").strip()
    symbol, timeframe = data["symbol"].strip(), data["timeframe"].strip()
    from apps.marketdata.selectors import market_get
    from apps.marketdata.timeframes import timeframe_ms

    timeframe_ms(timeframe)  # UnknownTimeframe is a 400 with fields
    try:
        market = market_get(exchange=exchange, symbol=symbol)
    except NotFound as exc:  # in a request body an unknown market is bad input, not a missing URL
        raise ValidationFailed(exc.message, fields=exc.fields, code="unknown_market") from None
    start, end = parse_time(data.get("start"), "start"), parse_time(data.get("end"), "end")
    if start and end and start >= end:
        raise ValidationFailed("end must be after start.", fields={"end": ["must be after start"]})
    _check_candles(market, timeframe, start, end)
    strategy = resolve_strategy(user=user, data=data)
    params = data.get("params") or {}
    if not isinstance(params, dict):
        raise ValidationFailed("params must be an object.", fields={"params": ["must be a JSON object"]})
    if check_params:
        params = strategy.validate_params(params)
    options = {k: data[k] for k in CONFIG_OPTIONS if k in data and data[k] is not None}
    if "initial_cash" in options:
        try:
            cash = Decimal(str(options["initial_cash"]))
            if not cash.is_finite() or isinstance(options["initial_cash"], bool):
                raise InvalidOperation
            options["initial_cash"] = float(cash)
        except (InvalidOperation, ValueError):
            raise ValidationFailed(
                "initial_cash must be a number.", fields={"initial_cash": ["must be a positive number"]}
            ) from None
        if options["initial_cash"] > MAX_INITIAL_CASH:
            raise ValidationFailed(
                f"initial_cash must be at most {MAX_INITIAL_CASH:g}.",
                fields={"initial_cash": [f"at most {MAX_INITIAL_CASH:g}"]},
            )
    if "leverage" in options and "market_type" not in options:
        try:
            if float(options["leverage"]) != 1.0:
                options["market_type"] = "futures"
        except (TypeError, ValueError):
            pass
    funding_source, funding_errors = resolve_funding(data.get("funding"), options)
    try:
        config = BacktestConfig.from_dict(options)
    except ConfigError as exc:
        fields = {**{k: [v] for k, v in exc.fields.items()}, **{k: [v] for k, v in funding_errors.items()}}
        raise ValidationFailed(f"Invalid backtest settings: {exc}", fields=fields) from None
    except (TypeError, ValueError) as exc:
        raise ValidationFailed(f"Invalid backtest settings: {exc}") from None
    if funding_errors:
        raise ValidationFailed(
            f"Invalid backtest settings: {next(iter(funding_errors.values()))}",
            fields={k: [v] for k, v in funding_errors.items()},
        )
    return RunSpec(
        name=name.strip(),
        strategy=strategy,
        params=params,
        exchange=market.exchange.slug,
        symbol=market.symbol,
        timeframe=timeframe,
        start=start,
        end=end,
        config=config,
        funding_source=funding_source,
    )
