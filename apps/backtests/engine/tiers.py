"""Leverage tiers (notional brackets): maintenance margin, maximum leverage, liquidation price.

A futures market's risk limits are a table of notional brackets, as ccxt's
``fetch_leverage_tiers``/``fetch_market_leverage_tiers`` return them::

    {"tier": 3, "currency": "USDT", "minNotional": 250000, "maxNotional": 3000000,
     "maintenanceMarginRate": 0.01, "maxLeverage": 50, "info": {"cum": "1300.0", ...}}

For a position of notional ``N`` in bracket ``k`` (Binance USD-M rules, see
docs/engine.md for the sources):

* maintenance margin ``MM = N * mmr_k - cum_k`` (``cum`` is the "maintenance
  amount" that keeps ``MM`` continuous across brackets);
* the position's leverage may not exceed ``maxLeverage_k``: the larger the
  position, the lower the leverage;
* isolated/one-way liquidation price ``LP = (WB + cum - side*Q*EP) / (Q*mmr - side*Q)``
  with ``WB`` the isolated margin (cross: the wallet balance), ``side`` +1 long
  / -1 short, ``Q`` the size, ``EP`` the entry price; the bracket is the one the
  notional at ``LP`` falls in;
* bankruptcy price (margin balance zero) ``BP = EP - side*WB/Q``.

Shipped defaults cover Binance USD-M BTC/USDT and ETH/USDT for offline runs; a
run without a known symbol and without tiers uses one flat bracket made from
``BacktestConfig.maintenance_margin_rate``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .errors import ConfigError

MAX_LEVERAGE = 125.0

# (minNotional, maxNotional, maintenanceMarginRate, maxLeverage, cum) per bracket.
# BTC/USDT: Binance GET /fapi/v1/leverageBracket (BTCUSDT) as recorded in 2023; the
# rates, leverages and maintenance amounts of its first three brackets equal the ones
# Binance announced on 2021-03-18. ETH/USDT: the same endpoint for ETHUSDT (2023),
# transcribed, not re-checked against a live answer (docs/engine.md has the sources). Exchanges change these tables: pass the live
# ones (``leverage_tiers``) whenever the market data service can fetch them.
_BINANCE_USDM = {
    "BTC/USDT:USDT": (
        (0, 50_000, 0.004, 125, 0.0),
        (50_000, 250_000, 0.005, 100, 50.0),
        (250_000, 3_000_000, 0.01, 50, 1_300.0),
        (3_000_000, 20_000_000, 0.025, 20, 46_300.0),
        (20_000_000, 40_000_000, 0.05, 10, 546_300.0),
        (40_000_000, 100_000_000, 0.10, 5, 2_546_300.0),
        (100_000_000, 120_000_000, 0.125, 4, 5_046_300.0),
        (120_000_000, 200_000_000, 0.15, 3, 8_046_300.0),
        (200_000_000, 300_000_000, 0.25, 2, 28_046_300.0),
        (300_000_000, 500_000_000, 0.50, 1, 103_046_300.0),
    ),
    "ETH/USDT:USDT": (
        (0, 10_000, 0.005, 100, 0.0),
        (10_000, 100_000, 0.0065, 75, 15.0),
        (100_000, 500_000, 0.01, 50, 365.0),
        (500_000, 1_500_000, 0.02, 25, 5_365.0),
        (1_500_000, 4_000_000, 0.05, 10, 50_365.0),
        (4_000_000, 10_000_000, 0.10, 5, 250_365.0),
        (10_000_000, 20_000_000, 0.125, 4, 500_365.0),
        (20_000_000, 40_000_000, 0.15, 3, 1_000_365.0),
        (40_000_000, 150_000_000, 0.25, 2, 5_000_365.0),
        (150_000_000, 500_000_000, 0.50, 1, 42_500_365.0),
    ),
}


def market_key(symbol: str) -> str:
    """``BTCUSDT``, ``BTC/USDT`` and ``BTC/USDT:USDT`` all name the USD-M perpetual ``BTC/USDT:USDT``."""
    text = symbol.strip().upper()
    if "/" not in text:
        for quote in ("USDT", "USDC", "BUSD"):
            if text.endswith(quote) and len(text) > len(quote):
                text = f"{text[: -len(quote)]}/{quote}"
                break
    if ":" not in text and "/" in text:
        text = f"{text}:{text.split('/')[1]}"
    return text


def default_tiers(symbol: str | None) -> list[dict[str, Any]] | None:
    """Shipped Binance USD-M tiers for ``symbol`` in ccxt's format, or None when not shipped."""
    if not symbol:
        return None
    rows = _BINANCE_USDM.get(market_key(symbol))
    if rows is None:
        return None
    return [
        {
            "tier": k + 1,
            "currency": "USDT",
            "minNotional": float(lo),
            "maxNotional": float(hi),
            "maintenanceMarginRate": mmr,
            "maxLeverage": float(lev),
            "info": {"cum": str(cum)},
        }
        for k, (lo, hi, mmr, lev, cum) in enumerate(rows)
    ]


