"""The strategy registry: built-in strategies by name, with their parameter schemas.

``list_strategies()`` feeds the strategy list API and dashboard forms,
``build_strategy(name, params)`` is what the CLI, the backtest service and bots
use to get a configured instance. User strategies are not registered here: they
run only inside the sandbox (``strategies.sandbox``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apps.backtests.engine import SignalStrategy, Strategy
from apps.backtests.engine.errors import BacktestError
from apps.backtests.engine.params import schema_to_json

from .builtin import BUILTIN_STRATEGIES

StrategyClass = type[SignalStrategy] | type[Strategy]


class UnknownStrategy(BacktestError):
    """No strategy with that name is registered."""

    def __init__(self, name: str) -> None:
        self.name = name
        known = ", ".join(sorted(_REGISTRY))
        super().__init__(f"unknown strategy '{name}' (available: {known})")


@dataclass(frozen=True)
class StrategyInfo:
    """What the API and forms need to know about one strategy."""

    name: str
    description: str
    style: str  # "signal" | "event"
    params: dict[str, dict[str, Any]]  # JSON schema from ``schema_to_json``

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "style": self.style,
            "params": self.params,
        }


_REGISTRY: dict[str, StrategyClass] = {}


def register(cls: StrategyClass) -> StrategyClass:
    """Add a strategy class under its ``name`` (usable as a decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"a strategy named {cls.name!r} is already registered")
    _REGISTRY[cls.name] = cls
    return cls


for _cls in BUILTIN_STRATEGIES:
    register(_cls)


def info_for(cls: StrategyClass) -> StrategyInfo:
    """``StrategyInfo`` of a strategy class (registered or not)."""
    style = "event" if issubclass(cls, Strategy) else "signal"
    return StrategyInfo(
        name=cls.name,
        description=cls.description,
        style=style,
        params=schema_to_json(cls.params),
    )


def list_strategies() -> list[StrategyInfo]:
    """Every registered strategy, sorted by name."""
    return [info_for(_REGISTRY[name]) for name in sorted(_REGISTRY)]


def get_strategy_class(name: str) -> StrategyClass:
    """The class registered as ``name``; raises ``UnknownStrategy``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownStrategy(name) from None


def build_strategy(name: str, params: Mapping[str, Any] | None = None) -> SignalStrategy | Strategy:
    """A configured instance of strategy ``name``.

    Raises ``UnknownStrategy`` or ``ParamError`` (every invalid field at once,
    including cross-field rules such as ``fast < slow``).
    """
    return get_strategy_class(name)(**dict(params or {}))


def warm_up() -> None:
    """Run one tiny signal and one tiny event backtest.

    Exercises the lazily imported engine and pandas code paths; the sandbox calls
    it before it locks itself out of the file system.
    """
    import numpy as np

    from apps.backtests.engine import BacktestConfig, Candles, run_backtest

    n = 80
    close = 100.0 + np.sin(np.arange(n) / 4.0) * 5.0
    candles = Candles.from_arrays(
        np.arange(n, dtype=np.int64) * 86_400_000, close, close + 1.0, close - 1.0, close, np.ones(n)
    )
    run_backtest(candles, build_strategy("sma_crossover", {"fast": 3, "slow": 8}), BacktestConfig())
    run_backtest(candles, build_strategy("dca", {}), BacktestConfig())
