"""An event strategy's own attributes as plain JSON, so a fresh object can continue it.

A bot's tick may run in any worker (and a user strategy in any sandbox process),
so the strategy object cannot live in memory from one tick to the next: after a
tick its own attributes (everything ``initialize`` and the callbacks set, not the
parameters, broker or candle) are encoded here, and the next tick builds the
strategy from its parameters and restores them. Pure (numpy only), because the
same codec runs in the bots' tick for built-ins and inside the sandbox process
for user code (``sandbox/worker.py``), where the parent never decodes what user
code produced: it stores the JSON and hands it back.

JSON rather than pickle: readable in the admin, survives a deploy that changes a
class, and loading it cannot run code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Set by the engine or the tick on every call, never state of the strategy's own.
TRANSIENT = frozenset({"p", "broker", "candle"})


class StateError(ValueError):
    """The strategy keeps something that cannot be saved between ticks (a bug in the strategy)."""


def encode(value: Any, where: str) -> Any:
    """``value`` as JSON-able data (``where`` names it in the error when it cannot be)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        # PostgreSQL's jsonb has no NaN or infinity.
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": [encode(v, where) for v in value.tolist()], "dtype": str(value.dtype)}
    if isinstance(value, (set, frozenset)):
        return {"__set__": [encode(v, where) for v in sorted(value, key=repr)]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, where) for v in value]}
    if isinstance(value, list):
        return [encode(v, where) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and "__items__" not in value:
            return {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        # Keys of other types (grid: order id -> line) keep their type as pairs.
        return {"__items__": [[encode(k, where), encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    raise StateError(
        f"The strategy keeps a {type(value).__name__} in {where}, which cannot be saved between "
        "ticks; keep plain numbers, strings, lists, dicts, sets or numpy arrays."
    )


def decode(value: Any) -> Any:
    """The value ``encode`` encoded."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__float__" in value:
        return float(value["__float__"])
    if "__ndarray__" in value:
        return np.array([decode(v) for v in value["__ndarray__"]], dtype=value["dtype"])
    if "__set__" in value:
        return {decode(v) for v in value["__set__"]}
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__items__" in value:
        return {decode(k): decode(v) for k, v in value["__items__"]}
    return {k: decode(v) for k, v in value.items()}


def attrs_dump(strategy: Any) -> dict[str, Any]:
    """The strategy's own attributes, encoded (raises ``StateError``)."""
    return {
        name: encode(value, f"{type(strategy).__name__}.{name}")
        for name, value in vars(strategy).items()
        if name not in TRANSIENT
    }


def attrs_load(strategy: Any, attrs: dict[str, Any]) -> None:
    """Set the attributes ``attrs_dump`` saved on a freshly built strategy."""
    for name, value in attrs.items():
        setattr(strategy, name, decode(value))
