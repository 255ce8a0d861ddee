"""Prices for valuing balances in the user's display currency, from market data.

USD is valued as USDT (the platform's markets quote in stablecoins); any other
currency is reached directly (``ASSET/CUR``), inversely (``CUR/ASSET``) or through
USDT. A price that cannot be found is None and the asset is reported as unpriced
rather than guessed.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from apps.core.errors import DomainError
from apps.marketdata.live import latest_price

logger = logging.getLogger(__name__)

ONE = Decimal(1)
#: Currencies valued as another (display currency -> the asset that stands for it).
ALIASES = {"USD": "USDT"}
BRIDGE = "USDT"


def valuation_currency(display_currency: str) -> str:
    """The asset that the snapshots are denominated in for a display currency."""
    code = (display_currency or BRIDGE).upper()
    return ALIASES.get(code, code)


class Pricer:
    """Prices of assets in ``currency`` on ``exchange``, looked up once per snapshot round."""

    def __init__(self, *, exchange: str, currency: str) -> None:
        self.exchange = exchange
        self.currency = currency
        self._cache: dict[tuple[str, str], Decimal | None] = {}

    def _pair(self, base: str, quote: str) -> Decimal | None:
        key = (base, quote)
        if key not in self._cache:
            try:
                price = latest_price(exchange=self.exchange, symbol=f"{base}/{quote}")
            except DomainError:
                price = None
            self._cache[key] = price if price and price > 0 else None
        return self._cache[key]

    def _rate(self, asset: str, currency: str) -> Decimal | None:
        if asset == currency:
            return ONE
        direct = self._pair(asset, currency)
        if direct is not None:
            return direct
        inverse = self._pair(currency, asset)
        return ONE / inverse if inverse is not None else None

    def price(self, asset: str) -> Decimal | None:
        """How much one ``asset`` is worth in the currency, or None."""
        asset = ALIASES.get(asset.upper(), asset.upper())
        rate = self._rate(asset, self.currency)
        if rate is None and BRIDGE not in (asset, self.currency):
            to_bridge, bridge_to = self._rate(asset, BRIDGE), self._rate(BRIDGE, self.currency)
            if to_bridge is not None and bridge_to is not None:
                rate = to_bridge * bridge_to
        if rate is None:
            logger.info("no %s price for %s on %s", self.currency, asset, self.exchange)
        return rate
