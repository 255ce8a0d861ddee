"""Market-data errors: domain errors (rendered as 4xx by the API).

Errors from talking to an exchange are the gateway's (``apps.exchanges.gateway.errors``).

They also subclass ``LookupError``/``ValueError`` so plain Python callers (the
backtest CLI, scripts) can catch them without knowing the domain layer.
"""

from __future__ import annotations

from apps.core.errors import NotFound, ValidationFailed


class UnknownMarket(NotFound, LookupError):
    code = "unknown_market"
    default_message = "Unknown market."


class UnknownTimeframe(ValidationFailed, ValueError):
    code = "unknown_timeframe"
    default_message = "Unknown timeframe."


class NoCandles(NotFound, LookupError):
    code = "no_candles"
    default_message = "No candles stored for this market and timeframe."


class ImportFailed(ValidationFailed, ValueError):
    """A candle file failed validation; the message names the file and line."""

    code = "import_invalid"
    default_message = "The candle file is invalid."
