"""Backtests: user strategies, runs (create, execute on a worker, cancel, delete, reap), Monte Carlo.

Runs never execute in a request: ``backtest_create`` stores a pending run and
enqueues ``apps.backtests.tasks.run_backtest`` (queue ``backtests``) after the
commit; the worker calls ``backtest_execute``. Optimizations live in
``apps.backtests.optimization``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from apps.backtests import storage
from apps.backtests.engine import BacktestCancelled, BacktestConfig, Candles, run_backtest
from apps.backtests.engine.errors import BacktestError, ParamError, StrategyError
from apps.backtests.models import (
    BacktestResultData,
    BacktestRun,
    BacktestTrade,
    JobStatus,
    Strategy,
    StrategyKind,
    StrategyVersion,
)
from apps.backtests.specs import RunSpec, code_hash, parse_run_spec
from apps.core.errors import Conflict, DomainError, ValidationFailed
from apps.core.events import publish_event

logger = logging.getLogger(__name__)

HEADLINE = ("total_return", "sharpe_ratio", "max_drawdown", "total_trades", "win_rate")


def _setting(name: str, default: float) -> float:
    return getattr(settings, name, default)


def time_limit_seconds() -> float:
    return float(_setting("BACKTEST_TIME_LIMIT_SECONDS", 30 * 60))


def heartbeat_timeout_seconds() -> float:
    return float(_setting("BACKTEST_HEARTBEAT_TIMEOUT_SECONDS", 60))


# ===================================================================== strategies
class InvalidCode(ValidationFailed):
    code = "invalid_code"


@dataclass
class CodeCheck:
    valid: bool
    issues: list[dict[str, Any]] = field(default_factory=list)
    strategy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "issues": self.issues, "strategy": self.strategy}


def strategy_validate(*, source: str) -> CodeCheck:
    """Check user strategy code: static policy first, then describe it in the sandbox.

    Returns every problem with its line number; never raises for bad code.
    """
    from apps.backtests.strategies.sandbox import describe_user_strategy, validate_code

    if not source.strip():
        return CodeCheck(False, [{"line": 0, "col": 0, "message": "the code is empty"}])
    issues = validate_code(source)
    if issues:
        return CodeCheck(False, [issue.to_dict() for issue in issues])
    try:
        described = describe_user_strategy(source)
    except BacktestError as exc:
        line = getattr(exc, "line", None) or 0
        message = getattr(exc, "message", None) or str(exc)
        return CodeCheck(False, [{"line": line, "col": 0, "message": message}])
    return CodeCheck(True, [], described)


def _checked_or_raise(source: Any) -> CodeCheck:
    if not isinstance(source, str):
        raise ValidationFailed("source must be a string.", fields={"source": ["must be a string"]})
    if len(source) > 200_000:
        raise ValidationFailed("source is too long.", fields={"source": ["at most 200,000 characters"]})
    check = strategy_validate(source=source)
    if not check.valid:
        messages = [f"line {i['line']}: {i['message']}" if i["line"] else i["message"] for i in check.issues]
        raise InvalidCode(
            f"The strategy code is invalid: {messages[0]}",
            fields={"source": messages, "issues": check.issues},
        )
    return check


def _add_version(strategy: Strategy, source: str, described: dict[str, Any]) -> StrategyVersion:
    return StrategyVersion.objects.create(
        strategy=strategy,
        version=strategy.version,
        name=strategy.name,
        description=strategy.description,
        style=described["style"],
        params_schema=described["params"],
        source=source,
        code_hash=code_hash(source),
    )


def _check_name(user, name: Any, *, exclude: int | None = None) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise ValidationFailed("name must be 1 to 100 characters.", fields={"name": ["1 to 100 characters"]})
    name = name.strip()
    clash = Strategy.objects.filter(owner=user, name=name)
    if exclude:
        clash = clash.exclude(id=exclude)
    if clash.exists():
        raise ValidationFailed(
            f"You already have a strategy named {name!r}.",
            fields={"name": ["already used by another strategy"]},
        )
    return name


@transaction.atomic
def strategy_create(*, user, source: Any, name: Any = None, description: Any = None) -> Strategy:
    """Save a new user strategy (version 1) after validating its code."""
    check = _checked_or_raise(source)
    described = check.strategy or {}
    name = _check_name(user, name if name not in (None, "") else described.get("name") or "strategy")
    if description is not None and not isinstance(description, str):
        raise ValidationFailed("description must be a string.", fields={"description": ["must be a string"]})
    strategy = Strategy.objects.create(
        owner=user,
        name=name,
        description=description if description is not None else described.get("description", ""),
        style=described["style"],
        params_schema=described["params"],
        source=source,
        version=1,
    )
    _add_version(strategy, source, described)
    return strategy


@transaction.atomic
def strategy_update(*, strategy: Strategy, data: dict[str, Any]) -> Strategy:
    """Rename/describe a strategy; a changed ``source`` is validated and becomes a new version."""
    unknown = sorted(set(data) - {"name", "description", "source"})
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(unknown)}.", fields={k: ["unknown field"] for k in unknown}
        )
    strategy = Strategy.objects.select_for_update().get(id=strategy.id)
    if "name" in data:
        strategy.name = _check_name(strategy.owner, data["name"], exclude=strategy.id)
    if "description" in data:
        if not isinstance(data["description"], str):
            raise ValidationFailed(
                "description must be a string.", fields={"description": ["must be a string"]}
            )
        strategy.description = data["description"]
    if "source" in data and data["source"] != strategy.source:
        check = _checked_or_raise(data["source"])
        strategy.source = data["source"]
        strategy.style = check.strategy["style"]
        strategy.params_schema = check.strategy["params"]
        strategy.version += 1
        strategy.save()
        _add_version(strategy, strategy.source, check.strategy)
    else:
        strategy.save()
    return strategy


def strategy_delete(*, strategy: Strategy) -> None:
    """Delete a strategy; its runs keep their name, code version and hash."""
    strategy.delete()


# ========================================================================== runs
def _cancel_key(kind: str, job_id: int) -> str:
    return f"backtests:cancel:{kind}:{job_id}"


def _status_payload(run: BacktestRun) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status,
        "progress": run.progress,
        "error": run.error,
        "headline": run.headline,
    }


def _enqueue_run(run: BacktestRun) -> None:
    from apps.backtests.tasks import run_backtest as task

    result = task.apply_async(args=[run.id])
    BacktestRun.objects.filter(id=run.id, task_id="").update(task_id=result.id or "")


def backtest_create(*, user, data: Any, enqueue: bool = True) -> BacktestRun:
    """Validate a run request and store it as pending; the worker is asked after the commit.

    Raises ``ValidationFailed`` with per-field messages for any bad input.
    """
    spec: RunSpec = parse_run_spec(user=user, data=data)
    with transaction.atomic():
        run = BacktestRun.objects.create(owner=user, **spec.model_fields())
        if enqueue:
            transaction.on_commit(lambda: _enqueue_run(run))
    return run


def backtest_cancel(*, run: BacktestRun) -> BacktestRun:
    """Cancel a run: a pending one at once, a running one cooperatively (stops within ~2 s)."""
    now = timezone.now()
    if BacktestRun.objects.filter(id=run.id, status=JobStatus.PENDING).update(
        status=JobStatus.CANCELLED, cancel_requested=True, finished_at=now, progress=0
    ):
        run.refresh_from_db()
        publish_event(run.owner_id, "backtest.status", _status_payload(run))
        return run
    if BacktestRun.objects.filter(id=run.id, status=JobStatus.RUNNING).update(cancel_requested=True):
        cache.set(_cancel_key("run", run.id), True, timeout=24 * 3600)
        run.refresh_from_db()
        return run
    run.refresh_from_db()
    raise Conflict(f"The backtest is already {run.status}.", fields={"status": [run.status]})


def backtest_delete(*, run: BacktestRun) -> None:
    """Delete a run and everything it stored; a running run is told to stop first."""
    if not run.is_finished:
        cache.set(_cancel_key("run", run.id), True, timeout=24 * 3600)
    run.delete()


def backtest_reap_stale(*, stale_after: timedelta | None = None) -> list[int]:
    """Mark running runs whose worker stopped sending heartbeats as failed; return their ids.

    A worker killed mid-run (OOM, SIGKILL, machine lost) cannot record its own
    failure; its heartbeat stops, and this periodic sweep records it instead.
    """
    limit = stale_after or timedelta(seconds=heartbeat_timeout_seconds())
    cutoff = timezone.now() - limit
    stale = list(
        BacktestRun.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=cutoff).values_list(
            "id", flat=True
        )
    )
    reaped = []
    for run_id in stale:
        updated = BacktestRun.objects.filter(
            id=run_id, status=JobStatus.RUNNING, heartbeat_at__lt=cutoff
        ).update(
            status=JobStatus.FAILED,
            finished_at=timezone.now(),
            error_code="worker_lost",
            error_message=(
                "The worker running this backtest stopped responding (killed, crashed or out of memory). "
                "Run it again."
            ),
        )
        if updated:
            reaped.append(run_id)
            run = BacktestRun.objects.get(id=run_id)
            publish_event(run.owner_id, "backtest.status", _status_payload(run))
    from apps.backtests.optimization import optimization_reap_stale

    optimization_reap_stale(cutoff=cutoff)
    return reaped


# --------------------------------------------------------------------- execution
class TimeLimitExceeded(BacktestCancelled):
    """The run went past ``BACKTEST_TIME_LIMIT_SECONDS``."""


class JobMonitor:
    """Progress, heartbeat, cancel flag and time limit of one running job.

    ``should_cancel`` is polled by the engine (~100 times a run) and by the
    sandbox runner (every 50 ms); the cache is read at most every 0.25 s, so a
    cancel is seen well within the 2 s promised to users.
    """

    CANCEL_POLL = 0.25
    PROGRESS_EVERY = 0.2
    HEARTBEAT_EVERY = 5.0

    def __init__(
        self,
        *,
        model,
        job_id: int,
        owner_id: int,
        kind: str,
        event: str | None,
        time_limit: float,
        extra_check: Callable[[], bool] | None = None,
    ) -> None:
        self.model, self.job_id, self.owner_id, self.kind, self.event = model, job_id, owner_id, kind, event
        self.deadline = time.monotonic() + time_limit
        self.time_limit = time_limit
        self.extra_check = extra_check
        self._last_cancel_check = 0.0
        self._last_event = 0.0
        self._last_heartbeat = time.monotonic()
        self._last_pct = -1
        self.cancelled = False

    def heartbeat(self, *, force: bool = False, progress: int | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_heartbeat < self.HEARTBEAT_EVERY:
            return
        self._last_heartbeat = now
        updates: dict[str, Any] = {"heartbeat_at": timezone.now()}
        if progress is not None:
            updates["progress"] = progress
        self.model.objects.filter(id=self.job_id, status=JobStatus.RUNNING).update(**updates)

    def should_cancel(self) -> bool:
        now = time.monotonic()
        if now > self.deadline:
            raise TimeLimitExceeded(
                f"The backtest exceeded the time limit of {self.time_limit:g} s and was stopped."
            )
        if now - self._last_cancel_check >= self.CANCEL_POLL:
            self._last_cancel_check = now
            if cache.get(_cancel_key(self.kind, self.job_id)) or (self.extra_check and self.extra_check()):
                self.cancelled = True
            self.heartbeat()
        return self.cancelled

    def progress(self, pct: float, *, stage: str = "running") -> None:
        pct_int = max(0, min(100, int(pct)))
        now = time.monotonic()
        if pct_int != self._last_pct and (now - self._last_event >= self.PROGRESS_EVERY or pct_int >= 100):
            self._last_event, self._last_pct = now, pct_int
            if self.event:
                publish_event(
                    self.owner_id,
                    self.event,
                    {"id": self.job_id, "status": "running", "progress": pct_int, "stage": stage},
                )
            self.heartbeat(force=True, progress=pct_int)
        else:
            self.heartbeat()


def load_candles(*, exchange: str, symbol: str, timeframe: str, start=None, end=None) -> Candles:
    """Candles of the store (market-data service) as the engine's ``Candles``."""
    from apps.marketdata.selectors import candles

    return candles(exchange=exchange, symbol=symbol, timeframe=timeframe, start=start, end=end)


