"""Lookahead-bias check: do a strategy's decisions change when the future is removed?

A decision made at candle ``i`` may only depend on candles ``0..i``. So we run the
strategy on the full data and again on truncated copies ending at chosen candles,
and report every decision before the cut that differs. A strategy that uses
``shift(-1)``, a centred window, a global normalisation or the last row of the
whole frame changes its decisions when candles after the cut are removed.

Cut points: right after each candle where the full run decided something
(sampled, so a peek one candle ahead is caught exactly where it matters), plus
evenly spaced cuts (to catch decisions that appear only with less data).

Signal strategies are compared on every signal array; event strategies on the
orders they place (method, arguments) per candle, recorded by wrapping the
trading API of the instance.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from apps.backtests.engine import Candles, SignalStrategy, Strategy
from apps.backtests.engine.candles import to_candles

SIGNAL_FIELDS = (
    "long_entries",
    "long_exits",
    "short_entries",
    "short_exits",
    "stop_loss",
    "take_profit",
    "trailing_stop",
)
# The event-strategy calls that express a decision.
TRADING_METHODS = (
    "buy",
    "sell",
    "close_position",
    "buy_limit",
    "sell_limit",
    "stop_market",
    "stop_limit",
    "take_profit",
    "trailing_stop",
    "cancel",
)
MAX_REPORTED_CHANGES = 200


@dataclass(frozen=True)
class SignalChange:
    """One decision that differs between the full run and a truncated run."""

    signal: str  # signal array name, or "orders" for event strategies
    index: int  # candle index of the decision
    timestamp: int  # candle open time, ms
    full: Any  # value in the full run
    truncated: Any  # value when the data ends at ``window_end`` (exclusive)
    window_end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class LookaheadReport:
    """Result of ``check_lookahead``; ``ok`` is true when no decision changed."""

    windows_checked: int
    candles: int
    changes: list[SignalChange] = field(default_factory=list)
    total_changes: int = 0

    @property
    def ok(self) -> bool:
        return self.total_changes == 0

    def summary(self) -> str:
        if self.ok:
            return f"no lookahead bias found ({self.windows_checked} truncated windows checked)"
        first = self.changes[0]
        return (
            f"lookahead bias: {self.total_changes} decision(s) change when future candles are "
            f"removed; first: '{first.signal}' at candle {first.index} (timestamp {first.timestamp}) "
            f"is {first.full!r} with the full data but {first.truncated!r} when the data ends at "
            f"candle {first.window_end - 1}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "windows_checked": self.windows_checked,
            "candles": self.candles,
            "total_changes": self.total_changes,
            "changes": [change.to_dict() for change in self.changes],
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LookaheadReport:
        return cls(
            windows_checked=int(data["windows_checked"]),
            candles=int(data["candles"]),
            changes=[SignalChange(**change) for change in data.get("changes", [])],
            total_changes=int(data["total_changes"]),
        )


def _plain(value: Any) -> Any:
    """JSON-friendly scalar for reports."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return None if math.isnan(value) else value
    return value


def _signal_arrays(strategy: SignalStrategy, data: Candles) -> dict[str, np.ndarray]:
    signals = strategy.signals(data)
    arrays: dict[str, np.ndarray] = {}
    for name in SIGNAL_FIELDS:
        value = getattr(signals, name, None)
        if value is None or np.ndim(value) == 0:
            continue  # absent, or one value for the whole run: nothing can change per candle
        arrays[name] = np.asarray(value)
    return arrays


