"""The ccxt adapter: building exchange clients and mapping their errors.

Only public endpoints are used here (no keys). ``MARKETDATA_API_OVERRIDES``
(``{"binance": "http://127.0.0.1:8123"}``) points an exchange at another host
(a local fake in tests, a proxy in production) without touching ccxt.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import ccxt
from django.conf import settings

from apps.marketdata.errors import ExchangeRejected, ExchangeUnavailable

_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


def point_at(client: Any, base_url: str) -> None:
    """Rewrite every API URL of ``client`` to ``base_url``, keeping the paths.

    ``https://api.binance.com/api/v3`` becomes ``<base_url>/api/v3``; hosts
    differ per API family but paths do not collide, so one server can answer all.
    """
    base = base_url.rstrip("/")

    def rewrite(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("http"):
            return base + urlsplit(value).path
        if isinstance(value, dict):
            return {key: rewrite(item) for key, item in value.items()}
        return value

    client.urls["api"] = rewrite(client.urls["api"])


def online() -> bool:
    return bool(getattr(settings, "MARKETDATA_ONLINE", True))


def offline_error(exchange: str) -> ExchangeUnavailable:
    return ExchangeUnavailable(
        f"Live exchange access is off (MARKETDATA_ONLINE=false): {exchange} was not contacted. "
        "Stored candles and the replay feed are used instead.",
        code="offline",
    )


def build_client(exchange: str, **config: Any) -> Any:
    """A fresh ccxt client for ``exchange`` with rate limiting on and our timeout."""
    try:
        klass = getattr(ccxt, exchange)
    except AttributeError:
        raise ExchangeRejected(
            f"{exchange!r} is not an exchange ccxt supports.", fields={"exchange": ["unsupported"]}
        ) from None
    client = klass(
        {
            "enableRateLimit": True,  # ccxt's own throttle keeps us under the exchange's limit
            "timeout": int(getattr(settings, "MARKETDATA_CCXT_TIMEOUT_MS", 10_000)),
            **config,
        }
    )
    override = getattr(settings, "MARKETDATA_API_OVERRIDES", {}).get(exchange)
    if override:
        point_at(client, override)
    return client


def client_for(exchange: str) -> Any:
    """A shared, market-loaded client per exchange (``load_markets`` is expensive)."""
    if not online():
        raise offline_error(exchange)
    key = (exchange, getattr(settings, "MARKETDATA_API_OVERRIDES", {}).get(exchange, ""))
    with _lock:
        client = _clients.get(key)
        if client is None:
            client = build_client(exchange)
            _clients[key] = client
    call(client.load_markets, exchange=exchange)
    return client


def reset_clients() -> None:
    with _lock:
        _clients.clear()


def call(fn, *args: Any, exchange: str, **kwargs: Any) -> Any:
    """Run one ccxt call, turning ccxt errors into our domain errors (no retry here)."""
    try:
        return fn(*args, **kwargs)
    except ccxt.NetworkError as exc:  # incl. RateLimitExceeded, DDoSProtection, RequestTimeout
        raise ExchangeUnavailable(describe_network_error(exchange, exc)) from exc
    except ccxt.BadSymbol as exc:
        raise ExchangeRejected(f"{exchange} does not know this market: {exc}", code="bad_symbol") from exc
    except ccxt.BaseError as exc:
        raise ExchangeRejected(f"{exchange} refused the request: {exc}") from exc


def describe_network_error(exchange: str, exc: Exception) -> str:
    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return f"{exchange} is rate-limiting us ({type(exc).__name__}); try again shortly."
    if isinstance(exc, ccxt.RequestTimeout):
        return f"{exchange} did not answer in time; the exchange or your connection may be down."
    text = str(exc)
    advice = "Check the internet connection, or set MARKETDATA_ONLINE=false to work from stored candles."
    if any(
        hint in text for hint in ("Name or service not known", "Temporary failure", "nodename", "getaddrinfo")
    ):
        return f"Cannot reach {exchange}: you appear to be offline (DNS lookup failed). {advice}"
    return f"Cannot reach {exchange} ({type(exc).__name__}: {text[:160]}). {advice}"
