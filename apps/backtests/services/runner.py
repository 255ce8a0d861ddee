"""The one strategy runner: built-in strategies in process, user code in the sandbox.

Every caller that runs a strategy goes through ``strategy_run`` (and
``strategy_check_lookahead``): the run task, optimizations, the
``manage.py backtest`` CLI and, next, bots. ``load_candles`` is the one place
where the market-data store's candles become the engine's ``Candles``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from apps.backtests.engine import BacktestConfig, BacktestResult, Candles, run_backtest
from apps.backtests.models import StrategyKind


def load_candles(*, exchange: str, symbol: str, timeframe: str, start=None, end=None) -> Candles:
    """Candles of the store (market-data selector) as the engine's ``Candles`` (empty if none)."""
    from apps.marketdata.selectors import candles

    return candles(exchange=exchange, symbol=symbol, timeframe=timeframe, start=start, end=end)


def strategy_run(
    *,
    kind: str,
    name: str = "",
    source: str | None = None,
    params: dict[str, Any],
    candles: Candles,
    config: dict[str, Any] | BacktestConfig,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    wall_seconds: float | None = None,
) -> BacktestResult:
    """One backtest of the built-in strategy ``name`` or of the user code ``source``.

    ``kind`` is a ``StrategyKind``. Raises the engine's ``BacktestError``s
    (``ParamError``, ``StrategyError``, ``BacktestCancelled``, sandbox errors).
    """
    if kind == StrategyKind.USER:
        from apps.backtests.strategies.sandbox import SandboxLimits, run_user_backtest

        limits = SandboxLimits(wall_seconds=wall_seconds) if wall_seconds else SandboxLimits()
        return run_user_backtest(
            source or "",
            candles,
            params,
            config,
            limits=limits,
            progress=progress,
            should_cancel=should_cancel,
        )
    from apps.backtests.strategies.registry import build_strategy

    strategy = build_strategy(name, params)
    return run_backtest(candles, strategy, config, progress=progress, should_cancel=should_cancel)


def strategy_check_lookahead(
    *,
    kind: str,
    name: str = "",
    source: str | None = None,
    params: dict[str, Any],
    candles: Candles,
    max_seconds: float | None = None,
    should_cancel: Callable[[], bool] | None = None,
):
    """The look-ahead report of a built-in strategy or of user code (in the sandbox).

    ``max_seconds`` bounds the check (the report says how much it covered);
    None keeps ``check_lookahead``'s default. ``should_cancel`` is polled while it runs (a job
    monitor's: it also sends the job's heartbeat); True stops the check (built-in: the report
    so far; user code: ``BacktestCancelled``).
    """
    options: dict[str, Any] = {} if max_seconds is None else {"max_seconds": float(max_seconds)}
    if kind == StrategyKind.USER:
        from apps.backtests.strategies.sandbox import SandboxLimits, run_user_lookahead

        # The sandbox's check budget is 3/4 of its limits: give it room for the requested time.
        limits = SandboxLimits(wall_seconds=max_seconds / 0.75 + 5) if max_seconds else None
        return run_user_lookahead(
            source or "", candles, params, limits=limits, should_cancel=should_cancel, **options
        )
    from apps.backtests.strategies.lookahead import check_lookahead
    from apps.backtests.strategies.registry import build_strategy

    return check_lookahead(
        lambda: build_strategy(name, params), candles, should_cancel=should_cancel, **options
    )
