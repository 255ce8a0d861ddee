"""``BacktestResult`` <-> sandbox message, without pickle.

The sandbox sends the JSON parts of a result in the header and the curves and
numeric trade columns as raw arrays. The parent rebuilds the result checking
every type, because the sender runs untrusted code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from apps.backtests.engine.results import TRADE_FIELDS, BacktestResult

from .protocol import ProtocolError

_STRING_TRADE_FIELDS = ("side", "exit_reason")
_JSON_PARTS = ("positions", "config", "strategy", "info")


def result_to_message(result: BacktestResult) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    header: dict[str, Any] = {
        "metrics": dict(result.metrics),
        "positions": result.positions,
        "config": result.config,
        "strategy": result.strategy,
        "info": result.info,
        "trade_strings": {name: [str(v) for v in result.trade_columns[name].tolist()] for name in _STRING_TRADE_FIELDS},
    }
    arrays = {
        "equity_timestamps": result.equity_timestamps,
        "equity": result.equity,
        "drawdown": result.drawdown,
        "position_size": result.position_size,
    }
    for name in TRADE_FIELDS:
        if name not in _STRING_TRADE_FIELDS:
            arrays[f"trade:{name}"] = result.trade_columns[name]
    return header, arrays


def _number_or_none(value: Any) -> float | int | None:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise ProtocolError("metric values must be numbers")


def message_to_result(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> BacktestResult:
    """Rebuild a result sent by the sandbox; ``logs`` (what the strategy printed) is attached."""
    metrics = header.get("metrics")
    if not isinstance(metrics, dict):
        raise ProtocolError("result without metrics")
    metrics = {str(key): _number_or_none(value) for key, value in metrics.items()}
    parts = {}
    for name in _JSON_PARTS:
        value = header.get(name)
        expected = list if name == "positions" else dict
        if not isinstance(value, expected):
            raise ProtocolError(f"bad result part {name!r}")
        parts[name] = value
    strings = header.get("trade_strings")
    if not isinstance(strings, dict):
        raise ProtocolError("result without trades")
    columns: dict[str, np.ndarray] = {}
    for name in TRADE_FIELDS:
        if name in _STRING_TRADE_FIELDS:
            values = strings.get(name)
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ProtocolError(f"bad trade column {name!r}")
            columns[name] = np.array(values, dtype=object)
        else:
            column = arrays.get(f"trade:{name}")
            if column is None or column.ndim != 1:
                raise ProtocolError(f"bad trade column {name!r}")
            columns[name] = column.copy()
    if len({len(c) for c in columns.values()}) > 1:
        raise ProtocolError("trade columns differ in length")
    curves = {}
    for name in ("equity_timestamps", "equity", "drawdown", "position_size"):
        curve = arrays.get(name)
        if curve is None or curve.ndim != 1:
            raise ProtocolError(f"bad curve {name!r}")
        curves[name] = curve.copy()
    result = BacktestResult(metrics=metrics, trade_columns=columns, **curves, **parts)
    logs = header.get("logs")
    result.logs = logs if isinstance(logs, str) else ""  # type: ignore[attr-defined]
    return result
