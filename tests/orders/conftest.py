from __future__ import annotations

from decimal import Decimal

import pytest

from apps.backtests.engine import load_csv
from apps.exchanges.gateway import MarketInfo
from apps.exchanges.gateway.paper import PaperGateway
from apps.exchanges.gateway.prices import ReplayPriceSource
from tests.factories import PaperAccountFactory

# Real Binance BTC/USDT 1h candles (2022).
WINDOW = slice(35_000, 35_300)

BTC_USDT = MarketInfo(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    amount_step=Decimal("0.00001"),
    price_step=Decimal("0.01"),
    min_amount=Decimal("0.00001"),
    min_cost=Decimal("5"),
)


@pytest.fixture(scope="session")
def btc_1h(shared_data_dir):
    return load_csv(shared_data_dir / "ohlcv" / "binance_BTCUSDT_1h.csv.gz").slice(WINDOW.start, WINDOW.stop)


@pytest.fixture
def replay(btc_1h) -> ReplayPriceSource:
    return ReplayPriceSource({"BTC/USDT": btc_1h}, cursor=1)


@pytest.fixture
def paper_account(user):
    return PaperAccountFactory(
        user=user,
        maker_fee=Decimal("0.001"),
        taker_fee=Decimal("0.001"),
        slippage={"type": "percentage", "value": 0.0},
        max_volume_fraction=None,
        initial_balances={"USDT": "100000"},
    )


@pytest.fixture
def paper(paper_account, replay) -> PaperGateway:
    return PaperGateway(paper_account, prices=replay, markets={"BTC/USDT": BTC_USDT})