def _differences(full: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Indices where two aligned arrays differ (NaN equals NaN)."""
    if full.dtype.kind == "f" or part.dtype.kind == "f":
        a = full.astype(np.float64)
        b = part.astype(np.float64)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
    else:
        same = full == part
    return np.flatnonzero(~same)


class _OrderRecorder:
    """Wraps the trading API of one event-strategy instance to log its decisions.

    A decision belongs to the candle being processed when it is made: the
    candle passed to ``on_data``, or the candle an order filled in for calls
    made from ``on_fill`` (which runs before that candle's ``on_data``).
    """

    def __init__(self, strategy: Strategy, timestamps: np.ndarray) -> None:
        self.strategy = strategy
        self.log: list[tuple[int, str, tuple[Any, ...]]] = []
        self.index = -1
        for name in TRADING_METHODS:
            original = getattr(strategy, name, None)
            if original is not None:
                setattr(strategy, name, self._wrap(name, original))
        on_data = strategy.on_data

        def recorded_on_data(candle: Any) -> Any:
            self.index = candle.index
            return on_data(candle)

        strategy.on_data = recorded_on_data  # type: ignore[method-assign]
        on_fill = getattr(strategy, "on_fill", None)
        if on_fill is not None:

            def recorded_on_fill(fill: Any) -> Any:
                if fill.fill_time is not None:
                    self.index = int(np.searchsorted(timestamps, fill.fill_time, side="right")) - 1
                return on_fill(fill)

            strategy.on_fill = recorded_on_fill  # type: ignore[attr-defined]

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            described = tuple(_plain(a) for a in args) + tuple(
                (key, _plain(value)) for key, value in sorted(kwargs.items())
            )
            self.log.append((self.index, name, described))
            return original(*args, **kwargs)

        return recorded

    def by_candle(self) -> dict[int, list[tuple[str, tuple[Any, ...]]]]:
        grouped: dict[int, list[tuple[str, tuple[Any, ...]]]] = {}
        for index, name, args in self.log:
            grouped.setdefault(index, []).append((name, args))
        return grouped


def _event_decisions(factory: Callable[[], Strategy], data: Candles) -> dict[int, list[Any]]:
    from apps.backtests.engine import BacktestConfig, run_backtest

    strategy = factory()
    recorder = _OrderRecorder(strategy, data.timestamp)
    run_backtest(data, strategy, BacktestConfig())
    return recorder.by_candle()


def _cut_points(decision_indices: np.ndarray, n: int, *, windows: int, max_signal_windows: int) -> list[int]:
    # A cut at k keeps candles 0..k-1. Cutting right after a decision tests it
    # with no future candle at all, which is where a one-candle peek shows up.
    cuts: set[int] = set()
    candidates = decision_indices[(decision_indices >= 0) & (decision_indices < n - 1)] + 1
    if candidates.size > max_signal_windows:
        picks = np.linspace(0, candidates.size - 1, max_signal_windows).round().astype(int)
        candidates = candidates[picks]
    cuts.update(int(k) for k in candidates)
    if windows > 0 and n > 2:
        cuts.update(int(k) for k in np.linspace(max(2, n // (windows + 1)), n - 1, windows).round())
    return sorted(k for k in cuts if 1 <= k < n)


def check_lookahead(
    strategy_factory: Callable[[], SignalStrategy | Strategy],
    data: Any,
    *,
    windows: int = 10,
    max_signal_windows: int = 40,
) -> LookaheadReport:
    """Run a strategy on full and truncated data; report every decision that changes.

    ``strategy_factory`` returns a fresh, configured strategy instance each call
    (strategies keep state). ``windows`` evenly spaced cuts plus up to
    ``max_signal_windows`` cuts right after the full run's decisions are checked.
    """
    candles = to_candles(data)
    n = len(candles)
    report = LookaheadReport(windows_checked=0, candles=n)
    probe = strategy_factory()

    if isinstance(probe, SignalStrategy):
        full = _signal_arrays(probe, candles)
        active = [
            np.flatnonzero(values.astype(bool))
            if values.dtype.kind == "b"
            else np.flatnonzero(~np.isnan(values))
            for values in full.values()
        ]
        decisions = np.unique(np.concatenate(active)) if active else np.array([], dtype=np.int64)
        cuts = _cut_points(decisions, n, windows=windows, max_signal_windows=max_signal_windows)
        for k in cuts:
            part = _signal_arrays(strategy_factory(), candles.slice(0, k))
            report.windows_checked += 1
            for name, values in full.items():
                truncated = part.get(name)
                if truncated is None or len(truncated) != k:
                    _record(report, name, k - 1, candles, values[k - 1], None, k)
                    continue
                for index in _differences(values[:k], truncated):
                    _record(report, name, int(index), candles, values[index], truncated[index], k)
        return report

    if isinstance(probe, Strategy):
        full_orders = _event_decisions(strategy_factory, candles)  # type: ignore[arg-type]
        decisions = np.array(sorted(full_orders), dtype=np.int64)
        cuts = _cut_points(decisions, n, windows=windows, max_signal_windows=max_signal_windows)
        for k in cuts:
            part_orders = _event_decisions(strategy_factory, candles.slice(0, k))  # type: ignore[arg-type]
            report.windows_checked += 1
            for index in sorted(set(full_orders) | set(part_orders)):
                if index >= k:
                    continue
                before = full_orders.get(index, [])
                after = part_orders.get(index, [])
                if before != after:
                    _record(report, "orders", index, candles, repr(before), repr(after), k)
        return report

    raise TypeError("strategy_factory must return a SignalStrategy or Strategy instance")


def _record(
    report: LookaheadReport, name: str, index: int, candles: Candles, full: Any, truncated: Any, k: int
) -> None:
    report.total_changes += 1
    if len(report.changes) < MAX_REPORTED_CHANGES:
        report.changes.append(
            SignalChange(
                signal=name,
                index=index,
                timestamp=int(candles.timestamp[index]),
                full=_plain(full),
                truncated=_plain(truncated),
                window_end=k,
            )
        )
