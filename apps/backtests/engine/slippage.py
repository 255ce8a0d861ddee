"""Slippage models, applied to taker fills (market, stop-market, take-profit,
trailing-stop and end-of-data closes); resting limit fills get their limit price.

Spec forms accepted by ``normalize_slippage``:

* ``None`` / ``0`` / ``{"type": "none"}``
* ``{"type": "fixed", "amount": 0.5}``: a fixed price distance, against the trader
* ``0.0005`` (shorthand) or ``{"type": "percentage", "value": 0.0005}``
* ``{"type": "volume", "impact": 0.1, "base": 0.0, "max": 0.05}``: fraction
  ``base + impact * size / candle_volume`` capped at ``max`` (``max`` also applies
  to zero-volume candles)
* ``{"type": "random", "max": 0.001, "seed": 42}``: a fraction drawn uniformly
  from ``[0, max]`` per fill from a generator seeded with ``seed`` (so runs repeat)

Slippage always moves the price against the order: up for buys, down for sells.
"""

from __future__ import annotations

import random
from typing import Any

from .errors import ConfigError


def normalize_slippage(spec: Any) -> dict[str, Any]:
    """Return the canonical dict form of a slippage spec (raises ``ConfigError``)."""
    if spec is None:
        return {"type": "none"}
    if isinstance(spec, bool):
        raise ConfigError({"slippage": "must be a number or a slippage model object"})
    if isinstance(spec, (int, float)):
        if spec == 0:
            return {"type": "none"}
        spec = {"type": "percentage", "value": float(spec)}
    if not isinstance(spec, dict):
        raise ConfigError({"slippage": "must be a number or a slippage model object"})
    kind = spec.get("type", "percentage")
    if kind == "none":
        return {"type": "none"}
    if kind == "fixed":
        return {
            "type": "fixed",
            "amount": _non_negative(spec.get("amount"), "slippage.amount"),
        }
    if kind == "percentage":
        return {
            "type": "percentage",
            "value": _frac(spec.get("value"), "slippage.value"),
        }
    if kind == "volume":
        return {
            "type": "volume",
            "impact": _non_negative(spec.get("impact", 0.1), "slippage.impact"),
            "base": _frac(spec.get("base", 0.0), "slippage.base"),
            "max": _frac(spec.get("max", 0.05), "slippage.max"),
        }
    if kind == "random":
        seed = spec.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ConfigError({"slippage.seed": "must be an integer"})
        return {
            "type": "random",
            "max": _frac(spec.get("max"), "slippage.max"),
            "seed": seed,
        }
    raise ConfigError({"slippage.type": "must be one of none, fixed, percentage, volume, random"})


def _non_negative(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ConfigError({name: "must be a non-negative number"})
    return float(value)


def _frac(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 0.5:
        raise ConfigError({name: "must be a fraction between 0 and 0.5"})
    return float(value)


class SlippageModel:
    """Adjusts taker fill prices. ``apply(price, side, size, candle_volume)``; side +1 buy, -1 sell."""

    __slots__ = ("_rng", "amount", "base", "cap", "impact", "kind", "value")

    def __init__(self, spec: Any) -> None:
        spec = normalize_slippage(spec)
        self.kind = spec["type"]
        self.amount = spec.get("amount", 0.0)
        self.value = spec.get("value", 0.0)
        self.impact = spec.get("impact", 0.0)
        self.base = spec.get("base", 0.0)
        self.cap = spec.get("max", 0.0)
        self._rng = random.Random(spec["seed"]) if self.kind == "random" else None

    @property
    def size_independent(self) -> bool:
        """True when the slipped price does not depend on order size."""
        return self.kind != "volume"

    def apply(self, price: float, side: int, size: float = 0.0, candle_volume: float = 0.0) -> float:
        """The fill price after slippage for a taker order of ``size`` at reference ``price``."""
        kind = self.kind
        if kind == "none":
            return price
        if kind == "fixed":
            return max(price + side * self.amount, price * 1e-9)
        if kind == "percentage":
            frac = self.value
        elif kind == "volume":
            frac = (
                self.cap
                if candle_volume <= 0
                else min(self.cap, self.base + self.impact * size / candle_volume)
            )
        else:
            frac = self._rng.uniform(0.0, self.cap)  # type: ignore[union-attr]
        return price * (1.0 + side * frac)
