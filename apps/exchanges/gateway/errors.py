"""The exchange domain errors every gateway raises (ccxt's and the paper exchange's alike).

The one set for the whole platform: trading (connections, orders, bots) and
public market data (catalog, candle downloads, tickers) raise these. They are
``DomainError`` subclasses (and, where the meaning is the same, subclasses of
the generic ``NotFound``/``ValidationFailed``/``ServiceUnavailable``), so the API renders them as
``{"error": {"code", "message", "fields"}}`` with the status below. ``retryable``
tells callers (bots, tasks) whether trying again later can help, like the
"permanent" flag of healthchecks' transport errors. Messages never contain
credentials: the ccxt gateway masks them before building an error.
"""

from __future__ import annotations

from apps.core.errors import DomainError, NotFound, ServiceUnavailable, ValidationFailed


class ExchangeError(DomainError):
    code = "exchange_error"
    status = 502
    default_message = "The exchange rejected the request."
    retryable = False


class AuthenticationFailed(ExchangeError):
    code = "authentication_failed"
    status = 400  # not 401: the user's session is fine, the exchange refused their API key
    default_message = "The exchange rejected the API key or secret."


class PermissionDenied(AuthenticationFailed):
    code = "permission_denied"
    default_message = "The API key lacks the permission this needs."


class InsufficientFunds(ExchangeError):
    code = "insufficient_funds"
    status = 400
    default_message = "Insufficient balance for this order."


class InvalidOrder(ValidationFailed, ExchangeError):
    code = "invalid_order"
    status = 400
    default_message = "The order is invalid."
    retryable = False


class UnknownSymbol(InvalidOrder):
    """The exchange does not list the market (ccxt's ``BadSymbol``): for an order or a data request."""

    code = "bad_symbol"
    default_message = "The exchange does not list this market."


class OrderNotFound(NotFound, ExchangeError):
    code = "order_not_found"
    status = 404
    default_message = "Order not found."
    retryable = False


class RateLimited(ExchangeError):
    code = "rate_limited"
    status = 429
    default_message = "The exchange's rate limit was hit; slow down and retry."
    retryable = True


class ExchangeUnavailable(ServiceUnavailable, ExchangeError):
    code = "exchange_unavailable"
    status = 503
    default_message = "The exchange could not be reached."
    retryable = True
