"""Saving a finished run: result blobs, trades (Decimal money) and headline metrics."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from apps.backtests import storage
from apps.backtests.engine import BacktestResult, Candles
from apps.backtests.models import BacktestResultData, BacktestRun, BacktestTrade
from apps.core.jobs import JobStatus, job_publish_status

HEADLINE = ("total_return", "sharpe_ratio", "max_drawdown", "total_trades", "win_rate")


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


def backtest_result_save(run: BacktestRun, candles: Candles, result: BacktestResult) -> str | None:
    """Store a finished run's result, trades and headline metrics and mark it completed, in one transaction.

    Returns ``None`` (and stores nothing) when the run is no longer running:
    deleted, cancelled at the last moment or reaped meanwhile.
    """
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
        if locked is None or locked.status != JobStatus.RUNNING or locked.attempt != run.attempt:
            return None  # deleted, cancelled at the last moment, or reaped (and re-sent) meanwhile
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
    job_publish_status(run)
    return JobStatus.COMPLETED
