"""How a failed backtest or optimization is recorded: a stable code and a message for the user."""

from __future__ import annotations

from typing import Any

from apps.backtests.engine.errors import ParamError, StrategyError
from apps.core.errors import DomainError
from apps.core.jobs import JobTimeLimitExceeded


def error_fields(exc: BaseException) -> dict[str, Any]:
    """The ``error_code``/``error``/``error_line`` a job records for ``exc``, written for the user."""
    from apps.backtests.strategies.sandbox import SandboxMemoryError, SandboxTimeout, SandboxViolation

    line = getattr(exc, "line", None)
    if isinstance(exc, JobTimeLimitExceeded | SandboxTimeout):
        code = "timeout"
    elif isinstance(exc, SandboxMemoryError):
        code = "memory_limit"
    elif isinstance(exc, SandboxViolation):
        code = "sandbox_violation"
    elif isinstance(exc, StrategyError):
        code = "strategy_error"
    elif isinstance(exc, ParamError):
        code = "invalid_params"
    elif isinstance(exc, DomainError):
        code = exc.code
    else:
        code = "backtest_error"
    message = str(exc)
    if isinstance(exc, StrategyError) and line:
        message = f"Error in your strategy at line {line}: {exc.message}"
    elif isinstance(exc, DomainError):
        message = exc.message
    return {"error_code": code, "error": message[:5000], "error_line": line if line else None}
