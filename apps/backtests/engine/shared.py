"""Arrays shared by many backtests of one candle set (parameter sweeps).

A sweep runs the same strategy with many parameter sets on the same candles:
every run would recompute the same moving averages, the same UTC-day
boundaries and the same benchmark returns. Inside ``shared_arrays(scope)``
those pure functions of the candles are computed once and reused
(``scope.get``); outside a scope nothing is kept and every call computes.

A value is keyed by a name plus its inputs: arrays by identity (the scope
keeps a reference to them, so an id cannot be reused by another array while
the entry lives), everything else by value. Reusing a value is exact: it is
the very array the first run computed, so a run in a scope gives the same
numbers, bit for bit, as the same run alone. Cached arrays are made read-only
so that a caller cannot change what the next run sees.

A scope holds at most ``max_bytes`` of arrays; the least recently used
entries go first. Candles must not be modified in place while a scope that
saw them is in use (the engine never does).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class SharedScope:
    """A bounded memo of pure functions of candle arrays (see the module docstring)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.computed: Counter[str] = Counter()  # computations per name (misses)
        self._entries: OrderedDict[tuple[Any, ...], tuple[tuple[Any, ...], Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str, inputs: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """``compute()``, or the value an earlier call with the same ``name`` and ``inputs`` returned."""
        key = (name, *(_key(v) for v in inputs))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and all(
                a is b for a, b in zip(entry[0], inputs, strict=True) if _by_identity(b)
            ):
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[1]
        value = compute()
        size = _freeze(value)
        with self._lock:
            self.computed[name] += 1
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[2]
            self._entries[key] = (tuple(inputs), value, size)
            self.bytes += size
            while self.bytes > self.max_bytes and len(self._entries) > 1:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self.bytes -= dropped
        return value


def _by_identity(value: Any) -> bool:
    return isinstance(value, np.ndarray) or not _hashable(value)


def _key(value: Any) -> Any:
    return ("id", id(value)) if _by_identity(value) else value


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _freeze(value: Any) -> int:
    """Make the arrays in ``value`` read-only; their size in bytes."""
    if isinstance(value, np.ndarray):
        value.flags.writeable = False
        return value.nbytes
    if isinstance(value, tuple | list):
        return sum(_freeze(v) for v in value)
    return 64


_CURRENT: ContextVar[SharedScope | None] = ContextVar("backtest_shared_scope", default=None)


@contextmanager
def shared_arrays(scope: SharedScope | None = None) -> Iterator[SharedScope]:
    """Share pure per-candle-set arrays among the backtests run inside (a new scope if none given)."""
    scope = scope if scope is not None else SharedScope()
    token = _CURRENT.set(scope)
    try:
        yield scope
    finally:
        _CURRENT.reset(token)


def current_scope() -> SharedScope | None:
    """The active scope, None outside ``shared_arrays``."""
    return _CURRENT.get()


def shared(name: str, inputs: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """``compute()`` memoized in the active scope (computed every time outside one)."""
    scope = _CURRENT.get()
    if scope is None:
        return compute()
    return scope.get(name, inputs, compute)
