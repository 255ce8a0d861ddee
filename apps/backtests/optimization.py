"""Parameter optimization (grid / random search) and walk-forward analysis across Celery workers.

Flow: ``optimization_create`` validates and stores a pending ``Optimization``
and enqueues ``optimization_start``; ``optimization_dispatch`` (on a worker)
plans the combinations and the chunks, then sends one ``optimization_chunk``
task per chunk as a Celery group, so every worker listening on the
``backtests`` queue (on any machine) takes a share. Each chunk stores its
trials and bumps ``chunks_done`` in one transaction under a row lock; whichever chunk finishes
last runs ``_finalize`` (best parameters; for walk-forward, the out-of-sample
tests). That "last one finalizes" counter does a chord's job without depending
on the result backend, and survives a chunk being redelivered.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.quotas import Quota, quota_guard
from apps.backtests.engine import METRIC_NAMES, BacktestCancelled, Candles
from apps.backtests.engine.errors import BacktestError, ParamError
from apps.backtests.engine.params import validate_params
from apps.backtests.engine.shared import SharedScope, shared_arrays
from apps.backtests.models import Optimization, OptimizationKind, OptimizationTrial, StrategyKind
from apps.backtests.services.enqueue import (
    OPTIMIZATION_CHUNK_TASK,
    OPTIMIZATION_LOOKAHEAD_TASK,
    OPTIMIZATION_START_TASK,
    send_group,
    send_task,
)
from apps.backtests.services.failures import error_fields
from apps.backtests.services.futures import FuturesInputs, futures_inputs
from apps.backtests.services.lookahead import lookahead_report
from apps.backtests.services.runner import load_candles, strategy_run
from apps.backtests.services.runs import time_limit_seconds
from apps.backtests.specs import parse_run_spec
from apps.core.errors import DomainError, ValidationFailed
from apps.core.jobs import (
    JobCancelled,
    JobMonitor,
    JobStatus,
    JobTimeLimitExceeded,
    job_cancel,
    job_publish_status,
    job_send,
)

logger = logging.getLogger(__name__)

MAX_COMBINATIONS = 5000
MAX_TRIALS = 20_000
EXTRA_KEYS = frozenset(
    {"kind", "space", "objective", "maximize", "samples", "seed", "walk_forward", "chunk_size"}
)


# ================================================================== validation
def _axis_values(name: str, spec: Any) -> list[Any]:
    if isinstance(spec, list):
        if not spec or len(spec) > 1000:
            raise ValidationFailed(
                f"space.{name}: give 1 to 1000 values.", fields={f"space.{name}": ["1 to 1000 values"]}
            )
        return spec
    if isinstance(spec, dict) and set(spec) <= {"min", "max", "step"} and {"min", "max"} <= set(spec):
        lo, hi, step = spec["min"], spec["max"], spec.get("step")
        nums = [v for v in (lo, hi, step) if v is not None]
        if any(isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in nums):
            raise ValidationFailed(
                f"space.{name}: min/max/step must be numbers.",
                fields={f"space.{name}": ["min/max/step must be numbers"]},
            )
        if hi < lo:
            raise ValidationFailed(
                f"space.{name}: max must be >= min.", fields={f"space.{name}": ["max must be >= min"]}
            )
        if step is None:
            step = 1 if isinstance(lo, int) and isinstance(hi, int) else (hi - lo) / 9 or 1
        if step <= 0:
            raise ValidationFailed(
                f"space.{name}: step must be positive.", fields={f"space.{name}": ["step must be positive"]}
            )
        count = math.floor((hi - lo) / step + 1e-9) + 1
        if count > 1000:
            raise ValidationFailed(
                f"space.{name}: more than 1000 values.", fields={f"space.{name}": ["more than 1000 values"]}
            )
        values = [lo + k * step for k in range(count)]
        if all(isinstance(v, int) for v in (lo, hi, step)):
            return [int(v) for v in values]
        return [round(v, 12) for v in values]
    raise ValidationFailed(
        f"space.{name}: give a list of values or {{min, max, step}}.",
        fields={f"space.{name}": ["a list of values or {min, max, step}"]},
    )


def build_combinations(
    *, ref, fixed: dict[str, Any], space: dict[str, Any]
) -> tuple[list[dict[str, Any]], int]:
    """Every valid combination of ``space`` (plus the ``fixed`` params), in a stable order.

    Combinations a strategy refuses (e.g. ``fast >= slow``) are skipped and counted.
    """
    schema = ref.schema
    unknown = [k for k in list(space) + list(fixed) if k not in schema]
    if unknown:
        raise ValidationFailed(
            f"Unknown parameter(s): {', '.join(unknown)}.",
            fields={f"space.{k}": ["unknown parameter"] for k in unknown},
        )
    names = list(space)
    axes = [_axis_values(n, space[n]) for n in names]
    total = math.prod(len(a) for a in axes)
    if total > MAX_COMBINATIONS:
        raise ValidationFailed(
            f"The space has {total} combinations; at most {MAX_COMBINATIONS}.",
            fields={"space": [f"{total} combinations, at most {MAX_COMBINATIONS}"]},
        )
    combos, skipped, first_error = [], 0, None
    import itertools

    for values in itertools.product(*axes):
        params = {**fixed, **dict(zip(names, values, strict=True))}
        try:
            if ref.kind == StrategyKind.BUILTIN:
                from apps.backtests.strategies.registry import build_strategy

                combos.append(dict(build_strategy(ref.name, params).p))
            else:
                combos.append(validate_params(schema, params))
        except ParamError as exc:
            skipped += 1
            first_error = first_error or exc
    if not combos:
        fields = {f"space.{k}": [v] for k, v in (first_error.fields if first_error else {}).items()}
        raise ValidationFailed(f"No valid parameter combination in the space: {first_error}", fields=fields)
    return combos, skipped


def optimization_create(*, user, data: Any, enqueue: bool = True) -> Optimization:
    """Validate an optimization request and store it as pending; its planning task runs after the commit."""
    spec = parse_run_spec(user=user, data=data, extra_keys=EXTRA_KEYS, check_params=False)
    kind = data.get("kind", "grid")
    if kind not in OptimizationKind.values:
        raise ValidationFailed(
            "kind must be grid, random or walk_forward.",
            fields={"kind": [f"one of {', '.join(OptimizationKind.values)}"]},
        )
    space = data.get("space")
    if not isinstance(space, dict) or not space:
        raise ValidationFailed(
            "space must map parameter names to values.", fields={"space": ["a non-empty object"]}
        )
    objective = data.get("objective", "sharpe_ratio")
    if objective not in METRIC_NAMES:
        raise ValidationFailed(
            f"Unknown objective metric {objective!r}.", fields={"objective": ["not a metric name"]}
        )
    maximize = data.get("maximize", True)
    if not isinstance(maximize, bool):
        raise ValidationFailed("maximize must be true or false.", fields={"maximize": ["must be a boolean"]})
    seed = data.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValidationFailed(
            "seed must be a non-negative integer.", fields={"seed": ["non-negative integer"]}
        )
    samples = data.get("samples")
    if kind == OptimizationKind.RANDOM and samples is None:
        samples = 50
    if samples is not None and (
        isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_COMBINATIONS
    ):
        raise ValidationFailed(
            "samples must be an integer from 1 to 5000.", fields={"samples": ["1 to 5000"]}
        )
    chunk_size = data.get("chunk_size")
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1 <= chunk_size <= 1000
    ):
        raise ValidationFailed("chunk_size must be from 1 to 1000.", fields={"chunk_size": ["1 to 1000"]})
    fixed = data.get("params") or {}
    combos, skipped = build_combinations(ref=spec.strategy, fixed=fixed, space=space)
    if samples is not None and samples < len(combos):
        # Random search: a seeded sample of the grid, in grid order (reproducible).
        picked = np.sort(np.random.default_rng(seed).choice(len(combos), size=samples, replace=False))
        combos = [combos[i] for i in picked]
    wf: dict[str, Any] = {}
    if kind == OptimizationKind.WALK_FORWARD:
        wf = _walk_forward_options(data.get("walk_forward"))
        if len(combos) * wf["windows"] > MAX_TRIALS:
            raise ValidationFailed(
                f"Too many trials (combinations x windows > {MAX_TRIALS}).",
                fields={"walk_forward.windows": ["too many trials"]},
            )
    elif data.get("walk_forward") is not None:
        raise ValidationFailed(
            "walk_forward options need kind walk_forward.",
            fields={"walk_forward": ["only for kind walk_forward"]},
        )
    windows = wf.get("windows", 1) if kind == OptimizationKind.WALK_FORWARD else 1
    with quota_guard(user_id=user.pk, quota=Quota.RESEARCH_JOBS):
        fields = spec.model_fields()
        fields["params"] = fixed
        optimization = Optimization.objects.create(
            owner=user,
            kind=kind,
            space=space,
            objective=objective,
            maximize=maximize,
            samples=samples,
            seed=seed,
            walk_forward_options=wf,
            plan={"combinations": combos, "skipped": skipped, "chunk_size": chunk_size},
            total=len(combos) * windows,
            **fields,
        )
        if enqueue:
            transaction.on_commit(lambda: _enqueue_start(optimization.id))
    return optimization


def _walk_forward_options(raw: Any) -> dict[str, Any]:
    raw = raw if raw is not None else {}
    if not isinstance(raw, dict):
        raise ValidationFailed(
            "walk_forward must be an object.", fields={"walk_forward": ["must be an object"]}
        )
    unknown = sorted(set(raw) - {"windows", "in_sample_fraction", "anchored"})
    if unknown:
        raise ValidationFailed(
            f"Unknown walk_forward option(s): {', '.join(unknown)}.",
            fields={f"walk_forward.{k}": ["unknown option"] for k in unknown},
        )
    windows = raw.get("windows", 4)
    fraction = raw.get("in_sample_fraction", 0.75)
    anchored = raw.get("anchored", False)
    if isinstance(windows, bool) or not isinstance(windows, int) or not 1 <= windows <= 50:
        raise ValidationFailed(
            "walk_forward.windows must be 1 to 50.", fields={"walk_forward.windows": ["1 to 50"]}
        )
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0.1 <= fraction <= 0.95:
        raise ValidationFailed(
            "walk_forward.in_sample_fraction must be 0.1 to 0.95.",
            fields={"walk_forward.in_sample_fraction": ["0.1 to 0.95"]},
        )
    if not isinstance(anchored, bool):
        raise ValidationFailed(
            "walk_forward.anchored must be a boolean.",
            fields={"walk_forward.anchored": ["must be a boolean"]},
        )
    return {"windows": windows, "in_sample_fraction": float(fraction), "anchored": anchored}


def walk_forward_windows(
    first_ms: int, end_ms: int, *, windows: int, in_sample_fraction: float, anchored: bool
) -> list[dict[str, int]]:
    """Rolling (or anchored) windows: in-sample ``[is_start, is_end)``, out-of-sample ``[is_end, oos_end)``.

    With ``n`` windows and in-sample fraction ``f`` the span is ``I + n*O`` with
    ``I/(I+O) = f``; windows step by ``O``, so the out-of-sample parts tile the
    end of the data without overlap.
    """
    span = end_ms - first_ms
    oos = span / (windows + in_sample_fraction / (1 - in_sample_fraction))
    ins = oos * in_sample_fraction / (1 - in_sample_fraction)
    out = []
    for k in range(windows):
        is_start = first_ms if anchored else first_ms + k * oos
        is_end = first_ms + ins + k * oos
        oos_end = end_ms if k == windows - 1 else first_ms + ins + (k + 1) * oos
        out.append(
            {
                "index": k,
                "is_start": int(is_start),
                "is_end": int(is_end),
                "oos_start": int(is_end),
                "oos_end": int(oos_end),
            }
        )
    return out


def _enqueue_start(optimization_id: int) -> None:
    job_send(Optimization(pk=optimization_id), OPTIMIZATION_START_TASK)


# =================================================================== execution
@dataclass(frozen=True, eq=False)
class SweepData:
    """One candle set as a worker process holds it for sweeps: the candles, their digest and
    the ``engine.shared`` scope in which the sweep's indicators are computed once."""

    candles: Candles
    digest: str
    scope: SharedScope


