"""Position sizing: how much to buy or sell when a strategy does not say.

Spec forms (``BacktestConfig.sizing``):

* ``{"type": "percent_equity", "value": 1.0}`` (default): commit ``value`` of the
  current equity as margin (spot: as cash); the notional is ``margin * leverage``.
  Fees are taken out of the same budget, so 100% never overdraws the account.
* ``{"type": "fixed_quantity", "value": 0.5}``: base-asset units (fractional).
* ``{"type": "fixed_quote", "value": 1000}``: quote notional (e.g. 1000 USDT).
* ``{"type": "risk_per_trade", "value": 0.01}``: size so that hitting the stop
  loses ``value`` of equity: ``size = equity * value / |entry - stop|``; needs a stop.

Every size is then capped to what the free balance can pay for (margin + fee).
"""

from __future__ import annotations

from typing import Any

from .errors import BacktestError, ConfigError

SIZING_TYPES = ("percent_equity", "fixed_quantity", "fixed_quote", "risk_per_trade")


def normalize_sizing(spec: Any) -> dict[str, Any]:
    """Return the canonical dict form of a sizing spec (raises ``ConfigError``)."""
    if spec is None:
        return {"type": "percent_equity", "value": 1.0}
    if not isinstance(spec, dict):
        raise ConfigError({"sizing": "must be an object like {'type': 'percent_equity', 'value': 1.0}"})
    kind = spec.get("type", "percent_equity")
    if kind not in SIZING_TYPES:
        raise ConfigError({"sizing.type": f"must be one of {', '.join(SIZING_TYPES)}"})
    value = spec.get("value")
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
        raise ConfigError({"sizing.value": "must be a positive number"})
    if kind == "percent_equity" and value > 1:
        raise ConfigError(
            {"sizing.value": "percent_equity is a fraction of equity: at most 1.0 (leverage multiplies it)"}
        )
    if kind == "risk_per_trade" and value >= 1:
        raise ConfigError({"sizing.value": "risk_per_trade is a fraction of equity below 1 (0.01 is 1%)"})
    return {"type": kind, "value": float(value)}


def max_affordable_notional(available: float, price_rate: float, fixed_fee: float, leverage: float) -> float:
    """The largest notional whose margin plus fee fits in ``available``.

    ``notional / leverage + notional * rate + fixed <= available``.
    """
    budget = available - fixed_fee
    if budget <= 0:
        return 0.0
    return budget / (1.0 / leverage + price_rate)


def order_size(
    spec: dict[str, Any],
    *,
    equity: float,
    available: float,
    price: float,
    leverage: float,
    fee_rate: float,
    fixed_fee: float,
    stop_price: float | None = None,
) -> float:
    """Base-asset size for a new position at ``price`` under sizing ``spec``, capped by ``available``."""
    kind = spec["type"]
    value = spec["value"]
    cap = max_affordable_notional(available, fee_rate, fixed_fee, leverage)
    if kind == "percent_equity":
        notional = max_affordable_notional(equity * value, fee_rate, fixed_fee, leverage)
    elif kind == "fixed_quantity":
        notional = value * price
    elif kind == "fixed_quote":
        notional = value
    else:
        if stop_price is None or stop_price == price:
            raise BacktestError(
                "risk_per_trade sizing needs a stop loss (set stop_loss or pass one with the order)"
            )
        notional = equity * value / abs(price - stop_price) * price
    notional = min(notional, cap)
    if notional <= 0:
        return 0.0
    return notional / price
