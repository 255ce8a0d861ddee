"""The lookahead check every run started from the API or a page gets, and its stored verdict.

The check (``strategies.lookahead``) runs after the backtest on the same
candles, bounded by ``BACKTEST_LOOKAHEAD_SECONDS`` (and by what is left of the
job's time limit); its report is stored on the job (``ResearchJob.lookahead``)
and shown on the run page and in the API, with the offending line for user
code. A check that cannot run (the strategy fails on truncated data, the
sandbox refuses) does not fail the run: its verdict is ``not_checked`` with the
reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings

from apps.backtests.engine import Candles
from apps.backtests.engine.errors import BacktestError
from apps.backtests.models import ResearchJob
from apps.backtests.services.runner import strategy_check_lookahead
from apps.core.errors import DomainError

logger = logging.getLogger(__name__)
NOT_CHECKED = "not_checked"
STORED_CHANGES = 20


def lookahead_seconds() -> float:
    return float(getattr(settings, "BACKTEST_LOOKAHEAD_SECONDS", 20.0))


def lookahead_report(
    *,
    job: ResearchJob,
    candles: Candles,
    params: dict[str, Any] | None = None,
    max_seconds: float | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Check ``job``'s strategy (with ``params``, default the job's) for lookahead bias; the report as a dict.

    Never raises for a strategy's fault: the verdict is then ``not_checked``
    with the reason in ``summary``. ``should_cancel``: a running job's monitor's, so the job
    keeps its heartbeat (and can be cancelled) while its check runs.
    """
    source = job.strategy_version.source if job.strategy_version else None
    seconds = lookahead_seconds() if max_seconds is None else max_seconds
    try:
        report = strategy_check_lookahead(
            kind=job.strategy_kind,
            name=job.strategy_name,
            source=source,
            params=job.params if params is None else params,
            candles=candles,
            max_seconds=max(seconds, 0.001),
            should_cancel=should_cancel,
        )
    except (BacktestError, DomainError) as exc:
        return {
            "ok": None,
            "verdict": NOT_CHECKED,
            "line": None,
            "summary": f"the lookahead check could not run: {exc}",
        }
    data = report.to_dict()
    data["changes"] = data["changes"][:STORED_CHANGES]  # the first few say where; the count says how many
    return data
