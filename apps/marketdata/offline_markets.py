"""The built-in offline markets (the exchanges themselves are listed in ``apps.exchanges.catalog``).

Used when ccxt cannot reach the exchange (the demo, tests, air-gapped installs):
enough real Binance markets, with their real precision steps, minimums and
default fees, to import the shared data and run paper bots. ``refresh_markets``
replaces these rows with the exchange's own ``load_markets()`` when online.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

# Binance's default fee rates (maker, taker) per market type.
DEFAULT_FEES = {"spot": ("0.001", "0.001"), "swap": ("0.0002", "0.0005")}


def _market(
    kind: str, symbol: str, amount_step: str, price_step: str, min_amount: str, min_notional: str
) -> dict[str, Any]:
    base, quote = symbol.split(":")[0].split("/")  # "BTC/USDT:USDT": the settle currency is not needed
    maker, taker = DEFAULT_FEES[kind]
    return {
        "symbol": symbol,
        "exchange_symbol": f"{base}{quote}",
        "base": base,
        "quote": quote,
        "type": kind,
        "precision_amount": Decimal(amount_step),
        "precision_price": Decimal(price_step),
        "min_amount": Decimal(min_amount),
        "min_notional": Decimal(min_notional),
        "maker_fee": Decimal(maker),
        "taker_fee": Decimal(taker),
    }


def _spot(*args: str) -> dict[str, Any]:
    return _market("spot", *args)


def _swap(*args: str) -> dict[str, Any]:
    return _market("swap", *args)


OFFLINE_MARKETS: dict[str, list[dict[str, Any]]] = {
    "binance": [
        _spot("BTC/USDT", "0.00001", "0.01", "0.00001", "5"),
        _spot("ETH/USDT", "0.0001", "0.01", "0.0001", "5"),
        _spot("SOL/USDT", "0.001", "0.01", "0.001", "5"),
        _spot("BNB/USDT", "0.001", "0.01", "0.001", "5"),
        _spot("XRP/USDT", "0.1", "0.0001", "0.1", "5"),
        _spot("XRP/ETH", "1", "0.00000001", "1", "0.001"),
        _spot("ETH/BTC", "0.0001", "0.00001", "0.0001", "0.0001"),
        _spot("LTC/USDT", "0.001", "0.01", "0.001", "5"),
    ],
    "binanceusdm": [
        _swap("BTC/USDT:USDT", "0.001", "0.1", "0.001", "100"),
        _swap("ETH/USDT:USDT", "0.001", "0.01", "0.001", "20"),
        _swap("XRP/USDT:USDT", "0.1", "0.0001", "0.1", "5"),
    ],
}


def offline_market(exchange: str, symbol: str) -> dict[str, Any] | None:
    for spec in OFFLINE_MARKETS.get(exchange, []):
        if spec["symbol"] == symbol or spec["exchange_symbol"] == symbol:
            return spec
    return None
