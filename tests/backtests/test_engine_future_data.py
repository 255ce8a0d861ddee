"""An event strategy cannot reach candles after the current one (issue 10).

The sandbox's validator refuses private and dunder attributes and a list of
module handles; everything else a strategy may touch. These tests walk every
attribute path the validator allows, from the strategy object and from the
modules user code may import, and look for the next candle's prices.
"""

from __future__ import annotations

import collections
import types

import numpy as np
import pytest

from apps.backtests.engine import BacktestConfig, Strategy, run_backtest
from apps.backtests.strategies.sandbox import policy

from .engine_support import random_walk

CHECK_AT = 120
MAX_NODES = 40_000
# The values to look for, kept outside the strategy so the walk does not find them there.
FUTURE: dict[str, set[float]] = {}


def future_values(data, i: int) -> set[float]:
    later = slice(i + 1, len(data))
    values: set[float] = set()
    for name in ("open", "high", "low", "close"):
        values.update(getattr(data, name)[later].tolist())
    values.update(float(t) for t in data.timestamp[later].tolist())
    return values


def allowed_attributes(obj):
    for name in dir(obj):
        if policy.attribute_problem(name):
            continue
        try:
            yield name, getattr(obj, name)
        except Exception:
            continue


def leaks(roots: dict[str, object], future: set[float], *, depth: int = 5) -> list[str]:
    """Attribute paths (validator-allowed names only) from ``roots`` to any later candle value."""
    found: list[str] = []
    seen: set[int] = set()
    queue = collections.deque((obj, path, 0) for path, obj in roots.items())
    future_arr = np.fromiter(future, dtype=np.float64)
    nodes = 0
    while queue and nodes < MAX_NODES:
        obj, path, level = queue.popleft()
        if id(obj) in seen or isinstance(obj, (types.ModuleType, type, str, bytes, bool)):
            continue
        seen.add(id(obj))
        nodes += 1
        if isinstance(obj, (int, float, np.number)):
            if float(obj) in future:
                found.append(path)
            continue
        if isinstance(obj, np.ndarray):
            if (
                obj.dtype.kind in "iuf"
                and obj.size
                and np.isin(obj.ravel().astype(np.float64), future_arr).any()
            ):
                found.append(path)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for k, item in enumerate(list(obj)[:100_000]):
                queue.append((item, f"{path}[{k}]", level + 1))
        elif isinstance(obj, dict):
            for key, item in list(obj.items()):
                queue.append((item, f"{path}[{key!r}]", level + 1))
        if level < depth:
            for name, value in allowed_attributes(obj):
                queue.append((value, f"{path}.{name}", level + 1))
    assert nodes < MAX_NODES, "the walk did not finish; raise MAX_NODES"
    return found


class Explorer(Strategy):
    """Places orders like a real strategy and, at one candle, walks everything it can reach."""

    name = "explorer"

    def initialize(self):
        self.report = None

    def on_data(self, candle):
        if candle.index % 7 == 0:
            self.buy_limit(0.1, candle.close * 0.99)
        if candle.index % 11 == 0 and self.get_position_size() > 0:
            self.close_position()
        if candle.index == CHECK_AT:
            roots = {
                "self": self,
                "self.history(10**9)": self.history(10**9),
                "self.broker.history(10**9)": self.broker.history(10**9),
                "self.get_open_orders()": self.get_open_orders(),
            }
            self.report = leaks(roots, FUTURE["values"])


@pytest.mark.parametrize("market_type", ["spot", "futures"])
def test_no_attribute_path_from_an_event_strategy_reaches_a_later_candle(market_type):
    data = random_walk(400)
    strategy = Explorer()
    FUTURE["values"] = future_values(data, CHECK_AT)
    config = BacktestConfig(market_type=market_type, **({"leverage": 3} if market_type == "futures" else {}))
    run_backtest(data, strategy, config)
    assert strategy.report == []


def test_the_walk_finds_a_leak_when_there_is_one():
    data = random_walk(400)
    strategy = Explorer()
    FUTURE["values"] = future_values(data, CHECK_AT)
    strategy.tomorrow = {"close": data.close[CHECK_AT + 1]}  # what the broker's data used to give away
    run_backtest(data, strategy, BacktestConfig())
    assert "self.tomorrow['close']" in strategy.report


def test_history_is_bounded_at_the_current_candle_and_has_no_view_of_the_series():
    data = random_walk(50)
    seen = {}

    class Peek(Strategy):
        def on_data(self, candle):
            if candle.index == 10:
                history = self.history(1000)
                seen["len"] = len(history)
                seen["last"] = history.close[-1]
                seen["base"] = history.close.base
                seen["broker_has_data"] = hasattr(self.broker, "data")

    run_backtest(data, Peek(), BacktestConfig())
    assert seen == {"len": 11, "last": data.close[10], "base": None, "broker_has_data": False}


# Modules reachable through the attributes of the modules user code may import, and
# audited as giving no way to frames, live objects, eval or files.
HARMLESS_MODULES = {
    "abc",
    "ast",
    "contextlib",
    "copy",
    "enum",
    "numbers",
    "operator",
    "pprint",
    "re",
    "struct",
    "textwrap",
    "time",
    "token",
    "unicodedata",
    "zoneinfo",
}


def test_allowed_modules_lead_to_no_module_that_exposes_frames_objects_or_files():
    import importlib

    from apps.backtests.strategies import indicators

    roots = [importlib.import_module(name) for name in sorted(policy.ALLOWED_MODULES)] + [indicators]
    seen: set[int] = set()
    queue = collections.deque((module, module.__name__, 0) for module in roots)
    foreign: dict[str, str] = {}
    while queue:
        module, path, level = queue.popleft()
        if id(module) in seen:
            continue
        seen.add(id(module))
        for name, value in allowed_attributes(module):
            if not isinstance(value, types.ModuleType):
                continue
            top = value.__name__.split(".")[0]
            if top in policy.ALLOWED_MODULES or top == "apps":
                if level < 8:
                    queue.append((value, f"{path}.{name}", level + 1))
            else:
                foreign.setdefault(value.__name__, f"{path}.{name}")
    unexpected = {name: path for name, path in foreign.items() if name.split(".")[0] not in HARMLESS_MODULES}
    assert unexpected == {}
