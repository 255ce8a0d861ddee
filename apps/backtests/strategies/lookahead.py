"""Lookahead-bias check: do a strategy's decisions change when the future is removed?

A decision made at candle ``i`` may only depend on candles ``0..i``. So we run the
strategy on the full data and again on truncated copies ending at chosen candles,
and report every decision before the cut that differs. A strategy that uses
``shift(-1)``, a centred window, a global normalisation or the last row of the
whole frame changes its decisions when candles after the cut are removed.

Cut points: right after each candle where the full run decided something (a
peek one candle ahead shows only there), plus evenly spaced cuts (decisions
that appear only with less data). Every decision gets its cut up to
``max_decisions`` (default 2,000); beyond that a seeded random sample. A strategy
that cheats on 3 of 1,000 decisions is therefore always caught, where the old
sample of 40 cuts missed it nine times in ten. The check is bounded in time
(``max_seconds``): cuts run in random order, so a check stopped early has
tested a uniform sample, and the report says how much it covered.

Signal strategies are compared on every signal array; event strategies on the
orders they place (method, arguments) per candle, recorded by wrapping the
trading API of the instance.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from apps.backtests.engine import Candles, SignalStrategy, Strategy
from apps.backtests.engine.candles import to_candles
from apps.backtests.strategies import USER_FILENAME

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
    """The verdict of ``check_lookahead``, JSON round-trippable for storing with a run.

    ``verdict`` is ``"ok"`` or ``"lookahead_detected"``; ``line`` is the line of
    user code that placed the first changed decision (event strategies run from
    source; None when unknown, e.g. for signal strategies). ``decisions`` counts
    the full run's decision candles, ``decisions_checked`` those that got a cut
    right after them; ``complete`` is false when ``max_seconds`` stopped the check.
    """

    windows_checked: int
    candles: int
    changes: list[SignalChange] = field(default_factory=list)
    total_changes: int = 0
    decisions: int = 0
    decisions_checked: int = 0
    complete: bool = True
    seconds: float = 0.0
    line: int | None = None

    @property
    def ok(self) -> bool:
        return self.total_changes == 0

    @property
    def verdict(self) -> str:
        return "ok" if self.ok else "lookahead_detected"

    def summary(self) -> str:
        if self.ok:
            coverage = f"{self.decisions_checked} of {self.decisions} decisions checked"
            if not self.complete:
                coverage += f", stopped by the {self.seconds:.0f} s time limit"
            return f"no lookahead bias found ({self.windows_checked} truncated windows, {coverage})"
        first = self.changes[0]
        where = f" (line {self.line})" if self.line is not None else ""
        return (
            f"lookahead bias{where}: {self.total_changes} decision(s) change when future candles are "
            f"removed; first: '{first.signal}' at candle {first.index} (timestamp {first.timestamp}) "
            f"is {first.full!r} with the full data but {first.truncated!r} when the data ends at "
            f"candle {first.window_end - 1}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "line": self.line,
            "windows_checked": self.windows_checked,
            "candles": self.candles,
            "decisions": self.decisions,
            "decisions_checked": self.decisions_checked,
            "complete": self.complete,
            "seconds": self.seconds,
            "total_changes": self.total_changes,
            "changes": [change.to_dict() for change in self.changes],
            "summary": self.summary(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LookaheadReport:
        line = data.get("line")
        return cls(
            windows_checked=int(data["windows_checked"]),
            candles=int(data["candles"]),
            changes=[SignalChange(**change) for change in data.get("changes", [])],
            total_changes=int(data["total_changes"]),
            decisions=int(data.get("decisions", 0)),
            decisions_checked=int(data.get("decisions_checked", 0)),
            complete=bool(data.get("complete", True)),
            seconds=float(data.get("seconds", 0.0)),
            line=int(line) if isinstance(line, int) else None,
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


def _prefix(value: Any, k: int) -> np.ndarray | None:
    """The first ``k`` values of a candle-aligned array or Series, else None."""
    if hasattr(value, "to_numpy") and hasattr(value, "index"):
        value = value.to_numpy()
    if isinstance(value, np.ndarray) and value.ndim == 1 and len(value) >= k and value.dtype.kind in "biuf":
        return value[:k].copy()
    return None


def _divergent_line(factory: Callable[[], SignalStrategy], candles: Candles, k: int) -> int | None:
    """The first line of user code after which a candle-aligned local differs between the full
    run and the run cut at ``k``: where the future got in. None if no user frame shows it."""

    def trace(data: Candles) -> list[tuple[tuple[int, str, int], np.ndarray]]:
        snaps: list[tuple[tuple[int, str, int], np.ndarray]] = []
        seen: dict[tuple[int, str], int] = {}
        last_line: dict[int, int] = {}

        def tracer(frame: Any, event: str, arg: Any) -> Any:
            if frame.f_code.co_filename != USER_FILENAME:
                return None
            if event in ("line", "return"):
                done = last_line.get(id(frame))
                if done is not None:
                    for name, value in list(frame.f_locals.items()):
                        prefix = _prefix(value, k)
                        if prefix is not None:
                            count = seen.get((done, name), 0)
                            seen[(done, name)] = count + 1
                            snaps.append(((done, name, count), prefix))
                last_line[id(frame)] = frame.f_lineno
            return tracer

        previous = sys.gettrace()
        sys.settrace(tracer)
        try:
            _signal_arrays(factory(), data)
        except Exception:  # noqa: S110 - only a hint for the report; the check itself already ran
            pass
        finally:
            sys.settrace(previous)
        return snaps

    truncated = dict(trace(candles.slice(0, k)))
    for key, values in trace(candles):
        other = truncated.get(key)
        if other is not None and len(_differences(values, other)):
            return key[0]
    return None


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
        self.lines: dict[int, int] = {}  # candle -> line of user code of its first decision
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
            caller = sys._getframe(1)
            if caller.f_code.co_filename == USER_FILENAME and self.index not in self.lines:
                self.lines[self.index] = caller.f_lineno
            return original(*args, **kwargs)

        return recorded

    def by_candle(self) -> dict[int, list[tuple[str, tuple[Any, ...]]]]:
        grouped: dict[int, list[tuple[str, tuple[Any, ...]]]] = {}
        for index, name, args in self.log:
            grouped.setdefault(index, []).append((name, args))
        return grouped


def _event_decisions(
    factory: Callable[[], Strategy], data: Candles
) -> tuple[dict[int, list[Any]], dict[int, int]]:
    from apps.backtests.engine import BacktestConfig, run_backtest

    strategy = factory()
    recorder = _OrderRecorder(strategy, data.timestamp)
    run_backtest(data, strategy, BacktestConfig())
    return recorder.by_candle(), recorder.lines


def _cut_points(
    decision_indices: np.ndarray, n: int, *, windows: int, max_decisions: int, seed: int
) -> tuple[list[int], int, int]:
    """Cuts in the order to run them: evenly spaced first, then decision cuts shuffled.

    A cut at k keeps candles 0..k-1. Cutting right after a decision tests it with
    no future candle at all, which is where a one-candle peek shows up. Returns
    ``(cuts, decisions, sampled decisions)``.
    """
    rng = np.random.default_rng(seed)
    decisions = decision_indices[(decision_indices >= 0) & (decision_indices < n - 1)]
    sampled = decisions
    if sampled.size > max_decisions:
        sampled = np.sort(rng.choice(sampled, size=max_decisions, replace=False))
    even: list[int] = []
    if windows > 0 and n > 2:
        even = sorted({int(k) for k in np.linspace(max(2, n // (windows + 1)), n - 1, windows).round()})
    after = [int(k) for k in rng.permutation(sampled + 1)]
    cuts, seen = [], set()
    for k in even + after:
        if 1 <= k < n and k not in seen:
            seen.add(k)
            cuts.append(k)
    return cuts, int(decisions.size), int(sampled.size)


def check_lookahead(
    strategy_factory: Callable[[], SignalStrategy | Strategy],
    data: Any,
    *,
    max_decisions: int = 2000,
    windows: int = 10,
    max_seconds: float | None = 30.0,
    seed: int = 0,
    should_cancel: Callable[[], bool] | None = None,
) -> LookaheadReport:
    """Run a strategy on full and truncated data; report every decision that changes.

    ``strategy_factory`` returns a fresh, configured strategy instance each call
    (strategies keep state). ``windows`` evenly spaced cuts plus a cut right
    after each of the full run's decision candles (a seeded random sample of
    ``max_decisions`` when there are more) are checked, until ``max_seconds``
    (None: no limit) have passed, or ``should_cancel()`` (asked before each cut: a job's
    heartbeat and cancel poll) says stop. Returns a ``LookaheadReport`` (``verdict``,
    the changed decisions, ``line`` of user code when known, coverage).
    """
    started = time.monotonic()
    deadline = None if max_seconds is None else started + float(max_seconds)
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
        cuts, report.decisions, sampled = _cut_points(
            decisions, n, windows=windows, max_decisions=max_decisions, seed=seed
        )
        decision_cuts = set((decisions + 1).tolist())
        for k in cuts:
            if _out_of_time(deadline, should_cancel):
                report.complete = False
                break
            part = _signal_arrays(strategy_factory(), candles.slice(0, k))
            report.windows_checked += 1
            report.decisions_checked += k in decision_cuts
            for name, values in full.items():
                truncated = part.get(name)
                if truncated is None or len(truncated) != k:
                    _record(report, name, k - 1, candles, values[k - 1], None, k)
                    continue
                for index in _differences(values[:k], truncated):
                    _record(report, name, int(index), candles, values[index], truncated[index], k)
        if report.changes:
            report.line = _divergent_line(strategy_factory, candles, report.changes[0].window_end)  # type: ignore[arg-type]
        report.complete = report.complete and sampled == report.decisions
        report.seconds = time.monotonic() - started
        return report

    if isinstance(probe, Strategy):
        full_orders, full_lines = _event_decisions(strategy_factory, candles)  # type: ignore[arg-type]
        decisions = np.array(sorted(full_orders), dtype=np.int64)
        cuts, report.decisions, sampled = _cut_points(
            decisions, n, windows=windows, max_decisions=max_decisions, seed=seed
        )
        decision_cuts = set((decisions + 1).tolist())
        for k in cuts:
            if _out_of_time(deadline, should_cancel):
                report.complete = False
                break
            part_orders, part_lines = _event_decisions(strategy_factory, candles.slice(0, k))  # type: ignore[arg-type]
            report.windows_checked += 1
            report.decisions_checked += k in decision_cuts
            for index in sorted(set(full_orders) | set(part_orders)):
                if index >= k:
                    continue
                before = full_orders.get(index, [])
                after = part_orders.get(index, [])
                if before != after:
                    if report.line is None:
                        report.line = full_lines.get(index, part_lines.get(index))
                    _record(report, "orders", index, candles, repr(before), repr(after), k)
        report.complete = report.complete and sampled == report.decisions
        report.seconds = time.monotonic() - started
        return report

    raise TypeError("strategy_factory must return a SignalStrategy or Strategy instance")


def _out_of_time(deadline: float | None, should_cancel: Callable[[], bool] | None) -> bool:
    if deadline is not None and time.monotonic() > deadline:
        return True
    return should_cancel is not None and should_cancel()


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