# Keyed by the candle set (market, timeframe, range): chunks of a sweep, and later sweeps
# over the same candles, read them once per worker process. The digest tells a cached
# set from the one the sweep was planned on (candles imported since then).
_SWEEP_CACHE: OrderedDict[tuple[Any, ...], SweepData] = OrderedDict()
_CACHE_LOCK = threading.Lock()
SWEEP_CACHE_SETS = 2


def sweep_cache_clear() -> None:
    """Forget this process's cached candle sets (and their shared indicators)."""
    with _CACHE_LOCK:
        _SWEEP_CACHE.clear()


def _candle_set(optimization: Optimization) -> tuple[Any, ...]:
    return (
        optimization.exchange,
        optimization.symbol,
        optimization.timeframe,
        optimization.start.isoformat() if optimization.start else None,
        optimization.end.isoformat() if optimization.end else None,
    )


def candles_digest(candles: Candles) -> str:
    """A digest of every candle column (tells two reads of one candle set apart)."""
    h = hashlib.blake2b(digest_size=16)
    for column in (candles.timestamp, candles.open, candles.high, candles.low, candles.close, candles.volume):
        h.update(np.ascontiguousarray(column).data)
    return h.hexdigest()


def sweep_data(optimization: Optimization, *, fresh: bool = False) -> SweepData:
    """The optimization's candles (and shared indicator scope), read once per worker process.

    A cached set is used when it is the one the sweep was planned on
    (``plan["candles_digest"]``); otherwise, and with ``fresh`` (planning), the
    candles are read again (an unchanged set keeps its cached entry and scope).
    """
    key = _candle_set(optimization)
    want = (optimization.plan or {}).get("candles_digest")
    with _CACHE_LOCK:
        cached = _SWEEP_CACHE.get(key)
        if cached is not None and not fresh and want in (None, cached.digest):
            _SWEEP_CACHE.move_to_end(key)
            return cached
    candles = load_candles(
        exchange=optimization.exchange,
        symbol=optimization.symbol,
        timeframe=optimization.timeframe,
        start=optimization.start,
        end=optimization.end,
    )
    digest = candles_digest(candles)
    with _CACHE_LOCK:
        cached = _SWEEP_CACHE.get(key)
        data = (
            cached
            if cached is not None and cached.digest == digest
            else SweepData(candles=candles, digest=digest, scope=SharedScope())
        )
        _SWEEP_CACHE[key] = data
        _SWEEP_CACHE.move_to_end(key)
        while len(_SWEEP_CACHE) > SWEEP_CACHE_SETS:
            _SWEEP_CACHE.popitem(last=False)
    return data


