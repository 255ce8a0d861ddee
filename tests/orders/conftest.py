from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from apps.exchanges.gateway import MarketInfo
from apps.exchanges.gateway.paper import PaperGateway
from apps.marketdata import services as marketdata
from tests.exchanges.conftest import btc_1h, replay  # noqa: F401 - shared fixtures: real BTC/USDT 1h candles
from tests.factories import PaperAccountFactory

BTC_USDT = MarketInfo(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    amount_step=Decimal("0.00001"),
    price_step=Decimal("0.01"),
    min_amount=Decimal("0.00001"),
    min_cost=Decimal("5"),
)


@pytest.fixture
def paper_account(user):
    """Fees of 0.1%, no slippage, no volume cap: fills are checked to the unit."""
    return PaperAccountFactory(
        user=user,
        maker_fee=Decimal("0.001"),
        taker_fee=Decimal("0.001"),
        slippage={"type": "percentage", "value": 0.0},
        max_volume_fraction=None,
        initial_balances={"USDT": "100000"},
    )


@pytest.fixture
def paper(paper_account, replay) -> PaperGateway:  # noqa: F811
    return PaperGateway(paper_account, prices=replay, markets={"BTC/USDT": BTC_USDT})


@pytest.fixture
def candles_stored(btc_1h, db):  # noqa: F811
    """The BTC/USDT candles in the candle store (with its catalog market row), for the default price source."""
    ohlcv = np.column_stack([btc_1h.open, btc_1h.high, btc_1h.low, btc_1h.close, btc_1h.volume])
    marketdata.candles_import_arrays(
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        ts=btc_1h.timestamp.astype(np.int64),
        ohlcv=ohlcv,
    )
    return btc_1h
