"""``run_backtest``: the event loop, the vectorized signal path and result assembly.

Paths
-----
* **Event strategies** run in a tight per-candle loop. The broker is consulted
  only when something can happen on a candle (an order was placed, a trigger
  level or the liquidation price is inside the candle's range, funding is due,
  a trailing stop follows the price), and one ``Candle`` object is reused.
* **Signal strategies** take a fully vectorized path when the run is "scale
  free" (no stop/target/trailing, proportional fees, size-independent
  deterministic slippage, percent-of-equity sizing, no funding) and no trade
  reaches its liquidation price. Every other signal run goes through the same
  broker as event strategies, acting only on candles that carry a signal. Both
  paths implement the rules of ``engine.fills``; tests check they agree.

Numerics
--------
The engine computes in float64. Against exact decimal arithmetic of the same
fills (tests/backtests/test_engine_precision.py), final equity and trade pnl
agree to a relative error below 1e-9 over thousands of compounding trades: each
fill adds a rounding error of about 1e-16 relative, far below a satoshi or a
cent on any realistic account. The product stores results as Decimal.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from .broker import BrokerView, SimulatedBroker
from .candles import Candles, to_candles
from .config import BacktestConfig
from .errors import BacktestCancelled, BacktestError, StrategyError
from .fees import FeeModel
from .metrics import compute_metrics, drawdown_curve
from .results import TRADE_FIELDS, BacktestResult, empty_trade_columns
from .shared import shared
from .slippage import SlippageModel
from .strategy import Signals, SignalStrategy, Strategy

ProgressFn = Callable[[float], None]
CancelFn = Callable[[], bool]


def run_backtest(
    data: Any,
    strategy: SignalStrategy | Strategy,
    config: BacktestConfig | dict[str, Any] | None = None,
    *,
    progress: ProgressFn | None = None,
    should_cancel: CancelFn | None = None,
) -> BacktestResult:
    """Run ``strategy`` over ``data`` (``Candles`` or an OHLCV DataFrame) with ``config``.

    ``progress(fraction)`` is called at most about 100 times; ``should_cancel()`` is
    polled at the same points and a true answer raises ``BacktestCancelled``.
    Raises ``BacktestError`` (bad data/config), ``StrategyError`` (the strategy raised).
    """
    if config is None:
        config = BacktestConfig()
    elif isinstance(config, dict):
        config = BacktestConfig.from_dict(config)
    candles = to_candles(data)
    if config.start is not None or config.end is not None:
        # One slice object per sweep, so that what is shared about it stays shared.
        whole, start, end = candles, config.start, config.end
        candles = shared("candles.between", (whole, start, end), lambda: whole.between(start, end))
    # A sweep validates its candles once (engine.shared); a lone run every time.
    shared("candles.validate", _price_columns(candles), lambda: _validated(candles))
    if should_cancel is not None and should_cancel():
        raise BacktestCancelled("backtest cancelled")
    signals = None
    if isinstance(strategy, SignalStrategy):
        signals = _call_strategy(lambda: strategy.signals(candles))
        signals = _check_signals(signals, len(candles), config)
        result = _run_signals(candles, signals, config, progress, should_cancel)
    elif isinstance(strategy, Strategy):
        result = _run_events(candles, strategy, config, progress, should_cancel)
    else:
        raise BacktestError("strategy must be a SignalStrategy or Strategy instance")
    if not result.metrics.get("total_trades"):
        result.info["no_trades_reason"] = no_trades_reason(candles, config, signals, result.info)
    result.strategy = {
        "name": getattr(strategy, "name", "") or type(strategy).__name__,
        "style": strategy.style,
        "params": dict(getattr(strategy, "p", {}) or {}),
    }
    if progress is not None:
        progress(1.0)
    return result


def no_trades_reason(
    candles: Candles, config: BacktestConfig, signals: Signals | None, info: dict[str, Any]
) -> str:
    """Why a run made no trade, in one sentence for the run page (``info["no_trades_reason"]``)."""
    n = len(candles)
    rejected = int(info.get("rejected_orders") or 0)
    if rejected:
        return (
            f"{rejected} order(s) were rejected: the size came out at zero or more than the cash "
            "and margin allow (check the capital, the sizing and the leverage)."
        )
    if signals is None:
        if info.get("fills"):
            return "Orders filled, but no position was closed before the end of the range."
        return f"The strategy placed no order that filled in the {n:,} candles of the range."

    def count(name: str) -> int:
        value = getattr(signals, name)
        return 0 if value is None else int(np.count_nonzero(value))

    longs, shorts = count("long_entries"), count("short_entries")
    shorting = config.market_type == "futures" and config.allow_short
    if longs == 0 and shorts and not shorting:
        return (
            f"The strategy only signalled short entries ({shorts:,}) and shorting is off "
            "(a futures run with shorts allowed takes them)."
        )
    if longs == 0 and (shorts == 0 or not shorting):
        return (
            f"The strategy gave no entry signal in the {n:,} candles of the range: its conditions "
            "never held, or its longest window needs more candles than the range has."
        )
    return (
        "Every entry signal came on the last candle, with no candle left to fill it."
        if n
        else "The range has no candles."
    )


def _price_columns(candles: Candles) -> tuple[np.ndarray, ...]:
    return (candles.timestamp, candles.open, candles.high, candles.low, candles.close)


def _validated(candles: Candles) -> bool:
    candles.validate()
    return True


# ---------------------------------------------------------------- strategy calls
def _strategy_line(exc: BaseException) -> int | None:
    """Line number of the innermost frame outside the engine (the strategy's own code)."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if "/backtests/engine/" not in filename and "numpy" not in filename and "pandas" not in filename:
            line = lineno
    return line


def _call_strategy(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except BacktestError:
        raise
    except Exception as exc:  # the strategy's own bug: report it with its line
        raise StrategyError(f"{type(exc).__name__}: {exc}", _strategy_line(exc)) from exc


def _check_signals(signals: Any, n: int, config: BacktestConfig) -> Signals:
    if not isinstance(signals, Signals):
        raise StrategyError("signals() must return a Signals object")
    for name in ("long_entries", "long_exits", "short_entries", "short_exits"):
        value = getattr(signals, name)
        if value is None:
            continue
        arr = np.asarray(value)
        if arr.shape != (n,):
            raise StrategyError(f"signals.{name} has shape {arr.shape}, expected ({n},) like the candles")
        if arr.dtype != np.bool_:
            if arr.dtype.kind == "f":
                arr = np.nan_to_num(arr, nan=0.0)
            arr = arr.astype(bool)
        setattr(signals, name, arr)
    return signals


# ------------------------------------------------------------------- event path
def _chunks(n: int) -> list[tuple[int, int]]:
    step = max(1, -(-n // 100))
    return [(s, min(n, s + step)) for s in range(0, n, step)]


def _report(progress: ProgressFn | None, should_cancel: CancelFn | None, done: int, n: int) -> None:
    if should_cancel is not None and should_cancel():
        raise BacktestCancelled("backtest cancelled")
    if progress is not None:
        progress(min(done / n, 0.99))


def _run_events(
    candles: Candles,
    strategy: Strategy,
    config: BacktestConfig,
    progress: ProgressFn | None,
    should_cancel: CancelFn | None,
) -> BacktestResult:
    hook = getattr(strategy, "on_fill", None)
    broker = SimulatedBroker(candles, config, on_fill=hook)
    # The strategy sees the protocol, not the broker: no attribute of it holds later candles.
    strategy.broker = BrokerView(broker)
    strategy.candle = broker.candle
    _call_strategy(strategy.initialize)
    ts, o, h, lo_, c, v = (
        broker._ts,
        broker._o,
        broker._h,
        broker._l,
        broker._c,
        broker._v,
    )
    candle = broker.candle
    on_data = strategy.on_data
    process = broker.process
    n = len(ts)
    # With mark candles the liquidation follows the mark price: scan both series.
    has_mark, scan_l, scan_h = broker.has_mark, broker._scan_l, broker._scan_h
    try:
        for start, stop in _chunks(n):
            _report(progress, should_cancel, start, n)
            lo_t, hi_t, fund_i, busy = (
                broker.lo_trig,
                broker.hi_trig,
                broker.fund_i,
                broker.busy,
            )
            for i in range(start, stop):
                low = lo_[i]
                high = h[i]
                if (
                    busy
                    or low <= lo_t
                    or high >= hi_t
                    or i == fund_i
                    or (has_mark and (scan_l[i] <= lo_t or scan_h[i] >= hi_t))
                ):
                    process(i)
                    lo_t, hi_t, fund_i = broker.lo_trig, broker.hi_trig, broker.fund_i
                candle.index = i
                candle.timestamp = ts[i]
                candle.open = o[i]
                candle.high = high
                candle.low = low
                candle.close = c[i]
                candle.volume = v[i]
                on_data(candle)
                busy = broker.busy
                if busy:
                    lo_t, hi_t = (
                        -math.inf,
                        math.inf,
                    )  # new orders: let process() decide next candle
    except BacktestError:
        raise
    except Exception as exc:
        raise StrategyError(f"{type(exc).__name__}: {exc}", _strategy_line(exc)) from exc
    if config.close_at_end:
        broker.close_at_end(n - 1)
    return _assemble_from_broker(candles, broker, config)


def _run_signals_on_broker(
    candles: Candles,
    sig: Signals,
    config: BacktestConfig,
    stops: tuple[float | None, float | None, float | None],
    progress: ProgressFn | None,
    should_cancel: CancelFn | None,
) -> BacktestResult:
    """Signals through the simulated broker, acting only on candles with a signal."""
    n = len(candles)
    le, lx, se, sx = _effective_signals(sig, n, config.allow_short)
    act = np.flatnonzero(le | lx | se | sx).tolist()
    le_l, lx_l, se_l, sx_l = le.tolist(), lx.tolist(), se.tolist(), sx.tolist()
    broker = SimulatedBroker(candles, config)
    lo_, h = broker._scan_l, broker._scan_h
    process = broker.process
    sl, tp, tr = stops
    ptr = 0
    next_act = act[0] if act else -1
    for start, stop in _chunks(n):
        _report(progress, should_cancel, start, n)
        lo_t, hi_t, fund_i, busy = (
            broker.lo_trig,
            broker.hi_trig,
            broker.fund_i,
            broker.busy,
        )
        for i in range(start, stop):
            if busy or lo_[i] <= lo_t or h[i] >= hi_t or i == fund_i:
                process(i)
                lo_t, hi_t, fund_i, busy = (
                    broker.lo_trig,
                    broker.hi_trig,
                    broker.fund_i,
                    broker.busy,
                )
            if i != next_act:
                continue
            ptr += 1
            next_act = act[ptr] if ptr < len(act) else -1
            broker._i = i
            broker.candle.index = i
            broker.candle.close = broker._c[i]
            size = broker.size
            if size > 0:
                if se_l[i]:
                    broker.market(-1, None, stop_loss=sl, take_profit=tp, trailing_stop=tr)
                elif lx_l[i]:
                    broker.close_position(100.0)
            elif size < 0:
                if le_l[i]:
                    broker.market(1, None, stop_loss=sl, take_profit=tp, trailing_stop=tr)
                elif sx_l[i]:
                    broker.close_position(100.0)
            elif le_l[i]:
                broker.market(1, None, stop_loss=sl, take_profit=tp, trailing_stop=tr)
            elif se_l[i]:
                broker.market(-1, None, stop_loss=sl, take_profit=tp, trailing_stop=tr)
            if broker.busy:
                busy = True
                lo_t, hi_t = -math.inf, math.inf
    if config.close_at_end:
        broker.close_at_end(n - 1)
    return _assemble_from_broker(candles, broker, config)


def _effective_signals(sig: Signals, n: int, allow_short: bool) -> tuple[np.ndarray, ...]:
    """Apply the conflict rules: exit beats entry of the same side; opposite entries cancel."""
    zeros = np.zeros(n, dtype=bool)
    le = sig.long_entries
    lx = sig.long_exits if sig.long_exits is not None else zeros
    if not allow_short:  # no short signals: the same arrays without the passes over zeros
        return le & ~lx, lx, zeros, zeros
    se = sig.short_entries if sig.short_entries is not None else zeros
    sx = sig.short_exits if sig.short_exits is not None else zeros
    le_eff = le & ~lx & ~se
    se_eff = se & ~sx & ~le
    return le_eff, lx, se_eff, sx


# ------------------------------------------------------------- vectorized path
def _run_signals(
    candles: Candles,
    sig: Signals,
    config: BacktestConfig,
    progress: ProgressFn | None,
    should_cancel: CancelFn | None,
) -> BacktestResult:
    sl = sig.stop_loss if sig.stop_loss is not None else config.stop_loss
    tp = sig.take_profit if sig.take_profit is not None else config.take_profit
    tr = sig.trailing_stop if sig.trailing_stop is not None else config.trailing_stop
    fees = FeeModel(config.fee)
    slip = SlippageModel(config.slippage)
    vectorizable = (
        not (sl or tp or tr)
        and fees.proportional
        and slip.kind in ("none", "percentage", "fixed")
        and config.sizing["type"] == "percent_equity"
        and config.funding_rates is None
        and not (config.market_type == "futures" and candles.mark is not None)
        and not config.extra.get("force_broker")
    )
    if vectorizable:
        result = _vectorized(candles, sig, config, fees, slip)
        if result is not None:
            return result
    return _run_signals_on_broker(candles, sig, config, (sl, tp, tr), progress, should_cancel)


def _vectorized(
    candles: Candles,
    sig: Signals,
    config: BacktestConfig,
    fees: FeeModel,
    slip: SlippageModel,
) -> BacktestResult | None:
    """Scale-free signal run in numpy; None if some trade would reach its liquidation price."""
    n = len(candles)
    o, h, lo, c = candles.open, candles.high, candles.low, candles.close
    le, lx, se, sx = _effective_signals(sig, n, config.allow_short)
    # Only candles with a signal can change the desired position, so the state machine
    # runs on those alone: the desired position after a signal candle is the last
    # entry's direction, unless an exit of that direction came after it.
    ev = np.flatnonzero(le | lx | se | sx if config.allow_short else le | lx)
    k = np.arange(len(ev))
    entry_dir = le[ev].astype(np.int8) - se[ev].astype(np.int8)
    last_entry = np.maximum.accumulate(np.where(entry_dir != 0, k, -1))
    last_lx = np.maximum.accumulate(np.where(lx[ev], k, -1))
    last_sx = np.maximum.accumulate(np.where(sx[ev], k, -1))
    direction = np.where(last_entry >= 0, entry_dir[np.maximum(last_entry, 0)], 0)
    state = ((direction > 0) & (last_lx < last_entry)).astype(np.int8) - (
        (direction < 0) & (last_sx < last_entry)
    ).astype(np.int8)
    flip = np.flatnonzero(state != np.concatenate(([0], state[:-1])))
    change = ev[flip] + 1  # the candle whose open executes the change
    new_state = state[flip]
    keep = change < n  # a signal on the last candle has no next open
    change, new_state = change[keep], new_state[keep]
    opening = np.flatnonzero(new_state != 0)
    if len(opening) == 0:
        return _assemble(
            candles,
            config,
            trade_cols=empty_trade_columns(),
            ev_idx=np.empty(0, dtype=np.int64),
            ev_base=np.empty(0),
            ev_size=np.empty(0),
            timeline=_timeline_from_events(
                candles.timestamp,
                np.empty(0, dtype=np.int64),
                np.empty(0),
                np.empty(0),
                1.0,
            ),
            info={"path": "vectorized"},
        )
    starts = change[opening]
    ends = np.concatenate((change, [n]))[opening + 1]  # first candle after the trade
    d = new_state[opening].astype(np.float64)
    at_end = ends >= n
    if at_end.any() and not config.close_at_end:
        return None  # rare; the broker path handles an open position at the end
    r = fees.taker
    lev = config.leverage if config.market_type == "futures" else 1.0
    v = config.sizing["value"]
    pe = _slip_vec(slip, o[starts], d)
    exit_ref = np.where(at_end, c[-1], o[np.minimum(ends, n - 1)])
    px = _slip_vec(slip, exit_ref, -d)
    # Per-trade equity growth (scale free): N = E*v*L/(1 + r*L) is the notional.
    k = v * lev / (1.0 + r * lev)
    rho = px / pe
    growth = 1.0 + k * (d * (rho - 1.0) - r * (1.0 + rho))
    e0 = config.initial_cash
    e_after = e0 * np.cumprod(growth)
    e_before = np.concatenate(([e0], e_after[:-1]))
    notional = e_before * k
    qty = notional / pe
    fee_in = notional * r
    if config.market_type == "futures":
        tiers = config.tiers()
        if np.any(tiers.leverage_caps(notional) < lev):
            return None  # a position too large for the leverage: the broker caps it
        margin = notional / lev
        collateral = e_before - fee_in if config.margin_mode == "cross" else margin
        liq = tiers.liquidation_prices(d, pe, qty, collateral)
        # Adverse extremes while held: full candles [start, end) plus the exit candle's open.
        seg_lo, seg_hi = _segment_extremes(lo, h, starts, ends, n)
        exit_open = o[np.minimum(ends, n - 1)]
        worst_long = np.where(at_end, seg_lo, np.minimum(seg_lo, exit_open))
        worst_short = np.where(at_end, seg_hi, np.maximum(seg_hi, exit_open))
        hit = np.where(d > 0, (liq > 0) & (worst_long <= liq), worst_short >= liq)
        if hit.any() or np.any(e_after <= 0):
            return None
        base = e_before - fee_in - d * qty * pe
        size = d * qty
    else:
        base = e_before - notional - fee_in
        size = qty
    pnl = e_after - e_before
    exit_idx = np.where(at_end, n - 1, ends)
    ts = candles.timestamp
    cols = {
        "entry_index": starts,
        "exit_index": exit_idx,
        "entry_time": ts[starts],
        "exit_time": ts[exit_idx],
        "side": np.where(d > 0, "long", "short").astype(object),
        "size": qty,
        "entry_price": pe,
        "exit_price": px,
        "fees": fee_in + qty * px * r,
        "funding": np.zeros(len(starts)),
        "pnl": pnl,
        "return_pct": pnl / (notional / lev),
        "exit_reason": np.where(at_end, "end_of_data", "signal").astype(object),
        "leverage": np.full(len(starts), lev),
    }
    # State changes: entering at each start, flat (or reversed) at each exit candle.
    ev_idx = np.concatenate((starts, exit_idx))
    ev_base = np.concatenate((base, e_after))
    ev_size = np.concatenate((size, np.zeros(len(starts))))
    # Within one candle: an exit at the open comes before an entry at that open (a
    # reversal), and a close at the last candle's close comes after everything.
    rank = np.concatenate((np.ones(len(starts)), np.where(at_end, 2.0, 0.0)))
    order = np.lexsort((rank, ev_idx))
    ev_idx, ev_base, ev_size = ev_idx[order], ev_base[order], ev_size[order]
    timeline = _timeline_from_events(
        ts, ev_idx, ev_size, np.concatenate((pe, np.zeros(len(starts))))[order], lev
    )
    return _assemble(
        candles,
        config,
        trade_cols=cols,
        ev_idx=ev_idx,
        ev_base=ev_base,
        ev_size=ev_size,
        timeline=timeline,
        info={"path": "vectorized"},
    )


def _slip_vec(slip: SlippageModel, price: np.ndarray, side: np.ndarray) -> np.ndarray:
    if slip.kind == "none":
        return price
    if slip.kind == "percentage":
        return price * (1.0 + side * slip.value)
    return np.maximum(price + side * slip.amount, price * 1e-9)


def _segment_extremes(
    low: np.ndarray, high: np.ndarray, starts: np.ndarray, ends: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """min(low) and max(high) over candles [start, end) per trade (end > start)."""
    stops = np.minimum(ends, n)
    pairs = np.empty(2 * len(starts), dtype=np.int64)
    pairs[0::2] = starts
    pairs[1::2] = np.minimum(stops, n - 1)
    seg_lo = np.minimum.reduceat(low, pairs)[0::2]
    seg_hi = np.maximum.reduceat(high, pairs)[0::2]
    # reduceat stops one short when end == n; include the last candle then.
    last = stops >= n
    if last.any():
        seg_lo[last] = np.minimum(seg_lo[last], low[-1])
        seg_hi[last] = np.maximum(seg_hi[last], high[-1])
    return seg_lo, seg_hi


def _timeline_from_events(
    ts: np.ndarray,
    ev_idx: np.ndarray,
    ev_size: np.ndarray,
    ev_price: np.ndarray,
    lev: float,
) -> dict[str, np.ndarray]:
    return {
        "timestamp": ts[ev_idx],
        "size": ev_size,
        "avg_price": ev_price,
        "leverage": np.where(ev_size != 0, lev, 0.0),
    }


# ------------------------------------------------------------------- assembly
def _assemble_from_broker(
    candles: Candles, broker: SimulatedBroker, config: BacktestConfig
) -> BacktestResult:
    trades = broker.trades
    if trades:
        cols = {name: np.asarray([t[name] for t in trades]) for name in trades[0]}
        cols["side"] = cols["side"].astype(object)
        cols["exit_reason"] = cols["exit_reason"].astype(object)
    else:
        cols = empty_trade_columns()
    rows = broker.timeline
    timeline = {
        "timestamp": np.asarray([r[0] for r in rows], dtype=np.int64),
        "size": np.asarray([r[1] for r in rows], dtype=np.float64),
        "avg_price": np.asarray([r[2] for r in rows], dtype=np.float64),
        "leverage": np.asarray([r[3] for r in rows], dtype=np.float64),
    }
    return _assemble(
        candles,
        config,
        trade_cols=cols,
        ev_idx=np.asarray(broker.ev_idx, dtype=np.int64),
        ev_base=np.asarray(broker.ev_base, dtype=np.float64),
        ev_size=np.asarray(broker.ev_size, dtype=np.float64),
        timeline=timeline,
        info={
            "path": "broker",
            "rejected_orders": broker.rejected,
            "fills": len(broker.fills),
        },
        mark_close=np.asarray(broker._mc) if broker.has_mark else None,
        mark_missing=broker.mark_missing,
    )


def _assemble(
    candles: Candles,
    config: BacktestConfig,
    *,
    trade_cols: dict[str, np.ndarray],
    ev_idx: np.ndarray,
    ev_base: np.ndarray,
    ev_size: np.ndarray,
    timeline: dict[str, np.ndarray],
    info: dict[str, Any],
    mark_close: np.ndarray | None = None,
    mark_missing: int = 0,
) -> BacktestResult:
    """Per-candle equity from the state changes, trade excursions, metrics.

    Futures positions are marked at ``mark_close`` (mark-price candles) when given.
    """
    n = len(candles)
    close = candles.close
    marked = close if mark_close is None else mark_close
    e0 = config.initial_cash
    if len(ev_idx):
        # State in force at each candle's close: the last change at or before it. Runs of
        # candles share a state, so repeat each state over its run (zero-length for a
        # state superseded within the same candle).
        lengths = np.diff(np.concatenate((ev_idx, [n])))
        head = int(ev_idx[0])
        base = np.empty(n)
        base[:head] = e0
        base[head:] = np.repeat(ev_base, lengths)
        size = np.zeros(n)
        size[head:] = np.repeat(ev_size, lengths)
        # In place, ``size * marked + base``: the same values as ``base + size * marked``.
        equity = np.multiply(size, marked)
        equity += base
    else:
        size = np.zeros(n)
        equity = np.full(n, e0)
    # Marking can dip an instant below zero between a gap and the liquidation; the account cannot.
    np.maximum(equity, 0.0, out=equity)
    drawdown = drawdown_curve(equity, e0)

    cols = _finish_trades(candles, trade_cols)
    metrics = compute_metrics(
        candles.timestamp,
        equity,
        cols,
        initial_equity=e0,
        benchmark_close=close,
        benchmark_start=float(candles.open[0]),
        position_size=size,
        close=close,
        bar_ms=shared("candles.bar_ms", (candles.timestamp,), candles.bar_ms),
        drawdown=drawdown,
    )
    if config.market_type == "futures":
        info = {**info, **_price_source_info(mark_close is not None, mark_missing, n)}
    info = {
        **info,
        "candles": n,
        "first_timestamp": int(candles.timestamp[0]),
        "last_timestamp": int(candles.timestamp[-1]),
    }
    return BacktestResult(
        metrics=metrics,
        trade_columns={name: cols[name] for name in TRADE_FIELDS},
        equity_timestamps=candles.timestamp,
        equity=equity,
        drawdown=drawdown,
        position_size=size,
        position_columns=timeline,
        config=config.to_dict(),
        info=info,
    )


def _price_source_info(has_mark: bool, missing: int, n: int) -> dict[str, Any]:
    """Which price liquidation, funding and unrealized P&L used, said in words for the run page."""
    if not has_mark:
        return {
            "price_source": "last",
            "price_source_note": "no mark-price candles given: liquidation, funding and unrealized "
            "P&L use the last (trade) price",
        }
    note = "liquidation, funding and unrealized P&L use the mark-price candles"
    if missing:
        note += f"; {missing} of {n} candles had no mark candle and used the last price"
    return {"price_source": "mark", "price_source_note": note, "mark_missing_candles": missing}


def _finish_trades(candles: Candles, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add mae, mfe and duration (see ``Trade``)."""
    if "entry_index" not in cols or len(cols["entry_index"]) == 0:
        return empty_trade_columns()
    n = len(candles)
    a = cols["entry_index"].astype(np.int64)
    b = cols["exit_index"].astype(np.int64)
    entry = cols["entry_price"].astype(np.float64)
    exit_ = cols["exit_price"].astype(np.float64)
    lo, hi = entry.copy(), entry.copy()
    lo = np.minimum(lo, exit_)
    hi = np.maximum(hi, exit_)
    # Held in full: candles a..b-1, and the last candle too when closed at its close.
    at_close = cols["exit_reason"] == "end_of_data"
    b_full = np.where(at_close, b + 1, b)
    full = b_full > a
    if full.any():
        seg_lo, seg_hi = _segment_extremes(candles.low, candles.high, a[full], b_full[full], n)
        lo[full] = np.minimum(lo[full], seg_lo)
        hi[full] = np.maximum(hi[full], seg_hi)
    opened = b_full == b  # the exit candle's open was seen before the exit
    lo[opened] = np.minimum(lo[opened], candles.open[b[opened]])
    hi[opened] = np.maximum(hi[opened], candles.open[b[opened]])
    long = cols["side"] == "long"
    cols = dict(cols)
    cols["mae"] = np.where(long, lo / entry - 1.0, 1.0 - hi / entry)
    cols["mfe"] = np.where(long, hi / entry - 1.0, 1.0 - lo / entry)
    cols["duration"] = (cols["exit_time"].astype(np.int64) - cols["entry_time"].astype(np.int64)) / 1000.0
    cols["entry_time"] = cols["entry_time"].astype(np.int64)
    cols["exit_time"] = cols["exit_time"].astype(np.int64)
    for name in (
        "size",
        "entry_price",
        "exit_price",
        "fees",
        "funding",
        "pnl",
        "return_pct",
        "leverage",
    ):
        cols[name] = cols[name].astype(np.float64)
    return cols
