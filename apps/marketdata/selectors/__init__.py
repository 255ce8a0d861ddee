"""Reads: the one door to market data for every app, one module per kind of read.

``candles()`` returns the engine's ``Candles``; live prices (network) are in
``apps.marketdata.live``, resampling in ``apps.marketdata.resample``.
"""

from __future__ import annotations

from apps.marketdata.selectors.candles import candles, candles_stored, resolve_source_timeframe
from apps.marketdata.selectors.funding import FundingOverview, funding_overview, funding_rates, mark_candles
from apps.marketdata.selectors.gaps import Gap, GapReport, gap_report
from apps.marketdata.selectors.jobs import import_job_get, import_job_list
from apps.marketdata.selectors.markets import (
    market_get,
    market_list,
    markets_with_candles,
    store_overview,
    stored_timeframes,
)
from apps.marketdata.selectors.subscriptions import subscription_get, subscription_list

__all__ = [
    "FundingOverview",
    "Gap",
    "GapReport",
    "candles",
    "candles_stored",
    "funding_overview",
    "funding_rates",
    "gap_report",
    "import_job_get",
    "import_job_list",
    "mark_candles",
    "market_get",
    "market_list",
    "markets_with_candles",
    "resolve_source_timeframe",
    "store_overview",
    "stored_timeframes",
    "subscription_get",
    "subscription_list",
]
