"""The exchange gateway: one interface (``ExchangeGateway``), typed results, domain errors.

Implementations: ``ccxt_gateway.CcxtGateway`` (real exchanges) and
``paper.PaperGateway`` (the simulated exchange). Get one for a connection or a
paper account through ``apps.exchanges.services.gateway_for_connection`` /
``gateway_for_paper``.
"""

from __future__ import annotations

from apps.exchanges.gateway.base import (
    OHLCV,
    AccountBalance,
    Balance,
    ConnectionCheck,
    ExchangeGateway,
    MarketInfo,
    Order,
    OrderBook,
    OrderRequest,
    Position,
    Ticker,
    Trade,
)
from apps.exchanges.gateway.errors import (
    AuthenticationFailed,
    ExchangeError,
    ExchangeUnavailable,
    InsufficientFunds,
    InvalidOrder,
    OrderNotFound,
    PermissionDenied,
    RateLimited,
)

__all__ = [
    "OHLCV",
    "AccountBalance",
    "AuthenticationFailed",
    "Balance",
    "ConnectionCheck",
    "ExchangeError",
    "ExchangeGateway",
    "ExchangeUnavailable",
    "InsufficientFunds",
    "InvalidOrder",
    "MarketInfo",
    "Order",
    "OrderBook",
    "OrderNotFound",
    "OrderRequest",
    "PermissionDenied",
    "Position",
    "RateLimited",
    "Ticker",
    "Trade",
]
