"""Validation and sandboxed execution of user-written strategies (see docs/sandbox.md)."""

from __future__ import annotations

from .errors import CodeValidationError, SandboxCrash, SandboxMemoryError, SandboxTimeout, SandboxViolation
from .runner import (
    SandboxLimits,
    describe_user_strategy,
    run_user_backtest,
    run_user_lookahead,
    validate_or_raise,
)
from .validation import CodeIssue, validate_code

__all__ = [
    "CodeIssue",
    "CodeValidationError",
    "SandboxCrash",
    "SandboxLimits",
    "SandboxMemoryError",
    "SandboxTimeout",
    "SandboxViolation",
    "describe_user_strategy",
    "run_user_backtest",
    "run_user_lookahead",
    "validate_code",
    "validate_or_raise",
]
