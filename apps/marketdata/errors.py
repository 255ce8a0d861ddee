"""Market-data errors: domain errors (rendered as 4xx by the API).

They also subclass ``LookupError``/``ValueError`` so plain Python callers (the
backtest CLI, scripts) can catch them without knowing the domain layer.
"""

from __future__ import annotations

from apps.core.errors import DomainError, NotFound, ServiceUnavailable, ValidationFailed


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


class ExchangeUnavailable(ServiceUnavailable):
    """The exchange could not be reached (offline, rate-limited past our retries, down)."""

    code = "exchange_unavailable"
    default_message = "The exchange could not be reached."


class ExchangeRejected(DomainError):
    """The exchange answered but refused the request (bad symbol, unsupported)."""

    code = "exchange_rejected"
    status = 400
