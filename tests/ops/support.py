"""Rows for the operations tests: one job of every kind for a user, task results, dead letters."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from apps.backtests.models import BacktestRun, Optimization
from apps.bots.models import BotReplay
from apps.marketdata.models import ImportJob
from apps.ops.models import DeadLetter
from tests.factories import BotFactory

RESEARCH = {
    "strategy_kind": "builtin",
    "strategy_name": "sma_crossover",
    "params": {"fast": 5, "slow": 20},
    "exchange": "binance",
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "initial_cash": Decimal("1000"),
}


def jobs_of_every_kind(user) -> dict[str, object]:
    """A backtest, an optimization, an import, a download and a bot replay of ``user``, oldest first."""
    now = timezone.now()
    jobs = {
        "backtest": BacktestRun.objects.create(owner=user, status="completed", progress=100, **RESEARCH),
        "optimization": Optimization.objects.create(
            owner=user, kind="grid", status="running", progress=40, **RESEARCH
        ),
        "import": ImportJob.objects.create(
            user=user, kind="import", exchange="binance", symbol="ETH/USDT", timeframe="1h"
        ),
        "download": ImportJob.objects.create(
            user=user,
            kind="download",
            exchange="binance",
            symbol="ETH/USDT",
            timeframe="1m",
            status="failed",
            error_code="offline",
            error="The exchange could not be reached.",
        ),
        "bot_replay": BotReplay.objects.create(
            owner=user,
            bot=BotFactory(owner=user),
            start=datetime(2025, 1, 1, tzinfo=UTC),
            end=datetime(2025, 2, 1, tzinfo=UTC),
            strategy="sma_crossover",
            status="pending",
        ),
    }
    # Distinct creation times, in this order, so "newest first" is well defined.
    for age, job in enumerate(reversed(list(jobs.values()))):
        type(job).objects.filter(pk=job.pk).update(created_at=now - timedelta(minutes=age))
    return jobs


def task_result(*, status="FAILURE", name="apps.ops.tests.boom", args="[1, 2]", kwargs="{'x': 'y'}", **extra):
    """A TaskResult as django-celery-results records it (extended: JSON of the args' repr)."""
    from django_celery_results.models import TaskResult

    values = {
        "task_id": f"tid-{TaskResult.objects.count() + 1}-{status}",
        "task_name": name,
        "status": status,
        "task_args": json.dumps(args),
        "task_kwargs": json.dumps(kwargs),
        "result": json.dumps({"exc_type": "RuntimeError", "exc_message": ["boom"]}),
        "traceback": 'Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: boom',
        "worker": "w1@localhost",
        **extra,
    }
    date_done = values.pop("date_done", None)
    result = TaskResult.objects.create(**values)
    if date_done is not None:  # auto_now on create: set it afterwards
        TaskResult.objects.filter(pk=result.pk).update(date_done=date_done)
        result.refresh_from_db()
    return result


def dead_letter(**extra) -> DeadLetter:
    values = {
        "task_id": "dead-1",
        "task_name": "apps.ops.tests.boom",
        "args": [1, 2],
        "kwargs": {"x": "y"},
        "queue": "default",
        "retries": 3,
        "exception_type": "RuntimeError",
        "error": "boom",
        "traceback": "Traceback ...\nRuntimeError: boom",
        "failed_at": timezone.now(),
        **extra,
    }
    return DeadLetter.objects.create(**values)
