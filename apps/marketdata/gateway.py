"""Market data's door to the exchanges: keyless ``CcxtGateway`` instances, one per exchange.

Public data (catalog, OHLCV pages, tickers, order books, recent trades) goes
through the same gateway the exchanges app trades through, so client creation,
host overrides, rate limiting, retries and error mapping live in one place
(``apps.exchanges.gateway.ccxt_gateway``). This module only decides *whether*
the exchange may be contacted (``MARKETDATA_ONLINE``, the supported catalog)
and keeps the instances, because a loaded market list is expensive to fetch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from django.conf import settings

from apps.core.errors import ValidationFailed
from apps.exchanges.catalog import SUPPORTED_EXCHANGES
from apps.exchanges.gateway.ccxt_gateway import CcxtGateway
from apps.exchanges.gateway.errors import ExchangeUnavailable

# Live reads (tickers, books, trades) do not retry: the replay feed answers at once instead.
LIVE_RETRIES = 0
# Downloads page for minutes: they wait out network errors and rate limits.
DOWNLOAD_RETRIES = 5
DOWNLOAD_BACKOFF_SECONDS = 1.0

_gateways: dict[tuple[str, str, int], CcxtGateway] = {}
_lock = threading.Lock()


def online() -> bool:
    return bool(getattr(settings, "MARKETDATA_ONLINE", True))


def offline_error(exchange: str) -> ExchangeUnavailable:
    return ExchangeUnavailable(
        f"Live exchange access is off (MARKETDATA_ONLINE=false): {exchange} was not contacted. "
        "Stored candles and the replay feed are used instead.",
        code="offline",
    )


def check_supported(exchange: str) -> None:
    if exchange not in SUPPORTED_EXCHANGES:
        raise ValidationFailed(
            f"Unsupported exchange {exchange!r}; use one of {', '.join(SUPPORTED_EXCHANGES)}.",
            fields={"exchange": ["unsupported exchange"]},
            code="unsupported_exchange",
        )


def public_gateway(exchange: str, *, retries: int = LIVE_RETRIES) -> CcxtGateway:
    """The shared keyless gateway for ``exchange`` (``ExchangeUnavailable`` when live access is off)."""
    if not online():
        raise offline_error(exchange)
    check_supported(exchange)
    key = (exchange, getattr(settings, "MARKETDATA_API_OVERRIDES", {}).get(exchange, ""), retries)
    with _lock:
        gateway = _gateways.get(key)
        if gateway is None:
            gateway = CcxtGateway(
                exchange,
                timeout_ms=int(getattr(settings, "MARKETDATA_CCXT_TIMEOUT_MS", 10_000)),
                retries=retries,
                backoff_seconds=DOWNLOAD_BACKOFF_SECONDS,
                retry_rate_limited=retries > 0,
            )
            _gateways[key] = gateway
    return gateway


def download_gateway(exchange: str, *, sleep: Callable[[float], None] | None = None) -> CcxtGateway:
    """A keyless gateway for paging downloads (retries with backoff, waits out rate limits).

    ``sleep`` (a job's, which heartbeats and checks for a cancel while it waits)
    gets the job its own instance; without it the shared one is used.
    """
    if sleep is None:
        return public_gateway(exchange, retries=DOWNLOAD_RETRIES)
    shared = public_gateway(exchange, retries=DOWNLOAD_RETRIES)
    return CcxtGateway(
        exchange,
        client=shared.client,
        retries=shared.retries,
        backoff_seconds=shared.backoff_seconds,
        retry_rate_limited=True,
        sleep=sleep,
    )


def reset_gateways() -> None:
    """Forget the instances (tests change ``MARKETDATA_API_OVERRIDES``; a new instance reloads markets)."""
    with _lock:
        _gateways.clear()
