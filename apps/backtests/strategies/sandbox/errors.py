"""Errors raised when user code is refused or stopped by the sandbox.

All derive from the engine's ``BacktestError``, so a caller that reports
backtest failures to users handles them without special cases; each message is
written for the user who wrote the strategy.
"""

from __future__ import annotations

from apps.backtests.engine.errors import BacktestError

from .validation import CodeIssue


class SandboxViolation(BacktestError):
    """The code tried something the sandbox forbids (file, network, process, escape)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        if self.line:
            return f"line {self.line}: {self.message}"
        return self.message


class CodeValidationError(SandboxViolation):
    """Static validation refused the code; ``issues`` lists every problem found."""

    def __init__(self, issues: list[CodeIssue]) -> None:
        self.issues = list(issues)
        text = "; ".join(str(issue) for issue in self.issues[:10])
        if len(self.issues) > 10:
            text += f"; and {len(self.issues) - 10} more"
        first = self.issues[0].line if self.issues else None
        super().__init__(f"invalid strategy code: {text}", None)
        self.line = first

    def __str__(self) -> str:
        return self.message


class SandboxTimeout(BacktestError):
    """The code ran past its CPU-time or wall-clock limit and was stopped."""


class SandboxMemoryError(BacktestError):
    """The code went past its memory limit and was stopped."""


class SandboxCrash(BacktestError):
    """The sandbox process died without reporting why (killed, crashed)."""
