"""Grid and DCA bots live: the strategy's state carries over from tick to tick (saved on the
bot, restored by a fresh strategy object in whichever worker ticks), fills since the last
tick reach ``on_fill`` exactly once, and a cancelled order is cancelled alone.

The bot trades on its own paper account through the real orders service, on real BTC/USDT
hourly candles. Its paper exchange is priced by a ``ReplayPriceSource`` over those candles
whose cursor the test moves (tick ``i``: candle ``i`` has closed, ``i + 1`` is forming),
the clock the replay uses; the wall-clock replay feed cannot be stepped candle by candle.
``order_place`` sends after its commit, so these tests commit (``transaction=True``).
"""

from __future__ import annotations

import json
from decimal import Decimal

import numpy as np
import pytest

from apps.backtests.strategies import registry
from apps.bots import services
from apps.bots.models import Bot
from apps.bots.services.accounts import bot_paper_account
from apps.bots.services.replay import _Arrays, _round_trips
from apps.bots.services.strategy_state import local_order_id
from apps.exchanges.gateway.paper import PaperGateway
from apps.exchanges.gateway.prices import ReplayPriceSource
from apps.exchanges.models import PaperAccount
from apps.marketdata.timeframes import timeframe_ms
from apps.orders.models import Order
from tests.bots.test_replay_agreement import (  # noqa: F401 (fixtures)
    CANDLES,
    REL,
    btc_candles,
    replay_and_backtest,
    store_btc_candles,
    test_strategy,
)
from tests.factories import BotFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_decimals]

SYMBOL = "BTC/USDT"
GRID = {"levels": 12, "range_pct": 0.05}
DCA = {"take_profit": 0.01, "price_deviation": 0.008}
# Candles of the DCA and limit/stop live-tick agreement tests (and the user-code one), the last
# of the replay tests' 400: each is a full bot tick (~40 ms), and on these the backtests still
# make 9 DCA and 17 limit/stop round trips with every kind of exit they make on the 400 (the
# take-profit limits; the stops and the market closes). The grid keeps the 400: on the last 250
# it rests more orders per tick and took longer, not shorter.
LIVE_CANDLES = 250


class LiveFeed:
    """The paper exchange's prices for the bots of a test: the stored candles, one more
    (flat) after the last so that the last real candle can close."""

    def __init__(self, candles) -> None:
        self.candles = candles
        step = timeframe_ms("1h")
        last_close = float(candles.close[-1])
        series = {
            "timestamp": np.append(candles.timestamp, candles.timestamp[-1] + step),
            **{k: np.append(getattr(candles, k), last_close) for k in ("open", "high", "low", "close")},
            "volume": np.append(candles.volume, 0.0),
        }
        self.source = ReplayPriceSource({SYMBOL: _Arrays(series)}, cursor=1)

    def gateway(self, account: PaperAccount, *, prices=None) -> PaperGateway:
        return PaperGateway(account, prices=prices or self.source)

    def tick(self, bot: Bot, i: int):
        self.source.cursor = i + 1
        result = services.bot_tick(bot_id=bot.pk, candle_ms=int(self.candles.timestamp[i]))
        errors = list(bot.events.filter(kind="error").values_list("message", flat=True))
        assert result is not None, errors
        return result

    def close_out(self, bot: Bot) -> list[dict]:
        """Let the last candle close, record its fills; the bot's flat-to-flat trades."""
        from apps.orders.services import order_sync

        self.source.cursor = len(self.candles)
        account = bot_paper_account(bot=bot)
        gateway = self.gateway(account)
        order_sync(account=account, gateway=gateway)
        types = dict(
            Order.objects.for_account(account)
            .exclude(exchange_order_id="")
            .values_list("exchange_order_id", "type")
        )
        trades, _open = _round_trips(gateway.fetch_my_trades(SYMBOL), types)
        return trades


@pytest.fixture
def feed(btc_candles, monkeypatch):  # noqa: F811
    feed = LiveFeed(btc_candles)
    monkeypatch.setattr("apps.exchanges.services.paper_gateway", feed.gateway)
    return feed