def sweep_inputs(optimization: Optimization, candles: Candles) -> FuturesInputs:
    """What every trial of the sweep runs on, as a single backtest would: for futures, the stored
    mark-price candles and the funding the optimization asked for (stored history by default);
    spot candles and config pass through unchanged."""
    return futures_inputs(
        exchange=optimization.exchange,
        symbol=optimization.symbol,
        timeframe=optimization.timeframe,
        candles=candles,
        config=optimization.config,
        funding_source=optimization.funding_source,
    )


def evaluation_order(combos: list[dict[str, Any]], names: list[str], chunk_size: int) -> list[int]:
    """Combination indices in bands of the grid, so that a chunk's combinations share values.

    In grid order a chunk of 50 combinations of a ``10 x 100`` grid holds one
    ``fast`` and 50 ``slow`` values: 51 distinct moving averages to compute. Here
    the grid is cut into bands of about ``chunk_size ** (1/d)`` values on every
    axis but the last, and each band walks the last axis (forth, then back in the
    next band, so a chunk across two bands still shares values): a chunk then holds
    5 ``fast`` x 10 ``slow`` values, 15 averages. An axis value's position is its
    rank of first appearance; ties keep the grid order.
    """
    if len(combos) <= chunk_size:
        return list(range(len(combos)))
    ranks: dict[str, dict[str, int]] = {}
    for name in names:
        seen: dict[str, int] = {}
        for combo in combos:
            seen.setdefault(repr(combo.get(name)), len(seen))
        if len(seen) > 1:
            ranks[name] = seen
    if len(ranks) < 2:
        return list(range(len(combos)))
    *banded, last = ranks
    side = max(1, round(chunk_size ** (1 / len(ranks))))
    # Bands of equal width: 10 values in bands of at most 7 are two bands of 5.
    widths = {name: math.ceil(len(ranks[name]) / math.ceil(len(ranks[name]) / side)) for name in banded}

    def position(k: int) -> tuple[Any, ...]:
        combo = combos[k]
        band = tuple(ranks[name][repr(combo.get(name))] // widths[name] for name in banded)
        along = ranks[last][repr(combo.get(last))]
        return (band, -along if sum(band) % 2 else along, k)

    return sorted(range(len(combos)), key=position)


def _fail(optimization_id: int, **fields: Any) -> None:
    if Optimization.objects.finish(optimization_id, JobStatus.FAILED, **fields):
        job_publish_status(Optimization.objects.get(id=optimization_id))


def optimization_plan(*, optimization_id: int, worker: str = "", attempt: int = 1) -> int:
    """Claim a pending optimization and split it into chunks; returns the number of chunks (0: nothing to do)."""
    if not Optimization.objects.claim(optimization_id, worker=worker, attempt=attempt):
        return 0
    opt = Optimization.objects.get(id=optimization_id)
    job_publish_status(opt)
    try:
        data = sweep_data(opt, fresh=True)
        candles = data.candles
        if len(candles) < 2:
            raise ValidationFailed("Not enough candles in the selected range.", code="no_candles")
        combos = opt.plan["combinations"]
        windows: list[dict[str, Any]] = [{"index": None}]
        if opt.kind == OptimizationKind.WALK_FORWARD:
            windows = walk_forward_windows(
                int(candles.timestamp[0]),
                int(candles.timestamp[-1]) + candles.bar_ms(),
                **opt.walk_forward_options,
            )
        # ~16 chunks spread the work over many workers while each still amortizes its candle read.
        size = opt.plan.get("chunk_size") or max(1, min(50, math.ceil(len(combos) * len(windows) / 16)))
        # A chunk is [window, lo, hi): positions lo..hi-1 of the evaluation order.
        chunks = [
            [w["index"], lo, min(lo + size, len(combos))]
            for w in windows
            for lo in range(0, len(combos), size)
        ]
        plan = {
            **opt.plan,
            "windows": windows if opt.kind == OptimizationKind.WALK_FORWARD else [],
            "chunks": chunks,
            "order": evaluation_order(combos, list(opt.space), size),
            "candles_digest": data.digest,
            # Where a futures sweep's funding and liquidation prices come from (as a run's info says).
            "futures": sweep_inputs(opt, candles).info,
        }
        Optimization.objects.filter(id=opt.id).update(
            plan=plan, chunks_total=len(chunks), heartbeat_at=timezone.now()
        )
    except (BacktestError, DomainError) as exc:
        _fail(opt.id, **error_fields(exc))
        return 0
    return len(chunks)


def optimization_dispatch(*, optimization_id: int, worker: str = "", attempt: int = 1) -> None:
    """Plan an optimization and send its chunks to the workers as one Celery group."""
    count = optimization_plan(optimization_id=optimization_id, worker=worker, attempt=attempt)
    if count:
        send_group(OPTIMIZATION_CHUNK_TASK, ((optimization_id, k) for k in range(count)))


def optimization_run_chunk(*, optimization_id: int, chunk: int, worker: str = "") -> None:
    """Evaluate one chunk: each combination's backtest, stored as trials; the last chunk finalizes."""
    opt = Optimization.objects.select_related("strategy_version").filter(id=optimization_id).first()
    if opt is None or opt.status != JobStatus.RUNNING:
        return
    window_index, lo, hi = opt.plan["chunks"][chunk]
    combos = opt.plan["combinations"]
    order = opt.plan.get("order") or range(len(combos))
    if OptimizationTrial.objects.filter(optimization=opt, window=window_index, index=order[lo]).exists():
        return  # a redelivered chunk that already ran
    source = opt.strategy_version.source if opt.strategy_version else None
    monitor = JobMonitor(opt, event="optimization.progress", time_limit=time_limit_seconds())
    progress = _ProgressCounter(opt.id, monitor)
    try:
        data = sweep_data(opt)
        # Built-in strategies compute each distinct indicator once per worker for the
        # candle set (engine.shared); user code runs in its sandbox process per
        # combination and gets no share.
        with shared_arrays(data.scope):
            candles = data.candles
            if window_index is not None:
                win = opt.plan["windows"][window_index]
                candles = data.scope.get(
                    "optimization.window",
                    (candles, win["is_start"], win["is_end"]),
                    lambda: data.candles.between(win["is_start"], win["is_end"]),
                )
            inputs = sweep_inputs(opt, candles)
            trials = []
            for pos in range(lo, hi):
                k = order[pos]
                monitor.check()
                trials.append(_trial(opt, k, combos[k], window_index, inputs, source, monitor, worker))
                progress.add(1)
        progress.flush()
    except JobTimeLimitExceeded as exc:
        _fail(opt.id, **error_fields(exc))
        return
    except (BacktestCancelled, JobCancelled):
        _mark_cancelled(opt.id)
        return
    except (BacktestError, DomainError) as exc:
        _fail(opt.id, **error_fields(exc))
        return
    except Exception as exc:
        logger.exception("optimization %s chunk %s failed", optimization_id, chunk)
        _fail(opt.id, error_code="internal_error", error=f"Internal error ({type(exc).__name__}).")
        return
    # One transaction under the row lock: the chunk's trials and its count land together or not at all.
    with transaction.atomic():
        locked = Optimization.objects.select_for_update().filter(id=opt.id).first()
        if locked is None or locked.status != JobStatus.RUNNING:
            return  # deleted, cancelled or reaped meanwhile
        OptimizationTrial.objects.bulk_create(trials, ignore_conflicts=True)
        locked.chunks_done += 1
        Optimization.objects.filter(id=opt.id).update(chunks_done=locked.chunks_done)
        last = locked.chunks_done >= locked.chunks_total
    if last:
        _finalize(opt.id)


def _trial(
    opt: Optimization,
    k: int,
    params: dict[str, Any],
    window_index: int | None,
    inputs: FuturesInputs,
    source: str | None,
    monitor: JobMonitor,
    worker: str,
) -> OptimizationTrial:
    """One combination's backtest as an (unsaved) trial; a bad combination is an error row."""
    try:
        result = strategy_run(
            kind=opt.strategy_kind,
            name=opt.strategy_name,
            source=source,
            params=params,
            candles=inputs.candles,
            config=inputs.config,
            should_cancel=monitor.should_cancel,
        )
        metrics, error = _clean_metrics(result.metrics), ""
    except (BacktestCancelled, JobCancelled, JobTimeLimitExceeded):
        raise
    except BacktestError as exc:  # one bad combination does not sink the sweep
        metrics, error = {}, str(exc)[:2000]
    return OptimizationTrial(
        optimization_id=opt.id,
        index=k,
        window=window_index,
        params=params,
        metrics=metrics,
        error=error,
        worker=worker[:200],
    )


class _ProgressCounter:
    """Adds a chunk's finished combinations to ``completed`` a few times a second, not per row.

    A combination takes milliseconds in a sweep: two queries per combination
    would cost as much as the backtest. Progress events still go out through
    the monitor's throttle.
    """

    EVERY = 0.25

    def __init__(self, optimization_id: int, monitor: JobMonitor) -> None:
        self.optimization_id = optimization_id
        self.monitor = monitor
        self.pending = 0
        self.last = time.monotonic()

    def add(self, count: int) -> None:
        self.pending += count
        if time.monotonic() - self.last >= self.EVERY:
            self.flush()

    def flush(self) -> None:
        self.last = time.monotonic()
        if not self.pending:
            return
        Optimization.objects.filter(id=self.optimization_id).update(
            completed=F("completed") + self.pending, heartbeat_at=timezone.now()
        )
        self.pending = 0
        _publish_progress(self.optimization_id, self.monitor)


def _publish_progress(optimization_id: int, monitor: JobMonitor) -> None:
    """The sweep's share done (all chunks on all workers), through this chunk's throttled monitor."""
    row = Optimization.objects.filter(id=optimization_id).values("completed", "total").first()
    if row and row["total"]:
        monitor.progress(
            min(99, 100 * row["completed"] / row["total"]),
            details={"completed": row["completed"], "total": row["total"]},
        )


def _mark_cancelled(optimization_id: int) -> None:
    if Optimization.objects.filter(
        id=optimization_id, status__in=[JobStatus.RUNNING, JobStatus.PENDING]
    ).update(status=JobStatus.CANCELLED, finished_at=timezone.now()):
        job_publish_status(Optimization.objects.get(id=optimization_id))


def _clean_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


def best_trial(trials: list[dict[str, Any]], *, objective: str, maximize: bool) -> dict[str, Any] | None:
    """The trial with the best objective (None values lose; ties go to the earliest index)."""
    best, best_key = None, None
    for trial in trials:
        value = (trial.get("metrics") or {}).get(objective)
        if value is None:
            continue
        key = value if maximize else -value
        if best is None or key > best_key:
            best, best_key = trial, key
    return best


def _finalize(optimization_id: int) -> None:
    opt = Optimization.objects.select_related("strategy_version").get(id=optimization_id)
    if opt.status != JobStatus.RUNNING:
        return
    try:
        rows = list(
            OptimizationTrial.objects.filter(optimization=opt)
            .order_by("window", "index")
            .values("index", "window", "params", "metrics")
        )
        updates: dict[str, Any] = {}
        if opt.kind == OptimizationKind.WALK_FORWARD:
            updates.update(_walk_forward_report(opt, rows))
        else:
            best = best_trial(rows, objective=opt.objective, maximize=opt.maximize)
            if best is not None:
                updates.update(
                    best_params=best["params"],
                    best_metrics=best["metrics"],
                    best_value=best["metrics"].get(opt.objective),
                )
        if updates.get("best_params") is not None:
            # The parameters a user would take away get the lookahead check every run gets: as a
            # task of its own after the sweep, so the results are there while it runs.
            updates["lookahead"] = dict(LOOKAHEAD_PENDING)
    except BacktestCancelled:
        _mark_cancelled(opt.id)
        return
    except (BacktestError, DomainError) as exc:
        _fail(opt.id, **error_fields(exc))
        return
    updated = Optimization.objects.filter(id=opt.id, status=JobStatus.RUNNING).update(
        status=JobStatus.COMPLETED, progress=100, finished_at=timezone.now(), **updates
    )
    if updated:
        opt.refresh_from_db()
        job_publish_status(opt)
        if "lookahead" in updates:
            transaction.on_commit(lambda: send_task(OPTIMIZATION_LOOKAHEAD_TASK, opt.id))


LOOKAHEAD_PENDING = {
    "verdict": "pending",
    "summary": "checking the best parameters for lookahead bias (the results are final meanwhile)",
}


def optimization_check_lookahead(*, optimization_id: int) -> dict[str, Any] | None:
    """The lookahead check of a completed optimization's best parameters (the follow-up task of
    ``_finalize``); stores and announces the report. A redelivered task finds it done."""
    opt = Optimization.objects.select_related("strategy_version").filter(id=optimization_id).first()
    if opt is None or opt.status != JobStatus.COMPLETED or not opt.best_params:
        return None
    if (opt.lookahead or {}).get("verdict") != LOOKAHEAD_PENDING["verdict"]:
        return opt.lookahead
    try:
        report = lookahead_report(job=opt, candles=sweep_data(opt).candles, params=opt.best_params)
    except BacktestCancelled:  # cannot happen on a completed sweep; say so rather than hang "pending"
        report = {"ok": None, "verdict": "not_checked", "line": None, "summary": "the check was cancelled"}
    Optimization.objects.filter(id=opt.id).update(lookahead=report)
    opt.lookahead = report
    job_publish_status(opt)
    return report


def _mean(values: list[float | None]) -> float | None:
    nums = [v for v in values if v is not None]
    return float(np.mean(nums)) if nums else None


def _walk_forward_report(opt: Optimization, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per window: the in-sample best params, then their out-of-sample backtest."""
    candles = sweep_data(opt).candles
    source = opt.strategy_version.source if opt.strategy_version else None
    report = []
    for win in opt.plan["windows"]:
        in_window = [r for r in rows if r["window"] == win["index"]]
        best = best_trial(in_window, objective=opt.objective, maximize=opt.maximize)
        entry: dict[str, Any] = {
            "index": win["index"],
            "in_sample": {"start": win["is_start"], "end": win["is_end"]},
            "out_of_sample": {"start": win["oos_start"], "end": win["oos_end"]},
            "best_params": best["params"] if best else None,
            "in_sample_metrics": best["metrics"] if best else None,
            "out_of_sample_metrics": None,
            "error": None,
        }
        oos = sweep_inputs(opt, candles.between(win["oos_start"], win["oos_end"]))
        if best is not None and len(oos.candles) >= 2:
            if Optimization.objects.filter(id=opt.id, cancel_requested=True).exists():
                raise BacktestCancelled("optimization cancelled")
            try:
                result = strategy_run(
                    kind=opt.strategy_kind,
                    name=opt.strategy_name,
                    source=source,
                    params=best["params"],
                    candles=oos.candles,
                    config=oos.config,
                )
                entry["out_of_sample_metrics"] = _clean_metrics(result.metrics)
            except BacktestError as exc:
                entry["error"] = str(exc)
        report.append(entry)
    obj = opt.objective
    is_vals = [(w["in_sample_metrics"] or {}).get(obj) for w in report]
    oos_vals = [(w["out_of_sample_metrics"] or {}).get(obj) for w in report]
    is_ret = [(w["in_sample_metrics"] or {}).get("total_return") for w in report]
    oos_ret = [(w["out_of_sample_metrics"] or {}).get("total_return") for w in report]
    compounded = (
        float(np.prod([1 + r for r in oos_ret if r is not None]) - 1)
        if any(r is not None for r in oos_ret)
        else None
    )
    is_mean, oos_mean = _mean(is_vals), _mean(oos_vals)
    summary = {
        "objective": obj,
        "in_sample_objective_mean": is_mean,
        "out_of_sample_objective_mean": oos_mean,
        "in_sample_total_return_mean": _mean(is_ret),
        "out_of_sample_total_return_mean": _mean(oos_ret),
        "out_of_sample_total_return_compounded": compounded,
        # Walk-forward efficiency: how much of the in-sample result survives out of sample.
        "efficiency": (oos_mean / is_mean) if is_mean not in (None, 0) and oos_mean is not None else None,
    }
    last = next((w for w in reversed(report) if w["best_params"] is not None), None)
    out: dict[str, Any] = {"walk_forward": {"windows": report, "summary": summary}}
    if last:
        out.update(
            best_params=last["best_params"],
            best_metrics=last["out_of_sample_metrics"] or last["in_sample_metrics"],
            best_value=(last["out_of_sample_metrics"] or {}).get(obj),
        )
    return out


# ==================================================================== control
def optimization_cancel(*, optimization: Optimization) -> Optimization:
    """Cancel a pending or running optimization (chunks stop at their next check)."""
    return job_cancel(optimization)


def optimization_delete(*, optimization: Optimization) -> None:
    """Delete an optimization; its running chunks see the row gone and stop."""
    optimization.delete()
