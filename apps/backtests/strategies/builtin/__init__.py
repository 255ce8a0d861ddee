"""The built-in strategies (registered by ``strategies.registry``)."""

from __future__ import annotations

from .buy_and_hold import BuyAndHold
from .dca import Dca
from .grid import Grid
from .mean_reversion import BollingerMeanReversion, RsiMeanReversion
from .scalping import Scalping
from .trend import DonchianBreakout, EmaCrossover, Macd, SmaCrossover

BUILTIN_STRATEGIES = (
    BuyAndHold,
    SmaCrossover,
    EmaCrossover,
    RsiMeanReversion,
    BollingerMeanReversion,
    Macd,
    DonchianBreakout,
    Grid,
    Dca,
    Scalping,
)

__all__ = [
    "BUILTIN_STRATEGIES",
    "BollingerMeanReversion",
    "BuyAndHold",
    "Dca",
    "DonchianBreakout",
    "EmaCrossover",
    "Grid",
    "Macd",
    "RsiMeanReversion",
    "Scalping",
    "SmaCrossover",
]