@pytest.fixture
def live_candles(request, shared_data_dir):
    """The last ``LIVE_CANDLES`` real BTC/USDT 1h candles (or as many as an indirect
    parametrization of ``live_candles`` asks for), stored as ``btc_candles`` stores its 400."""
    return store_btc_candles(shared_data_dir, getattr(request, "param", LIVE_CANDLES))


@pytest.fixture
def live_feed(live_candles, monkeypatch):
    """``feed`` over ``live_candles``."""
    feed = LiveFeed(live_candles)
    monkeypatch.setattr("apps.exchanges.services.paper_gateway", feed.gateway)
    return feed


def event_bot(user, strategy: str, params: dict) -> Bot:
    bot = BotFactory(
        owner=user,
        status="running",
        strategy=strategy,
        params=registry.get_strategy_class(strategy).validate(params),
        timeframe="1h",
        allocated_capital=Decimal("10000"),
    )
    # As the replay's account: the backtest engine has no volume cap.
    account = bot_paper_account(bot=bot)
    PaperAccount.objects.filter(pk=account.pk).update(max_volume_fraction=None)
    return bot


def bot_orders(bot: Bot):
    return Order.objects.filter(bot=bot, role=Order.Role.ENTRY).order_by("pk")


def test_grid_places_its_ladder_once_and_a_counter_order_after_each_fill(user, feed):
    bot = event_bot(user, "grid", GRID)
    first = feed.tick(bot, 0)
    ladder = [d for d in first.decisions if d["type"] == "limit"]
    # A buy limit on every line below the price; the lines above stocked by one market buy.
    assert {d["side"] for d in ladder} == {"buy"}
    assert [d["type"] for d in first.decisions].count("market") == 1
    stocked = GRID["levels"] - 1 - len(ladder)
    assert stocked >= 1
    # The stock-up's fill (next tick): a sell limit one line up for each stocked line.
    second = feed.tick(bot, 1)
    assert [(d["side"], d["type"]) for d in second.decisions] == [("sell", "limit")] * stocked

    filled_buy = None
    for i in range(2, 200):
        result = feed.tick(bot, i)
        assert all(d["type"] == "limit" for d in result.decisions)  # the ladder is never laid out again
        buys = bot_orders(bot).filter(side="buy", type="limit", status="filled")
        if filled_buy is None and buys.exists():
            filled_buy = buys.first()
        if filled_buy is not None and any(d["side"] == "sell" for d in result.decisions):
            counter = next(d for d in result.decisions if d["side"] == "sell")
            # One line above the buy that filled, for the amount it bought.
            assert Decimal(str(counter["amount"])) == filled_buy.filled
            assert Decimal(str(counter["price"])) > filled_buy.price
            break
    else:
        pytest.fail("no grid buy filled and was countered in 200 candles")
    ids = list(bot_orders(bot).values_list("client_order_id", flat=True))
    assert len(ids) == len(set(ids))
    assert all(local_order_id(cid) is not None for cid in ids)


def test_a_redelivered_tick_places_nothing_twice_and_reports_each_fill_once(user, feed):
    bot = event_bot(user, "dca", DCA)
    feed.tick(bot, 0)  # the base order (market: filled when placed)
    feed.tick(bot, 1)  # its fill: the safety ladder and the take-profit
    bot.refresh_from_db()
    before_state, before_orders = bot.strategy_state, bot_orders(bot).count()
    assert before_orders > 2
    # A worker dies after placing tick 2's orders but before saving: tick 2 runs again from tick 1's state.
    feed.tick(bot, 2)
    after = list(bot_orders(bot).values_list("pk", "client_order_id", "status"))
    saved = Bot.objects.get(pk=bot.pk).strategy_state
    Bot.objects.filter(pk=bot.pk).update(
        last_candle_ms=int(feed.candles.timestamp[1]), strategy_state=before_state
    )
    feed.tick(bot, 2)
    assert list(bot_orders(bot).values_list("pk", "client_order_id", "status")) == after
    # The same fills reached the same earlier state: the strategy ends where it did the first time
    # (its equity figure differs: the first run's base order has filled since, with its fee).
    redone = Bot.objects.get(pk=bot.pk).strategy_state
    keys = ("base_id", "take_profit_id", "safety_ids", "waiting")
    assert {k: redone["attrs"][k] for k in keys} == {k: saved["attrs"][k] for k in keys}
    # Orders the first run cancelled are finished already; nothing new is awaited.
    assert {tuple(x) for x in redone["unreported"]} <= {tuple(x) for x in saved["unreported"]}


