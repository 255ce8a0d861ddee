"""``BacktestConfig``: everything about a run except the data and the strategy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .errors import ConfigError
from .fees import normalize_fee
from .margin import normalize_funding
from .sizing import normalize_sizing
from .slippage import normalize_slippage
from .tiers import MAX_LEVERAGE, LeverageTiers, resolve_tiers


@dataclass
class BacktestConfig:
    """Run settings; ``to_dict()``/``from_dict()`` round-trip through JSON.

    Futures risk limits come from ``leverage_tiers`` (ccxt ``fetch_leverage_tiers``
    format), else the shipped Binance USD-M tiers of ``symbol``, else one flat
    bracket at ``maintenance_margin_rate`` (see ``engine.tiers``).

    Money is float64 inside the engine (see ``apps.backtests.engine`` docs for the
    measured tolerance against exact decimal arithmetic); the product stores the
    inputs and outputs as Decimal.
    """

    initial_cash: float = 10_000.0
    market_type: str = "spot"
    leverage: float = 1.0
    margin_mode: str = "isolated"
    maintenance_margin_rate: float = 0.005
    symbol: str | None = None
    leverage_tiers: Any = None
    fee: Any = None
    slippage: Any = None
    sizing: Any = None
    allow_short: bool = False
    funding_rates: Any = None
    stop_loss: float | None = None
    take_profit: float | None = None
    trailing_stop: float | None = None
    start: Any = None
    end: Any = None
    close_at_end: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Normalize the specs in place and raise ``ConfigError`` listing every problem."""
        errors: dict[str, str] = {}
        if (
            not _is_number(self.initial_cash)
            or not self.initial_cash > 0
            or not math.isfinite(self.initial_cash)
        ):
            errors["initial_cash"] = "must be a positive number"
        if self.market_type not in ("spot", "futures"):
            errors["market_type"] = "must be 'spot' or 'futures'"
        if self.margin_mode not in ("isolated", "cross"):
            errors["margin_mode"] = "must be 'isolated' or 'cross'"
        if not _is_number(self.leverage) or not 1 <= self.leverage <= MAX_LEVERAGE:
            errors["leverage"] = f"must be between 1 and {MAX_LEVERAGE:g}"
        elif self.market_type == "spot" and self.leverage != 1:
            errors["leverage"] = "spot trading has no leverage; use market_type 'futures'"
        if self.market_type == "spot" and self.allow_short:
            errors["allow_short"] = "spot cannot be sold short; use market_type 'futures'"
        mmr = self.maintenance_margin_rate
        if not _is_number(mmr) or not 0 <= mmr < 0.5:
            errors["maintenance_margin_rate"] = "must be a fraction between 0 and 0.5"
        if self.symbol is not None and not isinstance(self.symbol, str):
            errors["symbol"] = "must be a market symbol such as 'BTC/USDT'"
        tiers = None
        if "maintenance_margin_rate" not in errors and "symbol" not in errors:
            try:
                tiers = resolve_tiers(self.leverage_tiers, self.symbol, float(mmr))
            except ConfigError as exc:
                errors.update(exc.fields)
        if tiers is not None and "leverage" not in errors and self.leverage > tiers.max_leverage[0]:
            # The same limit every order's leverage is capped by (SimulatedBroker._open).
            errors["leverage"] = (
                f"must be at most {tiers.max_leverage[0]:g}, the market's maximum "
                f"({tiers.source}: maintenance rate {tiers.mmr[0]:g} at the smallest bracket)"
            )
        if self.leverage_tiers and tiers is not None:
            self.leverage_tiers = tiers.to_ccxt()
        for name in ("stop_loss", "take_profit", "trailing_stop"):
            value = getattr(self, name)
            if value is None:
                continue
            # A take-profit may exceed 100%; a stop or trail of 100% or more could never trigger.
            upper = math.inf if name == "take_profit" else 1.0
            if not _is_number(value) or not 0 < value < upper:
                errors[name] = "must be a positive fraction (0.02 is 2%)"
        for name, normalizer in (
            ("fee", normalize_fee),
            ("slippage", normalize_slippage),
            ("sizing", normalize_sizing),
        ):
            try:
                setattr(self, name, normalizer(getattr(self, name)))
            except ConfigError as exc:
                errors.update(exc.fields)
        try:
            self.funding_rates = normalize_funding(self.funding_rates)
        except ConfigError as exc:
            errors.update(exc.fields)
        if self.funding_rates is not None and self.market_type != "futures":
            errors["funding_rates"] = "funding applies to perpetual futures only"
        for name in ("start", "end"):
            try:
                setattr(self, name, _to_ms(getattr(self, name)))
            except ValueError as exc:
                errors[name] = str(exc)
        if (
            self.start is not None
            and self.end is not None
            and not errors.get("start")
            and self.start >= self.end
        ):
            errors["end"] = "must be after start"
        if errors:
            raise ConfigError(errors)
        self.initial_cash = float(self.initial_cash)
        self.leverage = float(self.leverage)
        self.maintenance_margin_rate = float(mmr)

    def tiers(self) -> LeverageTiers:
        """The leverage tiers this run uses (see the class docstring)."""
        return resolve_tiers(self.leverage_tiers, self.symbol, self.maintenance_margin_rate)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (normalized specs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BacktestConfig:
        """Build from ``to_dict()`` output or user JSON; unknown keys raise ``ConfigError``."""
        known = {f.name for f in fields(cls)}
        unknown = {k: "unknown option" for k in data if k not in known}
        if unknown:
            raise ConfigError(unknown)
        return cls(**data)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _to_ms(value: Any) -> int | None:
    """Accept None, epoch milliseconds, ISO-8601 strings or datetimes; return ms UTC."""
    if value is None:
        return None
    if _is_number(value):
        return int(value)
    from datetime import UTC, datetime

    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be an ISO-8601 date or epoch milliseconds, got {value!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    raise ValueError("must be an ISO-8601 date or epoch milliseconds")
