"""Reads of the backtests app, always scoped to the owner (another user's object is ``NotFound``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db.models import Avg, Count, Max, Min, QuerySet

from apps.backtests import storage
from apps.backtests.models import (
    BacktestResultData,
    BacktestRun,
    BacktestTrade,
    Optimization,
    OptimizationTrial,
    Strategy,
    StrategyVersion,
)
from apps.backtests.specs import parse_time
from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.core.jobs import JobStatus

TRADE_ORDERING = (
    "n",
    "entry_time",
    "exit_time",
    "pnl",
    "return_pct",
    "size",
    "duration",
    "fees",
    "mae",
    "mfe",
)


def _int(value: Any, field: str, *, default: int, lo: int, hi: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationFailed(
            f"{field} must be an integer.", fields={field: ["must be an integer"]}
        ) from None
    if not lo <= number <= hi:
        raise ValidationFailed(f"{field} must be from {lo} to {hi}.", fields={field: [f"from {lo} to {hi}"]})
    return number


def _ms(value: Any, field: str) -> int | None:
    moment = parse_time(value, field)
    return None if moment is None else int(moment.timestamp() * 1000)


# ================================================================== strategies
def strategy_list(*, user) -> QuerySet[Strategy]:
    return Strategy.objects.filter(owner=user).order_by("name", "id")


def strategy_get(*, user, pk: Any) -> Strategy:
    strategy = Strategy.objects.filter(owner=user, pk=pk).first() if str(pk).isdigit() else None
    if strategy is None:
        raise NotFound("Strategy not found.")
    return strategy


def strategy_version_get(*, strategy: Strategy, version: Any) -> StrategyVersion:
    found = strategy.versions.filter(version=version).first() if str(version).isdigit() else None
    if found is None:
        raise NotFound("Strategy version not found.")
    return found


def builtin_strategies() -> list[dict[str, Any]]:
    from apps.backtests.strategies.registry import list_strategies

    return [info.to_dict() for info in list_strategies()]


def strategy_performance(
    *, user, symbol: str | None = None, timeframe: str | None = None
) -> list[dict[str, Any]]:
    """Per strategy (built-in name or user strategy): how its completed runs did."""
    runs = BacktestRun.objects.filter(owner=user, status=JobStatus.COMPLETED)
    if symbol:
        runs = runs.filter(symbol=symbol)
    if timeframe:
        runs = runs.filter(timeframe=timeframe)
    rows = (
        runs.values("strategy_kind", "strategy_name", "strategy_id")
        .annotate(
            runs=Count("id"),
            avg_total_return=Avg("total_return"),
            best_total_return=Max("total_return"),
            worst_total_return=Min("total_return"),
            avg_sharpe_ratio=Avg("sharpe_ratio"),
            avg_max_drawdown=Avg("max_drawdown"),
            avg_win_rate=Avg("win_rate"),
            last_run_at=Max("created_at"),
        )
        .order_by("-avg_total_return", "strategy_name")
    )
    return list(rows)


# ======================================================================== runs
def backtest_list(*, user, filters: dict[str, Any] | None = None) -> QuerySet[BacktestRun]:
    """The user's runs, filtered (status, strategy, strategy_id, symbol, exchange, timeframe, dates)."""
    filters = filters or {}
    qs = BacktestRun.objects.filter(owner=user)
    status = filters.get("status")
    if status:
        if status not in JobStatus.values:
            raise ValidationFailed(
                "Unknown status.", fields={"status": [f"one of {', '.join(JobStatus.values)}"]}
            )
        qs = qs.filter(status=status)
    for key in ("symbol", "exchange", "timeframe"):
        if filters.get(key):
            qs = qs.filter(**{key: filters[key]})
    if filters.get("strategy"):
        qs = qs.filter(strategy_name=filters["strategy"])
    if filters.get("strategy_id"):
        qs = qs.filter(strategy_id=_int(filters["strategy_id"], "strategy_id", default=0, lo=1, hi=2**62))
    for key, lookup in (
        ("created_after", "created_at__gte"),
        ("created_before", "created_at__lt"),
        ("start_after", "start__gte"),
        ("end_before", "end__lte"),
    ):
        if filters.get(key):
            qs = qs.filter(**{lookup: parse_time(filters[key], key)})
    return qs


