"""What the fault tests set up and check: trading bots, an import, a backtest; orders and fills."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import numpy as np
import requests
from django.db.models import Count, Sum
from rest_framework_simplejwt.tokens import AccessToken

from apps.backtests.engine import load_csv
from apps.bots.models import Bot
from apps.core.jobs import JobStatus
from apps.exchanges.models import PaperAccount, PaperOrder, PaperTrade
from apps.orders.models import Fill, Order
from tests.backtests.api_support import SMA_BODY, import_candles
from tests.bots.support import CROSS_PARAMS
from tests.factories import BotFactory, UserFactory

BOTS = 3
REPLAY_CANDLES = 3000

# Pure-Python work per candle in user code: a backtest that runs long enough to be hit mid-way.
SLOW_CODE = """
class Slow(Strategy):
    name = "slow"
    params = {"work": Param("int", 3000, min=1, max=10000000)}

    def on_data(self, candle):
        total = 0
        for i in range(self.p.work):
            total += i
        if self.get_position_size() == 0 and total >= 0:
            self.buy(None)
"""


class Api:
    """JWT requests to the stack's daphne."""

    def __init__(self, base_url: str, user) -> None:
        self.base_url = base_url
        self.token = str(AccessToken.for_user(user))
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {self.token}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=15, **kwargs)

    def post(self, path: str, body: dict | None = None) -> requests.Response:
        return self.session.post(self.base_url + path, json=body or {}, timeout=15)


def store_replay_candles(shared_data_dir: Path) -> None:
    """Real 1m BTC/USDT candles for the replay feed the bots tick on (one a second at speed 60)."""
    from apps.marketdata.services import candles_import_arrays

    candles = load_csv(str(shared_data_dir / "ohlcv" / "binance_BTCUSDT_1m.csv.gz"))
    sl = slice(len(candles) - REPLAY_CANDLES, len(candles))
    ohlcv = np.column_stack(
        [candles.open[sl], candles.high[sl], candles.low[sl], candles.close[sl], candles.volume[sl]]
    )
    candles_import_arrays(
        exchange="binance", symbol="BTC/USDT", timeframe="1m", ts=candles.timestamp[sl], ohlcv=ohlcv
    )


# A DCA bot this tight buys at its first tick and rests safety and take-profit limit orders that
# the replayed prices fill within seconds: orders and fills all through the test.
TIGHT_DCA = {"base_order": 0.2, "safety_order": 0.1, "max_safety_orders": 3, "price_deviation": 0.0005,
             "step_scale": 1.0, "volume_scale": 1.0, "take_profit": 0.0005}  # fmt: skip


def trading_bots(user, count: int = BOTS) -> list[Bot]:
    """Running paper bots on the 1m replay: one SMA 2/3 (a market order at each cross), tight DCAs."""
    bots = [
        BotFactory(
            owner=user, status="running", timeframe="1m", strategy="sma_crossover", params=CROSS_PARAMS
        )
    ]
    for _ in range(count - 1):
        bots.append(
            BotFactory(owner=user, status="running", timeframe="1m", strategy="dca", params=TIGHT_DCA)
        )
    return bots


def ticks(bots: list[Bot]) -> dict[int, int | None]:
    return dict(Bot.objects.filter(pk__in=[b.pk for b in bots]).values_list("pk", "last_candle_ms"))


def all_ticked_since(bots: list[Bot], before: dict[int, int | None]) -> bool:
    now = ticks(bots)
    return all(now[pk] is not None and now[pk] != before.get(pk) for pk in now)


def start_backtest(api: Api, shared_data_dir: Path, *, work: int = 6000) -> int:
    import_candles(shared_data_dir, "1h")
    created = api.post("/api/v1/backtests/strategies/", {"source": SLOW_CODE})
    assert created.status_code == 201, created.text
    body = {**SMA_BODY, "strategy": None, "strategy_id": created.json()["id"], "params": {"work": work}}
    body["start"], body["end"] = "2023-01-01T00:00:00Z", "2025-01-01T00:00:00Z"
    response = api.post("/api/v1/backtests/", body)
    assert response.status_code == 202, response.text
    return response.json()["id"]


def start_import(user, shared_data_dir: Path, tmp_path: Path) -> int:
    """A file import of ~210,000 real ETH/USDT 1m candles (one transaction), queued to the worker."""
    from django.db import transaction

    import apps.marketdata.tasks  # noqa: F401 - registers the task job_create sends
    from apps.marketdata.jobs import job_create

    path = tmp_path / "eth-1m.csv.gz"
    shutil.copy(shared_data_dir / "ohlcv" / "binance_ETHUSDT_1m.csv.gz", path)
    with transaction.atomic():  # the task is sent on commit
        job = job_create(
            user=user, kind="import", exchange="binance", symbol="ETH/USDT", timeframe="1m",
            params={"path": str(path)},
        )  # fmt: skip
    return job.pk


def job_state(model, pk: int) -> tuple[str, int, str]:
    row = model.objects.filter(pk=pk).values_list("status", "progress", "error_code").get()
    return row


def finished(model, pk: int) -> bool:
    return model.objects.filter(pk=pk, status__in=[JobStatus.COMPLETED, JobStatus.FAILED]).exists()


def accounts_of(bots: list[Bot]) -> list[PaperAccount]:
    return list(PaperAccount.objects.filter(bot_id__in=[b.pk for b in bots]))


def duplicate_client_order_ids(bots: list[Bot]) -> list[str]:
    """Client order ids the paper exchange received more than once (for these bots' accounts)."""
    return list(
        PaperOrder.objects.filter(account__in=accounts_of(bots))
        .values("account_id", "client_order_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("client_order_id", flat=True)
    )


def unrecorded_fills(bots: list[Bot]) -> dict[str, tuple[Decimal, Decimal]]:
    """Orders whose fills at the paper exchange differ from the fills recorded in orders:
    client order id -> (filled at the exchange, recorded)."""
    accounts = accounts_of(bots)
    at_exchange = dict(
        PaperTrade.objects.filter(account__in=accounts)
        .values("order__client_order_id")
        .annotate(total=Sum("amount"))
        .values_list("order__client_order_id", "total")
    )
    recorded = dict(
        Fill.objects.filter(order__paper_account__in=accounts)
        .values("order__client_order_id")
        .annotate(total=Sum("amount"))
        .values_list("order__client_order_id", "total")
    )
    return {
        cid: (amount, recorded.get(cid, Decimal(0)))
        for cid, amount in at_exchange.items()
        if amount != recorded.get(cid, Decimal(0))
    }


def orders_placed(bots: list[Bot]) -> int:
    return Order.objects.filter(bot__in=bots).count()


def new_user():
    return UserFactory()
