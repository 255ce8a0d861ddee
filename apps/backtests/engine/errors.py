"""Errors raised by the backtest engine.

Every message is meant to be shown to a user as it is, so it says what was wrong
and, where it helps, what to do instead.
"""

from __future__ import annotations


class BacktestError(Exception):
    """Base class: a backtest could not run (bad data, bad config, bad strategy)."""


class BacktestCancelled(BacktestError):
    """Raised when ``should_cancel()`` returned true during a run."""


class StrategyError(BacktestError):
    """The strategy's own code raised; ``line`` is the line in the user's source if known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        if self.line is not None:
            return f"line {self.line}: {self.message}"
        return self.message


class ParamError(BacktestError):
    """Strategy parameters failed validation; ``fields`` maps parameter name to message."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        text = "; ".join(f"{name}: {msg}" for name, msg in sorted(self.fields.items()))
        super().__init__(f"invalid parameters: {text}")


class ConfigError(BacktestError):
    """The backtest configuration is invalid; ``fields`` maps option name to message."""

    def __init__(self, fields: dict[str, str]) -> None:
        self.fields = dict(fields)
        text = "; ".join(f"{name}: {msg}" for name, msg in sorted(self.fields.items()))
        super().__init__(f"invalid backtest configuration: {text}")
