from __future__ import annotations

from decimal import Decimal

import pytest

from apps.backtests.engine import load_csv
from apps.exchanges.gateway.paper import PaperGateway
from apps.exchanges.gateway.prices import ReplayPriceSource
from tests.factories import PaperAccountFactory

# A real stretch of Binance BTC/USDT 1h candles (2022: trends both ways, gaps, big ranges).
WINDOW = slice(35_000, 35_600)


@pytest.fixture(scope="session")
def btc_1h(shared_data_dir):
    data = load_csv(shared_data_dir / "ohlcv" / "binance_BTCUSDT_1h.csv.gz")
    return data.slice(WINDOW.start, WINDOW.stop)


@pytest.fixture
def replay(btc_1h) -> ReplayPriceSource:
    return ReplayPriceSource({"BTC/USDT": btc_1h}, cursor=1)


@pytest.fixture
def paper_account(user):
    return PaperAccountFactory(
        user=user,
        maker_fee=Decimal("0.001"),
        taker_fee=Decimal("0.002"),
        slippage={"type": "percentage", "value": 0.0005},
        max_volume_fraction=None,
        initial_balances={"USDT": "100000"},
    )


@pytest.fixture
def paper(paper_account, replay) -> PaperGateway:
    return PaperGateway(paper_account, prices=replay, markets={})
