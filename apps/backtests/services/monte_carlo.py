"""Monte Carlo of a finished run's trades (the resampling itself is ``apps.backtests.montecarlo``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.backtests.models import BacktestResultData, BacktestRun
from apps.core.errors import Conflict, ValidationFailed
from apps.core.jobs import JobStatus


def backtest_monte_carlo(
    *, run: BacktestRun, simulations: int = 1000, method: str = "shuffle", seed: int = 0
) -> dict[str, Any]:
    """Resample a finished run's trades; store and return confidence intervals (see ``montecarlo``).

    ``method`` is ``shuffle`` or ``bootstrap``; the API's ``MonteCarloSerializer`` checks the ranges.
    """
    from apps.backtests.montecarlo import monte_carlo

    if method not in ("shuffle", "bootstrap"):
        raise ValidationFailed(
            "method must be 'shuffle' or 'bootstrap'.", fields={"method": ["shuffle or bootstrap"]}
        )
    if run.status != JobStatus.COMPLETED:
        raise Conflict(f"The backtest is {run.status}; Monte Carlo needs a completed run.")
    returns = np.array(
        [float(r or 0.0) for r in run.trades.order_by("n").values_list("pnl", flat=True)], dtype=np.float64
    )
    if len(returns) < 2:
        raise Conflict("Monte Carlo needs at least two trades.")
    initial = float(run.config.get("initial_cash", 0)) or float(run.initial_cash)
    report = monte_carlo(
        pnls=returns, initial_cash=initial, simulations=simulations, method=method, seed=seed
    )
    BacktestResultData.objects.filter(run_id=run.id).update(monte_carlo=report)
    return report
