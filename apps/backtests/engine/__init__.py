"""Pure backtest engine (no Django): data, strategies' base classes, broker, fills, metrics.

Public API (rules and sources in docs/engine.md)::

    from apps.backtests.engine import BacktestConfig, run_backtest, SignalStrategy, Signals, Strategy, Param
"""

from __future__ import annotations

from .broker import SimulatedBroker
from .candles import Candles, to_candles
from .config import BacktestConfig
from .errors import (
    BacktestCancelled,
    BacktestError,
    ConfigError,
    ParamError,
    StrategyError,
)
from .io import load_csv
from .metrics import METRIC_NAMES, compute_metrics
from .orders import OrderInfo
from .params import Param, ParamSet, default_grid, grid, schema_to_json, validate_params
from .protocol import Broker
from .results import BacktestResult, Trade
from .simulator import run_backtest
from .strategy import Candle, History, Signals, SignalStrategy, Strategy

__all__ = [
    "METRIC_NAMES",
    "BacktestCancelled",
    "BacktestConfig",
    "BacktestError",
    "BacktestResult",
    "Broker",
    "Candle",
    "Candles",
    "ConfigError",
    "History",
    "OrderInfo",
    "Param",
    "ParamError",
    "ParamSet",
    "SignalStrategy",
    "Signals",
    "SimulatedBroker",
    "Strategy",
    "StrategyError",
    "Trade",
    "compute_metrics",
    "default_grid",
    "grid",
    "load_csv",
    "run_backtest",
    "schema_to_json",
    "to_candles",
    "validate_params",
]