def test_dca_take_profit_is_replaced_after_a_safety_order_fills_and_only_it_is_cancelled(user, feed):
    from apps.orders.models import Position

    bot = event_bot(user, "dca", DCA)
    for i in range(len(feed.candles) - 1):
        feed.tick(bot, i)
        replaced = bot_orders(bot).filter(side="sell", status="cancelled").first()
        if replaced is not None:
            break
    else:
        pytest.fail("no safety order filled while a take-profit rested")
    # The cycle's ladder was placed with the take-profit it replaced (same candle, same tick).
    cycle = replaced.client_order_id.rsplit("-", 1)[0] + "-"
    safeties = bot_orders(bot).filter(side="buy", type="limit", client_order_id__startswith=cycle)
    filled = safeties.filter(status="filled").count()
    assert filled >= 1
    # The other safety orders still rest: the cancel took the old take-profit alone.
    assert safeties.filter(status="open").count() == safeties.count() - filled
    new = bot_orders(bot).get(side="sell", status="open")
    assert new.pk > replaced.pk
    entry = Position.objects.get(paper_account__bot_id=bot.pk, symbol=SYMBOL).average_entry
    assert float(new.price) == pytest.approx(float(entry) * (1 + DCA["take_profit"]), rel=1e-6)


def test_the_state_is_plain_json_and_a_fresh_strategy_continues_from_it(user, feed):
    bot = event_bot(user, "grid", GRID)
    feed.tick(bot, 0)
    bot.refresh_from_db()
    state = bot.strategy_state
    assert json.loads(json.dumps(state)) == state  # no pickles, nothing process-bound
    strategy = registry.build_strategy("grid", bot.params)
    from apps.bots.services.strategy_state import state_load

    unreported = state_load(strategy, state)
    assert len(strategy.prices) == GRID["levels"] and strategy.prices.dtype == np.float64
    assert set(strategy.line_of_order) == set(unreported.values()) - {strategy.stock_order}
    assert all(isinstance(k, int) for k in strategy.line_of_order)


@pytest.mark.parametrize(
    ("strategy", "params", "live_candles"),
    [("grid", GRID, CANDLES), ("dca", DCA, LIVE_CANDLES), ("test_limit_stop_swing", {}, LIVE_CANDLES)],
    ids=["grid", "dca", "limit-stop"],
    indirect=["live_candles"],
)
def test_a_bot_ticked_live_candle_by_candle_trades_as_its_replay_and_backtest(
    user,
    live_feed,
    live_candles,
    test_strategy,  # noqa: F811
    strategy,
    params,
):
    bot = event_bot(user, strategy, params)
    for i in range(len(live_candles) - 1):  # the last candle's orders would fill after the period
        live_feed.tick(bot, i)
    got = live_feed.close_out(bot)
    replay, backtest = replay_and_backtest(user, live_candles, strategy=strategy, params=params)
    expected = backtest.trades_as_records()
    assert len(expected) >= 1
    assert [(t["entry_time"], t["exit_time"]) for t in got] == [
        (t["entry_time"], t["exit_time"]) for t in expected
    ]
    for mine, theirs in zip(got, expected, strict=True):
        for field in ("size", "entry_price", "exit_price", "fees", "pnl"):
            assert mine[field] == pytest.approx(theirs[field], rel=REL), (field, mine, theirs)
    assert [(t["entry_time"], t["exit_time"]) for t in got] == [
        (t["entry_time"], t["exit_time"]) for t in replay.result["trades"]
    ]
