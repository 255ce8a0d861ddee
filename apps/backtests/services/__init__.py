"""Backtests services: user strategies, the run lifecycle, the one strategy runner, results, Monte Carlo.

One module per job; the public names are re-exported here, so callers import
from ``apps.backtests.services``. Optimizations live in ``apps.backtests.optimization``.
"""

from apps.backtests.services.failures import error_fields
from apps.backtests.services.futures import FuturesInputs, futures_inputs
from apps.backtests.services.lookahead import lookahead_report
from apps.backtests.services.monte_carlo import backtest_monte_carlo
from apps.backtests.services.results import HEADLINE, PREVIEW_POINTS, backtest_result_save
from apps.backtests.services.runner import load_candles, strategy_check_lookahead, strategy_run
from apps.backtests.services.runs import (
    backtest_cancel,
    backtest_create,
    backtest_delete,
    backtest_execute,
    time_limit_seconds,
)
from apps.backtests.services.strategies import (
    CodeCheck,
    InvalidCode,
    strategy_create,
    strategy_delete,
    strategy_update,
    strategy_validate,
)

__all__ = [
    "HEADLINE",
    "PREVIEW_POINTS",
    "CodeCheck",
    "FuturesInputs",
    "InvalidCode",
    "backtest_cancel",
    "backtest_create",
    "backtest_delete",
    "backtest_execute",
    "backtest_monte_carlo",
    "backtest_result_save",
    "error_fields",
    "futures_inputs",
    "load_candles",
    "lookahead_report",
    "strategy_check_lookahead",
    "strategy_create",
    "strategy_delete",
    "strategy_run",
    "strategy_update",
    "strategy_validate",
    "time_limit_seconds",
]
