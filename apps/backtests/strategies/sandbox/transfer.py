"""``BacktestResult`` <-> sandbox message, without pickle.

The sandbox sends the JSON parts of a result in the header and its arrays (curves,
trade and position columns) as raw numeric arrays; text columns go as JSON lists.
The parent rebuilds the result checking every type, because the sender runs
untrusted code. Generic over the dataclass fields, so engine additions travel too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from apps.backtests.engine.results import BacktestResult

from .protocol import ProtocolError


def _is_column_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, np.ndarray) for v in value.values()) and bool(value)


def result_to_message(result: BacktestResult) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    header: dict[str, Any] = {"json": {}, "columns": {}, "text_columns": {}, "curves": []}
    arrays: dict[str, np.ndarray] = {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, np.ndarray):
            header["curves"].append(f.name)
            arrays[f.name] = value
        elif _is_column_dict(value) or f.name.endswith("_columns"):
            names = []
            for column, data in value.items():
                if data.dtype.kind in "biuf":
                    names.append(column)
                    arrays[f"{f.name}:{column}"] = data
                else:
                    header["text_columns"].setdefault(f.name, {})[column] = [str(v) for v in data.tolist()]
            header["columns"][f.name] = names
        else:
            header["json"][f.name] = value
    return header, arrays


def _metric(value: Any) -> float | int | None:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    raise ProtocolError("metric values must be numbers")


def message_to_result(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> BacktestResult:
    """Rebuild a result sent by the sandbox; ``logs`` (what the strategy printed) is attached."""
    kwargs: dict[str, Any] = {}
    parts = header.get("json")
    columns = header.get("columns")
    text_columns = header.get("text_columns")
    curves = header.get("curves")
    if not (isinstance(parts, dict) and isinstance(columns, dict) and isinstance(text_columns, dict)):
        raise ProtocolError("malformed result")
    if not isinstance(curves, list):
        raise ProtocolError("malformed result")
    for f in dataclasses.fields(BacktestResult):
        name = f.name
        if name in curves:
            curve = arrays.get(name)
            if curve is None or curve.ndim != 1:
                raise ProtocolError(f"bad curve {name!r}")
            kwargs[name] = curve.copy()
        elif name in columns:
            group: dict[str, np.ndarray] = {}
            for column in columns[name]:
                data = arrays.get(f"{name}:{column}")
                if data is None or data.ndim != 1:
                    raise ProtocolError(f"bad column {name}.{column}")
                group[str(column)] = data.copy()
            for column, values in (text_columns.get(name) or {}).items():
                if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                    raise ProtocolError(f"bad column {name}.{column}")
                group[str(column)] = np.array(values, dtype=object)
            if len({len(c) for c in group.values()}) > 1:
                raise ProtocolError(f"columns of {name} differ in length")
            kwargs[name] = group
        elif name in parts:
            kwargs[name] = parts[name]
    metrics = kwargs.get("metrics")
    if not isinstance(metrics, dict):
        raise ProtocolError("result without metrics")
    kwargs["metrics"] = {str(key): _metric(value) for key, value in metrics.items()}
    for name in ("config", "strategy", "info"):
        if name in kwargs and not isinstance(kwargs[name], dict):
            raise ProtocolError(f"bad result part {name!r}")
    try:
        result = BacktestResult(**kwargs)
    except TypeError as exc:
        raise ProtocolError(f"incomplete result: {exc}") from exc
    logs = header.get("logs")
    result.logs = logs if isinstance(logs, str) else ""  # type: ignore[attr-defined]
    return result