def execute_strategy(
    *,
    strategy_kind: str,
    strategy_name: str,
    source: str | None,
    params: dict[str, Any],
    candles: Candles,
    config: dict[str, Any] | BacktestConfig,
    progress: Callable[[float], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
    wall_seconds: float | None = None,
):
    """One backtest of a built-in (in process) or of user code (in the sandbox)."""
    if strategy_kind == StrategyKind.USER:
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

    strategy = build_strategy(strategy_name, params)
    return run_backtest(candles, strategy, config, progress=progress, should_cancel=should_cancel)


def _error_fields(exc: BaseException) -> dict[str, Any]:
    from apps.backtests.strategies.sandbox import SandboxMemoryError, SandboxTimeout, SandboxViolation

    line = getattr(exc, "line", None)
    if isinstance(exc, TimeLimitExceeded | SandboxTimeout):
        code = "timeout"
    elif isinstance(exc, SandboxMemoryError):
        code = "memory_limit"
    elif isinstance(exc, SandboxViolation):
        code = "sandbox_violation"
    elif isinstance(exc, StrategyError):
        code = "strategy_error"
    elif isinstance(exc, ParamError):
        code = "invalid_params"
    elif isinstance(exc, DomainError):
        code = exc.code
    else:
        code = "backtest_error"
    message = str(exc)
    if isinstance(exc, StrategyError) and line:
        message = f"Error in your strategy at line {line}: {exc.message}"
    elif isinstance(exc, DomainError):
        message = exc.message
    return {"error_code": code, "error_message": message[:5000], "error_line": line if line else None}


def _finish(run_id: int, owner_id: int, status: str, **fields: Any) -> None:
    updated = BacktestRun.objects.filter(id=run_id, status=JobStatus.RUNNING).update(
        status=status, finished_at=timezone.now(), heartbeat_at=timezone.now(), **fields
    )
    if updated:
        run = BacktestRun.objects.get(id=run_id)
        publish_event(owner_id, "backtest.status", _status_payload(run))


def backtest_execute(*, run_id: int, worker: str = "") -> str | None:
    """Run a pending backtest to its end (called by the Celery task); returns the final status.

    Claims the run with a conditional update (pending -> running), so a
    redelivered or duplicate task never runs it twice. Every failure is recorded
    on the run with a message written for the user.
    """
    now = timezone.now()
    claimed = BacktestRun.objects.filter(id=run_id, status=JobStatus.PENDING).update(
        status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, worker=worker[:200], progress=0
    )
    if not claimed:
        return None
    # A flag left from an earlier database with the same id (tests, a reset dev DB) must not cancel
    # this run; a cancel of this run before the claim changed its status instead of setting the flag.
    cache.delete(_cancel_key("run", run_id))
    run = BacktestRun.objects.select_related("strategy_version").get(id=run_id)
    publish_event(run.owner_id, "backtest.status", _status_payload(run))
    monitor = JobMonitor(
        model=BacktestRun,
        job_id=run.id,
        owner_id=run.owner_id,
        kind="run",
        event="backtest.progress",
        time_limit=time_limit_seconds(),
    )
    try:
        monitor.progress(1, stage="loading")
        candles = load_candles(
            exchange=run.exchange, symbol=run.symbol, timeframe=run.timeframe, start=run.start, end=run.end
        )
        if len(candles) == 0:
            raise ValidationFailed("No candles are stored in the selected range.", code="no_candles")
        if monitor.should_cancel():
            raise BacktestCancelled("backtest cancelled")
        monitor.progress(5, stage="running")
        source = run.strategy_version.source if run.strategy_version else None
        if run.strategy_kind == StrategyKind.USER and source is None:
            raise ValidationFailed(
                "The strategy code version of this run was deleted.", code="strategy_missing"
            )
        result = execute_strategy(
            strategy_kind=run.strategy_kind,
            strategy_name=run.strategy_name,
            source=source,
            params=run.params,
            candles=candles,
            config=run.config,
            progress=lambda f: monitor.progress(5 + 90 * f),
            should_cancel=monitor.should_cancel,
            wall_seconds=max(monitor.deadline - time.monotonic(), 1.0),
        )
        monitor.progress(96, stage="saving")
        return _save_result(run, candles, result)
    except (TimeLimitExceeded, SoftTimeLimitExceeded) as exc:
        if isinstance(exc, SoftTimeLimitExceeded):  # Celery's own limit (prefork pools) hit first
            exc = TimeLimitExceeded("The backtest exceeded the worker's time limit and was stopped.")
        _finish(run.id, run.owner_id, JobStatus.FAILED, **_error_fields(exc))
        return JobStatus.FAILED
    except BacktestCancelled:
        _finish(run.id, run.owner_id, JobStatus.CANCELLED)
        return JobStatus.CANCELLED
    except (BacktestError, DomainError) as exc:
        _finish(run.id, run.owner_id, JobStatus.FAILED, **_error_fields(exc))
        return JobStatus.FAILED
    except Exception as exc:  # a bug of ours: keep the traceback in the log, a readable message on the run
        logger.exception("backtest %s failed", run_id)
        _finish(
            run.id,
            run.owner_id,
            JobStatus.FAILED,
            error_code="internal_error",
            error_message=f"Internal error ({type(exc).__name__}); the administrators can find it in the logs.",
        )
        return JobStatus.FAILED
    finally:
        cache.delete(_cancel_key("run", run.id))


def _dec(value: Any) -> Decimal:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return Decimal(0)
    return Decimal(repr(float(value)))


def _num(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if np.isfinite(value) else None


PREVIEW_POINTS = 4000


def _preview(timestamps: np.ndarray, equity: np.ndarray, drawdown: np.ndarray) -> bytes:
    """The curves at ~4,000 points keeping equity's and drawdown's extremes (see ``storage``)."""
    keep = np.union1d(
        storage.downsample_indices(equity, PREVIEW_POINTS // 2),
        storage.downsample_indices(drawdown, PREVIEW_POINTS // 2),
    )
    return storage.pack({"timestamp": timestamps[keep], "equity": equity[keep], "drawdown": drawdown[keep]})


def _save_result(run: BacktestRun, candles: Candles, result) -> str | None:
    metrics = {k: _num(v) if isinstance(v, float) else v for k, v in result.metrics.items()}
    cols = result.trade_columns
    count = len(cols["pnl"])
    lists = {name: cols[name].tolist() for name in cols}
    trades = [
        BacktestTrade(
            run_id=run.id,
            n=k + 1,
            entry_time=int(lists["entry_time"][k]),
            exit_time=int(lists["exit_time"][k]),
            side=str(lists["side"][k]),
            size=_dec(lists["size"][k]),
            entry_price=_dec(lists["entry_price"][k]),
            exit_price=_dec(lists["exit_price"][k]),
            fees=_dec(lists["fees"][k]),
            funding=_dec(lists["funding"][k]),
            pnl=_dec(lists["pnl"][k]),
            return_pct=_num(lists["return_pct"][k]),
            mae=_num(lists["mae"][k]),
            mfe=_num(lists["mfe"][k]),
            duration=_num(lists["duration"][k]),
            exit_reason=str(lists["exit_reason"][k])[:20],
            leverage=_num(lists["leverage"][k]),
        )
        for k in range(count)
    ]
    equity = np.asarray(result.equity, dtype=np.float64)
    summary = {
        "initial_cash": float(run.config.get("initial_cash", 0)),
        "final_equity": _num(equity[-1]) if len(equity) else None,
        "candles": len(candles),
        "first_candle": int(candles.timestamp[0]),
        "last_candle": int(candles.timestamp[-1]),
        "trades": count,
        "positions_changes": len(result.position_columns["timestamp"]),
    }
    info = {
        k: v for k, v in (result.info or {}).items() if isinstance(v, str | int | float | bool | type(None))
    }
    with transaction.atomic():
        locked = BacktestRun.objects.select_for_update().filter(id=run.id).first()
        if locked is None or locked.status != JobStatus.RUNNING:
            return None  # deleted, cancelled at the last moment, or reaped meanwhile
        BacktestResultData.objects.create(
            run_id=run.id,
            metrics=metrics,
            summary=summary,
            info=info,
            logs=str(getattr(result, "logs", "") or "")[:100_000],
            equity_blob=storage.pack(
                {"timestamp": result.equity_timestamps, "equity": equity, "drawdown": result.drawdown}
            ),
            positions_blob=storage.pack(result.position_columns),
            equity_preview=_preview(result.equity_timestamps, equity, np.asarray(result.drawdown)),
            points=len(equity),
        )
        BacktestTrade.objects.bulk_create(trades, batch_size=2000)
        headline = {name: metrics.get(name) for name in HEADLINE}
        BacktestRun.objects.filter(id=run.id).update(
            status=JobStatus.COMPLETED,
            progress=100,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            candles=len(candles),
            **headline,
        )
    run.refresh_from_db()
    publish_event(run.owner_id, "backtest.status", _status_payload(run))
    return JobStatus.COMPLETED


# =================================================================== Monte Carlo
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
