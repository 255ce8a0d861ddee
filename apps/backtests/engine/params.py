"""Strategy parameter schemas: validation, coercion, JSON form and optimization grids.

A strategy declares ``params = {"fast": Param("int", 20, min=2, max=500), ...}``.
The same schema drives argument validation (CLI, API, sandbox), dashboard forms
(``schema_to_json``) and optimization grids (``grid``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ParamError

PARAM_TYPES = ("int", "float", "bool", "choice", "str")


@dataclass(frozen=True)
class Param:
    """One strategy parameter: type, default, optional bounds/step/choices and help text."""

    type: str
    default: Any
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"Param type must be one of {PARAM_TYPES}, got {self.type!r}")
        if self.choices is not None and not isinstance(self.choices, tuple):
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.type == "choice" and not self.choices:
            raise ValueError("a 'choice' Param needs choices")
        # A schema whose default does not validate is a programming error in the strategy.
        error = _coerce(self, self.default)[1]
        if error:
            raise ValueError(f"Param default {self.default!r} is invalid: {error}")

    def to_json(self) -> dict[str, Any]:
        """JSON description used by forms and the strategy list API."""
        return {
            "type": self.type,
            "default": self.default,
            "min": self.min,
            "max": self.max,
            "step": self.step,
            "choices": list(self.choices) if self.choices is not None else None,
            "help": self.help,
        }


def _coerce(param: Param, value: Any) -> tuple[Any, str | None]:
    """Return ``(coerced value, None)`` or ``(None, message)``."""
    kind = param.type
    if kind == "bool":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.lower() in (
            "true",
            "false",
            "1",
            "0",
            "yes",
            "no",
        ):
            return value.lower() in ("true", "1", "yes"), None
        if isinstance(value, int) and value in (0, 1):
            return bool(value), None
        return None, "must be true or false"
    if kind == "int":
        if isinstance(value, bool):
            return None, "must be an integer"
        if isinstance(value, int):
            coerced: Any = value
        elif isinstance(value, float) and value.is_integer():
            coerced = int(value)
        elif isinstance(value, str):
            try:
                coerced = int(value.strip())
            except ValueError:
                return None, "must be an integer"
        else:
            return None, "must be an integer"
    elif kind == "float":
        if isinstance(value, bool):
            return None, "must be a number"
        if isinstance(value, (int, float)):
            coerced = float(value)
        elif isinstance(value, str):
            try:
                coerced = float(value.strip())
            except ValueError:
                return None, "must be a number"
        else:
            return None, "must be a number"
        if not math.isfinite(coerced):
            return None, "must be a finite number"
    elif kind == "choice":
        if value in param.choices:  # type: ignore[operator]
            return value, None
        return None, f"must be one of {', '.join(map(str, param.choices or ()))}"
    else:  # str
        if not isinstance(value, str):
            return None, "must be a string"
        return value, None
    if param.min is not None and coerced < param.min:
        return None, f"must be >= {param.min}"
    if param.max is not None and coerced > param.max:
        return None, f"must be <= {param.max}"
    return coerced, None


def validate_params(schema: Mapping[str, Param], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Coerce ``params`` against ``schema`` and fill in defaults.

    Raises ``ParamError`` listing every problem at once (unknown key, wrong type,
    out of bounds, not a choice), so a form can show them all.
    """
    params = dict(params or {})
    errors: dict[str, str] = {}
    result: dict[str, Any] = {}
    for key in params:
        if key not in schema:
            errors[key] = "unknown parameter"
    for name, param in schema.items():
        if name in params:
            value, error = _coerce(param, params[name])
            if error:
                errors[name] = error
            else:
                result[name] = value
        else:
            result[name] = param.default
    if errors:
        raise ParamError(errors)
    return result


def schema_to_json(schema: Mapping[str, Param]) -> dict[str, dict[str, Any]]:
    """The schema as plain JSON (name -> description), in declaration order."""
    return {name: param.to_json() for name, param in schema.items()}


def param_values(param: Param, *, max_points: int = 10) -> list[Any]:
    """The default optimization values of one parameter.

    bool -> both, choice -> all choices, numeric with min/max -> ``min..max`` by
    ``step`` (or ``max_points`` evenly spaced values), otherwise just the default.
    """
    if param.type == "bool":
        return [False, True]
    if param.type == "choice":
        return list(param.choices or ())
    if param.type in ("int", "float") and param.min is not None and param.max is not None:
        lo, hi = param.min, param.max
        if param.step:
            count = math.floor((hi - lo) / param.step + 1e-9) + 1
            values = [lo + k * param.step for k in range(count)]
        else:
            count = max_points if param.type == "float" else min(max_points, int(hi - lo) + 1)
            values = [lo + (hi - lo) * k / max(count - 1, 1) for k in range(count)]
        if param.type == "int":
            return sorted({round(v) for v in values})
        return [round(v, 12) for v in values]
    return [param.default]


def grid(
    schema: Mapping[str, Param],
    overrides: Mapping[str, Iterable[Any] | Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every validated parameter combination of an optimization grid.

    ``overrides`` maps a parameter to the list of values to try (a scalar means a
    fixed value); parameters not overridden stay at their default. Every yielded
    dict passed ``validate_params``; an invalid override raises ``ParamError``.
    """
    overrides = dict(overrides or {})
    unknown = {k: "unknown parameter" for k in overrides if k not in schema}
    if unknown:
        raise ParamError(unknown)
    names = list(schema)
    axes: list[list[Any]] = []
    for name in names:
        if name in overrides:
            value = overrides[name]
            if isinstance(value, (list, tuple, range)):
                axes.append(list(value))
            else:
                axes.append([value])
        else:
            axes.append([schema[name].default])
    for combo in itertools.product(*axes):
        yield validate_params(schema, dict(zip(names, combo, strict=True)))


def default_grid(schema: Mapping[str, Param], *, max_points: int = 10) -> dict[str, list[Any]]:
    """Per-parameter default value lists (see ``param_values``), usable as ``grid`` overrides."""
    return {name: param_values(p, max_points=max_points) for name, p in schema.items()}


@dataclass
class ParamSet(Mapping[str, Any]):
    """Validated parameters with attribute access (``self.p.fast``) and dict access."""

    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(f"no parameter named {name!r}") from None

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)