def backtest_get(*, user, pk: Any) -> BacktestRun:
    run = BacktestRun.objects.filter(owner=user, pk=pk).first() if str(pk).isdigit() else None
    if run is None:
        raise NotFound("Backtest not found.")
    return run


def _completed(run: BacktestRun) -> None:
    if run.status != JobStatus.COMPLETED:
        raise Conflict(
            f"The backtest is {run.status}; results exist once it has completed.", code="not_completed"
        )


def backtest_results(*, run: BacktestRun) -> dict[str, Any]:
    _completed(run)
    # Only the small columns: the curve blobs are megabytes and not needed here.
    row = (
        BacktestResultData.objects.filter(run_id=run.id).values("metrics", "summary", "logs", "info").first()
    )
    if row is None:
        raise NotFound("The results of this backtest are missing.")
    return {"id": run.id, **row}


def backtest_trades(*, run: BacktestRun, filters: dict[str, Any] | None = None) -> QuerySet[BacktestTrade]:
    """Trades of a completed run: ``side``, ``outcome`` (win/loss), ``start``/``end`` on entry time, ``ordering``."""
    _completed(run)
    filters = filters or {}
    qs = BacktestTrade.objects.filter(run=run)
    side = filters.get("side")
    if side:
        if side not in ("long", "short"):
            raise ValidationFailed("side must be long or short.", fields={"side": ["long or short"]})
        qs = qs.filter(side=side)
    outcome = filters.get("outcome")
    if outcome:
        if outcome not in ("win", "loss"):
            raise ValidationFailed("outcome must be win or loss.", fields={"outcome": ["win or loss"]})
        qs = qs.filter(pnl__gt=0) if outcome == "win" else qs.filter(pnl__lte=0)
    start, end = _ms(filters.get("start"), "start"), _ms(filters.get("end"), "end")
    if start is not None:
        qs = qs.filter(entry_time__gte=start)
    if end is not None:
        qs = qs.filter(entry_time__lt=end)
    ordering = filters.get("ordering") or "n"
    if ordering.lstrip("-") not in TRADE_ORDERING:
        raise ValidationFailed(
            "Unknown ordering.", fields={"ordering": [f"one of {', '.join(TRADE_ORDERING)}"]}
        )
    return qs.order_by(ordering, "n")


def _window(ts: np.ndarray, start: int | None, end: int | None) -> slice:
    lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
    hi = len(ts) if end is None else int(np.searchsorted(ts, end, side="left"))
    return slice(lo, hi)


def _blob(run: BacktestRun, field: str) -> bytes:
    blob = BacktestResultData.objects.filter(run_id=run.id).values_list(field, flat=True).first()
    if blob is None:
        raise NotFound("The results of this backtest are missing.")
    return bytes(blob)


