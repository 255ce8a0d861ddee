"""What every part of the paper exchange shares: symbols, Decimal prices, side signs."""

from __future__ import annotations

from decimal import Decimal

from apps.core.money import quantize_amount
from apps.exchanges.gateway.errors import InvalidOrder
from apps.orders.enums import OrderSide

SIDE_SIGN = {OrderSide.BUY: 1, OrderSide.SELL: -1}

q = quantize_amount


def dec(value: float) -> Decimal:
    """A float price from the fill rules -> Decimal via its shortest repr (no binary noise)."""
    return Decimal(repr(float(value)))


def _pair(symbol: str) -> tuple[str, str]:
    base, sep, quote = symbol.partition("/")
    if not sep or not base or not quote:
        raise InvalidOrder(f"Symbol {symbol!r} is not BASE/QUOTE.", fields={"symbol": "format BASE/QUOTE"})
    return base.upper(), quote.upper()


def split_symbol(symbol: str, *, futures: bool = False) -> tuple[str, str]:
    """``(base, quote)``; futures symbols are ccxt's linear perpetuals ``BASE/QUOTE:QUOTE``."""
    if not futures:
        if ":" in symbol:
            raise InvalidOrder(
                "This paper account trades spot; futures need a futures paper account.",
                fields={"symbol": "not spot"},
            )
        return _pair(symbol)
    pair, sep, settle = symbol.partition(":")
    if not sep:
        raise InvalidOrder(
            f"Futures symbols are BASE/QUOTE:SETTLE (e.g. BTC/USDT:USDT), not {symbol!r}.",
            fields={"symbol": "format BASE/QUOTE:SETTLE"},
        )
    base, quote = _pair(pair)
    if settle.upper() != quote:
        raise InvalidOrder(
            "The paper exchange simulates USD-M (linear) futures: they settle in the quote asset.",
            fields={"symbol": "linear futures only"},
        )
    return base, quote