class LeverageTiers:
    """One market's brackets, ordered by notional; scalar methods for the broker's hot path."""

    __slots__ = ("caps", "cum", "floors", "max_leverage", "mmr", "source")

    def __init__(
        self,
        floors: list[float],
        caps: list[float],
        mmr: list[float],
        max_leverage: list[float],
        cum: list[float],
        source: str,
    ) -> None:
        self.floors, self.caps, self.mmr = floors, caps, mmr
        self.max_leverage, self.cum, self.source = max_leverage, cum, source

    # ---------------------------------------------------------------- building
    @classmethod
    def from_ccxt(cls, rows: Any, *, source: str = "leverage_tiers") -> LeverageTiers:
        """From ccxt ``fetch_market_leverage_tiers`` output; raises ``ConfigError`` listing the problem.

        ``info.cum`` (Binance) is used when present, otherwise the maintenance
        amount is derived so that the maintenance margin is continuous.
        """
        if not isinstance(rows, (list, tuple)) or not rows:
            raise ConfigError({"leverage_tiers": "must be a non-empty list of tiers (ccxt format)"})
        parsed = []
        for k, row in enumerate(rows):
            try:
                lo = float(row["minNotional"])
                hi = float(row["maxNotional"]) if row.get("maxNotional") is not None else math.inf
                mmr = float(row["maintenanceMarginRate"])
                lev = float(row["maxLeverage"])
            except (TypeError, KeyError, ValueError):
                raise ConfigError(
                    {
                        "leverage_tiers": f"tier {k + 1} needs minNotional, maxNotional, "
                        "maintenanceMarginRate and maxLeverage numbers"
                    }
                ) from None
            info = row.get("info") or {}
            cum = info.get("cum") if isinstance(info, dict) else None
            parsed.append((lo, hi, mmr, lev, None if cum is None else float(cum)))
        parsed.sort(key=lambda r: r[0])
        floors, caps, mmrs, levs, cums = [], [], [], [], []
        for k, (lo, hi, mmr, lev, cum) in enumerate(parsed):
            if not (0 <= mmr < 1 and 1 <= lev <= MAX_LEVERAGE and hi > lo >= 0):
                raise ConfigError(
                    {"leverage_tiers": f"tier {k + 1} has an impossible bracket, rate or leverage"}
                )
            if k and abs(lo - caps[-1]) > 1e-9 * max(1.0, lo):
                raise ConfigError({"leverage_tiers": f"tier {k + 1} does not start where tier {k} ends"})
            if mmr * lev >= 1:
                raise ConfigError(
                    {
                        "leverage_tiers": f"tier {k + 1}: a maintenance rate of 1/maxLeverage or more liquidates at once"
                    }
                )
            if cum is None:
                cum = 0.0 if k == 0 else cums[-1] + lo * (mmr - mmrs[-1])
            floors.append(lo)
            caps.append(hi)
            mmrs.append(mmr)
            levs.append(lev)
            cums.append(cum)
        return cls(floors, caps, mmrs, levs, cums, source)

    @classmethod
    def flat(cls, mmr: float) -> LeverageTiers:
        """One bracket at the config's maintenance rate.

        Its maximum leverage keeps the initial margin at least twice the
        maintenance margin (``1/(2*mmr)``, at most 125x), the ratio every bracket
        of Binance's tables keeps, so a fresh position can never start at its
        liquidation price.
        """
        lev = MAX_LEVERAGE if mmr <= 0 else min(MAX_LEVERAGE, 1.0 / (2.0 * mmr))
        return cls([0.0], [math.inf], [float(mmr)], [lev], [0.0], "flat maintenance_margin_rate")

    def to_ccxt(self) -> list[dict[str, Any]]:
        return [
            {
                "tier": k + 1,
                "minNotional": self.floors[k],
                "maxNotional": None if math.isinf(self.caps[k]) else self.caps[k],
                "maintenanceMarginRate": self.mmr[k],
                "maxLeverage": self.max_leverage[k],
                "info": {"cum": str(self.cum[k])},
            }
            for k in range(len(self.floors))
        ]

    # ---------------------------------------------------------------- queries
    def bracket(self, notional: float) -> int:
        """Index of the bracket holding ``notional`` (upper bounds inclusive, as Binance's)."""
        caps = self.caps
        for k in range(len(caps)):
            if notional <= caps[k]:
                return k
        return len(caps) - 1

    def leverage_cap(self, notional: float) -> float:
        """The highest leverage a position of ``notional`` may use."""
        return self.max_leverage[self.bracket(notional)]

    def max_notional(self, leverage: float) -> float:
        """The largest position notional allowed at ``leverage`` (0 when even the first bracket refuses it)."""
        best = 0.0
        for k in range(len(self.caps)):
            if self.max_leverage[k] >= leverage - 1e-12:
                best = self.caps[k]
        return best

    def maintenance(self, notional: float) -> float:
        """Maintenance margin ``N * mmr - cum`` for a position of ``notional``."""
        k = self.bracket(notional)
        return notional * self.mmr[k] - self.cum[k]

    def liquidation_price(self, side: int, entry: float, qty: float, wallet: float) -> float | None:
        """Binance's ``LP = (WB + cum - side*Q*EP) / (Q*mmr - side*Q)`` in the bracket ``Q*LP`` falls in.

        ``wallet`` is the isolated margin (cross: the wallet balance). None for a
        long that no price above zero liquidates.
        """
        if qty <= 0:
            return None
        for k in range(len(self.caps)):
            price = (wallet + self.cum[k] - side * qty * entry) / (qty * self.mmr[k] - side * qty)
            if self.floors[k] <= qty * price <= self.caps[k]:
                return price if price > 0 else None
        # No bracket holds its own solution: a long no price above zero liquidates, or a
        # notional beyond the last bracket. Use the bracket of the entry notional.
        k = self.bracket(qty * entry)
        price = (wallet + self.cum[k] - side * qty * entry) / (qty * self.mmr[k] - side * qty)
        return price if price > 0 else None

    def liquidation_prices(
        self, side: np.ndarray, entry: np.ndarray, qty: np.ndarray, wallet: np.ndarray
    ) -> np.ndarray:
        """``liquidation_price`` over arrays of positions (0.0 where a long cannot be liquidated)."""
        out = np.full(len(qty), np.nan)
        for k in range(len(self.caps)):
            price = (wallet + self.cum[k] - side * qty * entry) / (qty * self.mmr[k] - side * qty)
            notional = qty * price
            fit = np.isnan(out) & (notional >= self.floors[k]) & (notional <= self.caps[k])
            out[fit] = price[fit]
        left = np.isnan(out)
        if left.any():
            k = np.minimum(
                np.searchsorted(self.caps, qty[left] * entry[left], side="left"), len(self.caps) - 1
            )
            mmr, cum = np.asarray(self.mmr)[k], np.asarray(self.cum)[k]
            s, q = side[left], qty[left]
            out[left] = (wallet[left] + cum - s * q * entry[left]) / (q * mmr - s * q)
        return np.maximum(out, 0.0)

    def leverage_caps(self, notional: np.ndarray) -> np.ndarray:
        """``leverage_cap`` over an array of notionals."""
        k = np.minimum(np.searchsorted(self.caps, notional, side="left"), len(self.caps) - 1)
        return np.asarray(self.max_leverage)[k]

    def margin_ratio(self, notional: float, balance: float) -> float:
        """Maintenance margin over margin balance (1.0 or more: liquidation); 0.0 when flat."""
        if notional == 0:
            return 0.0
        if balance <= 0:
            return math.inf
        return self.maintenance(notional) / balance

    @staticmethod
    def bankruptcy_price(side: int, entry: float, qty: float, wallet: float) -> float:
        """The price at which the margin balance is zero: ``EP - side*WB/Q`` (never below zero)."""
        return max(entry - side * wallet / qty, 0.0)


def resolve_tiers(leverage_tiers: Any, symbol: str | None, maintenance_margin_rate: float) -> LeverageTiers:
    """The tiers a run uses: given ones, else shipped defaults for ``symbol``, else one flat bracket."""
    if leverage_tiers:
        return LeverageTiers.from_ccxt(leverage_tiers)
    shipped = default_tiers(symbol)
    if shipped is not None:
        return LeverageTiers.from_ccxt(
            shipped, source=f"shipped Binance USD-M tiers for {market_key(symbol or '')}"
        )
    return LeverageTiers.flat(maintenance_margin_rate)