def backtest_equity(
    *, run: BacktestRun, points: Any = None, start: Any = None, end: Any = None
) -> dict[str, Any]:
    """Equity and drawdown curves, columnar, downsampled to ``points`` (min/max kept; 0 = all)."""
    from apps.backtests.services import PREVIEW_POINTS

    _completed(run)
    points = _int(points, "points", default=1000, lo=0, hi=20_000)
    start_ms, end_ms = _ms(start, "start"), _ms(end, "end")
    total = None
    if 0 < points <= PREVIEW_POINTS // 2 and start_ms is None and end_ms is None:
        # Charts: downsample the stored preview (itself extremes-preserving) instead of the full curve.
        preview = _blob(run, "equity_preview")
        if preview:
            arrays = storage.unpack(preview)
            total = run.candles
    if total is None:
        arrays = storage.unpack(_blob(run, "equity_blob"))
    ts = arrays["timestamp"]
    window = _window(ts, start_ms, end_ms)
    ts, equity, drawdown = ts[window], arrays["equity"][window], arrays["drawdown"][window]
    if points:
        # Half the budget each: the chart shows both curves' true peaks and troughs.
        keep = np.union1d(
            storage.downsample_indices(equity, points // 2), storage.downsample_indices(drawdown, points // 2)
        )
    else:
        keep = np.arange(len(ts))
    if points and len(keep) > points:
        keep = keep[np.linspace(0, len(keep) - 1, points).astype(np.int64)]
    return {
        "total_points": int(total if total is not None else len(ts)),
        "points": len(keep),
        "timestamps": ts[keep].tolist(),
        "equity": np.round(equity[keep], 8).tolist(),
        "drawdown": np.round(drawdown[keep], 8).tolist(),
    }


def backtest_positions(*, run: BacktestRun, start: Any = None, end: Any = None) -> dict[str, Any]:
    _completed(run)
    cols = storage.unpack(_blob(run, "positions_blob"))
    ts = cols["timestamp"]
    window = _window(ts, _ms(start, "start"), _ms(end, "end"))
    size = cols["size"][window]
    side = np.where(size > 0, "long", np.where(size < 0, "short", "flat"))
    avg = [
        None if s == 0 else p for s, p in zip(size.tolist(), cols["avg_price"][window].tolist(), strict=True)
    ]
    return {
        "count": len(size),
        "timestamps": ts[window].tolist(),
        "size": size.tolist(),
        "side": side.tolist(),
        "avg_price": avg,
        "leverage": cols["leverage"][window].tolist(),
    }


def backtest_candles(*, run: BacktestRun, points: Any = None) -> dict[str, Any]:
    """The run's candles for charts, resampled to a coarser timeframe when there are more than ``points``."""
    from apps.marketdata.selectors import candles
    from apps.marketdata.timeframes import TIMEFRAME_MS

    points = _int(points, "points", default=2000, lo=10, hi=20_000)
    timeframe = run.timeframe
    count = run.candles or 0
    if count > points:
        span = count * TIMEFRAME_MS[timeframe]
        for candidate in ("1m", "5m", "15m", "1h", "4h", "1d", "1w"):
            if (
                TIMEFRAME_MS[candidate] >= TIMEFRAME_MS[timeframe]
                and span / TIMEFRAME_MS[candidate] <= points
            ):
                timeframe = candidate
                break
        else:
            timeframe = "1w"
    arrays = candles(
        exchange=run.exchange, symbol=run.symbol, timeframe=timeframe, start=run.start, end=run.end
    )
    return {
        "timeframe": timeframe,
        "timestamps": arrays.timestamp.tolist(),
        "open": arrays.open.tolist(),
        "high": arrays.high.tolist(),
        "low": arrays.low.tolist(),
        "close": arrays.close.tolist(),
        "volume": arrays.volume.tolist(),
    }


def backtest_monte_carlo_get(*, run: BacktestRun) -> dict[str, Any]:
    _completed(run)
    report = BacktestResultData.objects.filter(run_id=run.id).values_list("monte_carlo", flat=True).first()
    if not report:
        raise NotFound("No Monte Carlo analysis yet; POST to run one.")
    return report


def backtest_compare(*, user, ids: Any) -> list[dict[str, Any]]:
    raw = [part for part in str(ids or "").split(",") if part.strip()]
    if not 2 <= len(raw) <= 10 or not all(p.strip().isdigit() for p in raw):
        raise ValidationFailed(
            "ids must list 2 to 10 backtest ids.", fields={"ids": ["2 to 10 comma-separated ids"]}
        )
    out = []
    for pk in raw:
        run = backtest_get(user=user, pk=pk.strip())
        item = {
            "id": run.id,
            "name": run.name,
            "strategy": run.strategy_name,
            "symbol": run.symbol,
            "timeframe": run.timeframe,
            "status": run.status,
            "metrics": None,
            "equity": None,
        }
        if run.status == JobStatus.COMPLETED:
            item["metrics"] = backtest_results(run=run)["metrics"]
            curve = backtest_equity(run=run, points=500)
            item["equity"] = {"timestamps": curve["timestamps"], "equity": curve["equity"]}
        out.append(item)
    return out


# =============================================================== optimizations
def optimization_list(*, user, filters: dict[str, Any] | None = None) -> QuerySet[Optimization]:
    filters = filters or {}
    qs = Optimization.objects.filter(owner=user).defer("plan")
    if filters.get("status"):
        qs = qs.filter(status=filters["status"])
    if filters.get("kind"):
        qs = qs.filter(kind=filters["kind"])
    return qs


def optimization_get(*, user, pk: Any) -> Optimization:
    opt = Optimization.objects.filter(owner=user, pk=pk).first() if str(pk).isdigit() else None
    if opt is None:
        raise NotFound("Optimization not found.")
    return opt


def optimization_trials(
    *, optimization: Optimization, ordering: str | None = None, window: Any = None
) -> list[dict[str, Any]]:
    """Trials sorted by any metric (``-sharpe_ratio``) or parameter (``param__fast``); None values last."""
    qs = OptimizationTrial.objects.filter(optimization=optimization)
    if window not in (None, ""):
        qs = qs.filter(window=_int(window, "window", default=0, lo=0, hi=1000))
    rows = list(qs.order_by("window", "index").values("index", "window", "params", "metrics", "error"))
    if not ordering:
        return rows
    desc = ordering.startswith("-")
    key = ordering.lstrip("-")
    if key.startswith("param__"):
        name = key[len("param__") :]
        getter = lambda row: row["params"].get(name)  # noqa: E731
    elif key == "index":
        getter = lambda row: row["index"]  # noqa: E731
    else:
        from apps.backtests.engine import METRIC_NAMES

        if key not in METRIC_NAMES:
            raise ValidationFailed(
                "Unknown ordering.", fields={"ordering": ["a metric name, index or param__<name>"]}
            )
        getter = lambda row: (row["metrics"] or {}).get(key)  # noqa: E731
    present = [r for r in rows if isinstance(getter(r), int | float)]
    missing = [r for r in rows if not isinstance(getter(r), int | float)]
    present.sort(key=getter, reverse=desc)
    return present + missing


def optimization_heatmap(
    *, optimization: Optimization, x: Any, y: Any, metric: Any = None, window: Any = None
) -> dict[str, Any]:
    """A grid of ``metric`` over two parameters (best value over the others) for a heatmap."""
    from apps.backtests.engine import METRIC_NAMES

    metric = metric or optimization.objective
    if metric not in METRIC_NAMES:
        raise ValidationFailed("Unknown metric.", fields={"metric": ["not a metric name"]})
    trials = optimization_trials(optimization=optimization, window=window)
    names = set().union(*(t["params"].keys() for t in trials)) if trials else set()
    for field, value in (("x", x), ("y", y)):
        if not value or value not in names:
            raise ValidationFailed(
                f"{field} must be a parameter name.", fields={field: [f"one of {', '.join(sorted(names))}"]}
            )
    if x == y:
        raise ValidationFailed("x and y must differ.", fields={"y": ["must differ from x"]})
    xs = sorted({t["params"][x] for t in trials}, key=_sort_key)
    ys = sorted({t["params"][y] for t in trials}, key=_sort_key)
    xi = {v: i for i, v in enumerate(xs)}
    yi = {v: j for j, v in enumerate(ys)}
    z: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    for trial in trials:
        value = (trial["metrics"] or {}).get(metric)
        if value is None:
            continue
        i, j = xi[trial["params"][x]], yi[trial["params"][y]]
        current = z[j][i]
        if current is None or (value > current if optimization.maximize else value < current):
            z[j][i] = value
    return {"x": x, "y": y, "metric": metric, "x_values": xs, "y_values": ys, "z": z}


def _sort_key(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(value))


def research_jobs_active_count(user_id: int) -> int:
    """The user's backtests and optimizations pending or running (a part of the research-jobs quota)."""
    return (
        BacktestRun.objects.active().filter(owner_id=user_id).count()
        + Optimization.objects.active().filter(owner_id=user_id).count()
    )
