"""Monte Carlo of a finished run's trades (the resampling itself is ``apps.backtests.montecarlo``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.backtests.models import BacktestResultData, BacktestRun
from apps.core.errors import Conflict, ValidationFailed
from apps.core.jobs import JobStatus


def backtest_monte_carlo(*, run: BacktestRun, data: Any) -> dict[str, Any]:
    """Resample a finished run's trades; store and return confidence intervals (see ``montecarlo``)."""
    from apps.backtests.montecarlo import monte_carlo

    if not isinstance(data, dict):
        raise ValidationFailed("Expected a JSON object.")
    unknown = sorted(set(data) - {"simulations", "method", "seed"})
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(unknown)}.", fields={k: ["unknown field"] for k in unknown}
        )
    simulations, method, seed = (
        data.get("simulations", 1000),
        data.get("method", "shuffle"),
        data.get("seed", 0),
    )
    errors = {}
    if isinstance(simulations, bool) or not isinstance(simulations, int) or not 10 <= simulations <= 20_000:
        errors["simulations"] = ["must be an integer from 10 to 20000"]
    if method not in ("shuffle", "bootstrap"):
        errors["method"] = ["must be 'shuffle' or 'bootstrap'"]
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        errors["seed"] = ["must be a non-negative integer"]
    if errors:
        raise ValidationFailed(next(f"{k}: {v[0]}" for k, v in errors.items()), fields=errors)
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
