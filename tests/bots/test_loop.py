"""The bot loop: which bots are due, the per-bot claim, a tick's decisions and client order ids,
back-off and error on repeated failures.

Ticks place their orders through the real ``apps.orders.services.order_place`` on the
bot's paper account; ``orders`` reads back what it wrote, by client order id.
"""

from __future__ import annotations

import threading
import types
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.bots import services
from apps.bots.models import Bot, BotEvent
from apps.bots.services.accounts import bot_account, bot_gateway
from apps.bots.services.loop import MAX_FAILURES
from apps.bots.services.orders import bot_place_order
from apps.core.errors import Conflict
from apps.exchanges.gateway import InvalidOrder
from apps.exchanges.models import PaperOrder
from apps.marketdata.timeframes import timeframe_ms
from apps.orders.models import Fill, Order
from apps.orders.services import order_cancel, order_sync
from tests.bots.support import CROSS_PARAMS, store_candles, store_candles_on_replay
from tests.factories import BotFactory
from tests.support.cache import clear_cache

pytestmark = pytest.mark.django_db

HOUR = timeframe_ms("1h")
CANDLE = 1_700_002_800_000  # an hour boundary


class PlacedOrders:
    """Ticks a bot with the real orders service; the entry orders it wrote, by client order id."""

    def __init__(self, capture) -> None:
        self.capture = capture

    def tick(self, **kwargs):
        # order_place sends to the gateway after its transaction commits.
        with self.capture(execute=True):
            return services.bot_tick(**kwargs)

    @property
    def placed(self) -> dict[str, Order]:
        entries = Order.objects.filter(role=Order.Role.ENTRY).order_by("id")
        return {order.client_order_id: order for order in entries}


@pytest.fixture
def orders(django_capture_on_commit_callbacks, monkeypatch, settings):
    # The paper exchange prices offline from the replay feed over the six stored candles, by
    # wall time: pin the clock where the feed has just closed the last one (its price is
    # then the first candle's open, 10), so a tick's sizing never depends on the hour it runs.

    from apps.marketdata import live

    settings.MARKETDATA_REPLAY_SPEED = 1.0
    wall_ms = 6 * 10_000 * HOUR + 1
    monkeypatch.setattr(live, "time", types.SimpleNamespace(time=lambda: wall_ms / 1000))
    clear_cache()
    return PlacedOrders(django_capture_on_commit_callbacks)


def running_bot(user, **overrides) -> Bot:
    values = {"owner": user, "status": "running", "strategy": "sma_crossover", "params": CROSS_PARAMS}
    return BotFactory(timeframe="1h", **{**values, **overrides})


def test_last_closed_candle_is_the_one_before_the_current_bucket():
    now = CANDLE + HOUR + 5_000  # 5 s into the next hour
    assert services.last_closed_candle_ms("1h", now_ms=now) == CANDLE
    assert services.last_closed_candle_ms("1h", now_ms=CANDLE + HOUR) == CANDLE


def test_claim_touches_one_row_once_per_candle_until_its_lease_expires(user):
    bot = running_bot(user)
    assert services.bot_tick_claim(bot_id=bot.pk, candle_ms=CANDLE)
    assert not services.bot_tick_claim(bot_id=bot.pk, candle_ms=CANDLE)
    # A dead worker's claim expires; the candle is then claimed again (same client order ids).
    Bot.objects.filter(pk=bot.pk).update(tick_lease_until=timezone.now() - timedelta(seconds=1))
    assert services.bot_tick_claim(bot_id=bot.pk, candle_ms=CANDLE)
    # A candle already ticked is never claimed again, nor an older one.
    Bot.objects.filter(pk=bot.pk).update(last_candle_ms=CANDLE, tick_lease_until=None)
    assert not services.bot_tick_claim(bot_id=bot.pk, candle_ms=CANDLE)
    assert not services.bot_tick_claim(bot_id=bot.pk, candle_ms=CANDLE - HOUR)
    assert services.bot_tick_claim(bot_id=bot.pk, candle_ms=CANDLE + HOUR)


@pytest.mark.parametrize("status", ["stopped", "starting", "paused", "stopping", "error"])
def test_only_running_bots_are_claimed(user, status):
    assert not services.bot_tick_claim(bot_id=running_bot(user, status=status).pk, candle_ms=CANDLE)


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_at_once_get_exactly_one_tick(user):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL for concurrent writers (DATABASE_URL)")
    bot = running_bot(user)
    barrier = threading.Barrier(8)
    wins: list[bool] = []

    def claim() -> None:
        from django.db import connection as thread_connection

        try:
            barrier.wait()
            wins.append(services.bot_tick_claim(bot_id=bot.pk, candle_ms=CANDLE))
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_enqueue_due_sends_one_tick_per_running_bot_whose_candle_closed(user, monkeypatch):
    sent = []
    monkeypatch.setattr(
        "celery.current_app.send_task", lambda name, args, queue, **_: sent.append((name, args, queue))
    )
    now = CANDLE + 10 * HOUR + 1
    # Offline the candle clock is the replay feed's: the candle it closed last.
    candle = store_candles_on_replay(now_ms=now)
    due = running_bot(user, name="due")
    running_bot(user, name="done", last_candle_ms=candle)
    running_bot(user, name="backing off", retry_at=timezone.now() + timedelta(minutes=1))
    running_bot(user, name="paused", status="paused")
    running_bot(user, name="no data", symbol="ETH/USDT")  # skipped, the others still go
    assert services.bots_enqueue_due(now_ms=now) == 1
    assert sent == [("apps.bots.tasks.bot_tick", [due.pk, candle], "bots")]


def test_a_running_bot_whose_market_has_no_candles_says_why_once_in_its_log(user, monkeypatch):
    """Found trying the platform: a futures bot on BTC/USDT:USDT offline (no perpetual stored)
    showed "Running" for ever with nothing in its log; the reason was only in the worker's log."""
    monkeypatch.setattr("celery.current_app.send_task", lambda *args, **kwargs: None)
    now = CANDLE + 10 * HOUR + 1
    store_candles_on_replay(now_ms=now)
    waiting = running_bot(user, name="no data", symbol="ETH/USDT")
    ticking = running_bot(user, name="due")
    assert services.bots_enqueue_due(now_ms=now) == 1
    assert services.bots_enqueue_due(now_ms=now) == 1  # every 5 s: the line is not repeated
    lines = list(waiting.events.values_list("kind", "message"))
    assert len(lines) == 1 and lines[0][0] == "lifecycle"
    assert lines[0][1].startswith("Waiting for candles: ") and "ETH/USDT" in lines[0][1]
    assert not ticking.events.exists()


def test_offline_a_bot_ticks_on_the_replay_feeds_candle_where_the_wall_clock_one_is_never_stored(
    user, orders, monkeypatch
):
    sent = []
    monkeypatch.setattr("celery.current_app.send_task", lambda name, args, queue, **_: sent.append(args))
    # Stored history that ended long ago (like the shipped demo sample): the wall-clock
    # candle is never stored, so a bot on the wall clock would be stale forever.
    candle = store_candles_on_replay(now_ms=CANDLE + 40 * HOUR + 1)
    wall_clock_candle = services.last_closed_candle_ms("1h", now_ms=CANDLE + 40 * HOUR + 1)
    assert candle < wall_clock_candle
    bot = running_bot(user)
    assert services.bots_enqueue_due(now_ms=CANDLE + 40 * HOUR + 1) == 1
    assert sent == [[bot.pk, candle]]
    result = orders.tick(bot_id=bot.pk, candle_ms=candle)
    assert result is not None, list(bot.events.values_list("message", flat=True))
    assert result.client_order_ids == [f"bot{bot.pk}-{candle}-0"]


def test_when_the_replay_feed_loops_a_bot_ahead_of_its_clock_ticks_again(user, monkeypatch):
    sent = []
    monkeypatch.setattr("celery.current_app.send_task", lambda name, args, queue, **_: sent.append(args))
    now = CANDLE + 10 * HOUR + 1
    candle = store_candles_on_replay(now_ms=now)
    bot = running_bot(user, last_candle_ms=candle + 100 * HOUR)  # ticked before the feed wrapped
    assert services.bots_enqueue_due(now_ms=now) == 1
    assert sent == [[bot.pk, candle]]
    bot.refresh_from_db()
    assert bot.last_candle_ms is None


def test_signal_tick_decides_a_market_buy_with_a_deterministic_client_order_id(user, orders):
    store_candles(last_open_ms=CANDLE)
    # Offline, the paper exchange prices from the replay feed over these same candles
    # (6 to 10.1), so the stop is set where any of them leaves it below the entry.
    bot = running_bot(user, stop_loss=0.5)
    result = orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    assert result is not None, list(bot.events.values_list("message", flat=True))
    assert result.client_order_ids == [f"bot{bot.pk}-{CANDLE}-0"]
    placed = orders.placed[f"bot{bot.pk}-{CANDLE}-0"]
    assert (placed.side, placed.type, placed.bot_id) == ("buy", "market", bot.pk)
    # All of the 1000 USDT allocated, less the taker fee, at the price the order fills at
    # (the current price, 10, plus the paper exchange's 0.05% slippage), floored to the
    # market's amount step (never more than the strategy asked). Sized at the bare close,
    # the paper exchange refused it for 0.5 USDT too little (the redelivery test below).
    assert placed.amount <= Decimal(1000 / (10 * 1.0005) / 1.001)
    assert float(placed.amount) == pytest.approx(1000 / (10 * 1.0005) / 1.001, rel=1e-6)
    assert placed.status == "filled"
    stop = Order.objects.get(parent=placed, role=Order.Role.STOP_LOSS)
    assert stop.stop_price == Decimal("5")  # half below the last close, 10
    bot.refresh_from_db()
    assert (bot.last_candle_ms, bot.tick_candle_ms, bot.failures) == (CANDLE, None, 0)
    # The test runs the send after the tick (on commit): its fill is the last line.
    kinds = list(bot.events.order_by("id").values_list("kind", flat=True))
    assert kinds == ["signal", "order", "fill"]
    assert "long_entries" in bot.events.get(kind="signal").data["signals"]


@pytest.mark.django_db(transaction=True)
def test_on_a_worker_the_order_line_comes_before_the_fill_line(user, orders):
    """A worker's tick runs outside a transaction, so the paper exchange fills a market order
    inside ``order_place``: the order's line is written with its row, before that fill."""
    store_candles(last_open_ms=CANDLE)
    bot = running_bot(user, stop_loss=0.5)
    assert orders.tick(bot_id=bot.pk, candle_ms=CANDLE) is not None
    placed = orders.placed[f"bot{bot.pk}-{CANDLE}-0"]
    assert placed.status == "filled"
    kinds = list(bot.events.order_by("id").values_list("kind", flat=True))
    assert kinds == ["signal", "order", "fill"]  # the stop-loss leg is not a line of its own
    line = bot.events.get(kind="order")
    assert line.message == f"buy market {placed.amount.normalize():f} BTC/USDT"
    assert line.data == {"client_order_id": placed.client_order_id, "order": placed.pk}
    # A redelivered tick re-places the same client order id: no second line.
    Bot.objects.filter(pk=bot.pk).update(last_candle_ms=None, tick_lease_until=None)
    orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    assert bot.events.filter(kind="order").count() == 1


def test_a_redelivered_tick_reuses_the_same_client_order_ids(user, orders):
    store_candles(last_open_ms=CANDLE)
    bot = running_bot(user)
    orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    # A worker died after placing but before recording the tick: its lease expires, the
    # candle is ticked again and asks for the same ids, which order_place dedupes.
    Bot.objects.filter(pk=bot.pk).update(last_candle_ms=None, tick_lease_until=None)
    orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    assert list(orders.placed) == [f"bot{bot.pk}-{CANDLE}-0"], list(
        bot.events.values_list("message", flat=True)
    )
    # ... and the paper exchange received it once.
    placed = orders.placed[f"bot{bot.pk}-{CANDLE}-0"]
    assert (placed.status, placed.reason) == ("filled", "")
    assert PaperOrder.objects.filter(client_order_id=f"bot{bot.pk}-{CANDLE}-0").count() == 1


def test_a_paper_bots_market_fill_is_logged_once_with_the_fills_numbers(user, orders, auth_client):
    store_candles(last_open_ms=CANDLE)
    bot = running_bot(user)
    orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    placed = orders.placed[f"bot{bot.pk}-{CANDLE}-0"]
    fill = Fill.objects.get(order=placed)
    # A re-sync of the account and a redelivered tick find the same trade: no second line.
    with orders.capture(execute=True):
        order_sync(account=bot_account(bot))
    Bot.objects.filter(pk=bot.pk).update(last_candle_ms=None, tick_lease_until=None)
    orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    fill.save()  # an update of a known fill is no new fill either

    line = bot.events.get(kind="fill")
    assert line.data == {
        "order": placed.pk,
        "client_order_id": placed.client_order_id,
        "fill": fill.pk,
        "trade_id": fill.exchange_trade_id,
        "side": "buy",
        "amount": str(fill.amount),
        "price": str(fill.price),
        "fee": str(fill.fee),
        "fee_asset": fill.fee_asset,
    }
    assert fill.exchange_trade_id and fill.amount == placed.amount and fill.fee > 0
    assert line.message == (
        f"Filled: buy {fill.amount.normalize():f} BTC/USDT at {fill.price.normalize():f}, "
        f"fee {fill.fee.normalize():f} {fill.fee_asset}"
    )
    # The event log API shows it, newest first, after the order it fills.
    events = auth_client.get(f"/api/v1/bots/{bot.pk}/events/").json()["results"]
    assert [e["kind"] for e in events] == ["fill", "order", "signal"]
    assert events[0]["data"]["trade_id"] == fill.exchange_trade_id


class RefusingGateway:
    """The bot's paper exchange, except that it refuses every new order (as an exchange may)."""

    def __init__(self, gateway) -> None:
        self.gateway = gateway

    def __getattr__(self, name):
        return getattr(self.gateway, name)

    def create_order(self, request):
        raise InvalidOrder("Order would trigger immediately.")


def test_a_bots_order_the_exchange_rejects_or_that_is_cancelled_is_logged_with_the_reason(
    user, orders, auth_client
):
    store_candles(last_open_ms=CANDLE)
    bot = running_bot(user)
    decision = {"side": "buy", "type": "limit", "amount": Decimal("1"), "price": Decimal("5")}
    with orders.capture(execute=True):
        rejected = bot_place_order(
            bot=bot, decision=decision, client_order_id="r1", gateway=RefusingGateway(bot_gateway(bot))
        )
        resting = bot_place_order(bot=bot, decision=decision, client_order_id="c1")
    rejected.refresh_from_db()
    resting.refresh_from_db()
    assert (rejected.status, rejected.reason) == ("rejected", "Order would trigger immediately.")
    assert resting.status == "open"
    order_cancel(order=resting)
    with pytest.raises(Conflict):  # finished: a second cancel changes nothing, logs nothing
        order_cancel(order=resting)

    lines = list(bot.events.filter(kind="order").order_by("id"))
    # Each order's line when it was written, then its end (a paper order refused by the exchange
    # ends in the transaction that wrote it; the resting one when it is cancelled).
    by_order: dict[int, list] = {}
    for line in lines:
        by_order.setdefault(line.data["order"], []).append((line.message, line.data))
    assert by_order == {
        rejected.pk: [
            ("buy limit 1 BTC/USDT", {"client_order_id": "r1", "order": rejected.pk}),
            ("Rejected: buy limit 1 BTC/USDT (Order would trigger immediately.)",
             {"order": rejected.pk, "client_order_id": "r1", "status": "rejected",
              "reason": "Order would trigger immediately."}),
        ],
        resting.pk: [
            ("buy limit 1 BTC/USDT", {"client_order_id": "c1", "order": resting.pk}),
            ("Cancelled: buy limit 1 BTC/USDT (cancelled by user)",
             {"order": resting.pk, "client_order_id": "c1", "status": "cancelled",
              "reason": "cancelled by user"}),
        ],
    }  # fmt: skip
    assert not bot.events.filter(kind="fill").exists()
    events = auth_client.get(f"/api/v1/bots/{bot.pk}/events/").json()["results"]
    # newest first, every line
    assert [e["data"].get("status") for e in events] == [line.data.get("status") for line in reversed(lines)]


def test_no_signal_on_the_last_candle_places_nothing(user, orders):
    store_candles(last_open_ms=CANDLE, closes=[10.0, 10.0, 10.0, 10.0, 10.0, 10.0])
    bot = running_bot(user)
    assert orders.tick(bot_id=bot.pk, candle_ms=CANDLE).decisions == []
    assert orders.placed == {}
    assert not bot.events.exists()


def test_event_strategy_gets_on_data_for_the_closed_candle(user, orders):
    store_candles(last_open_ms=CANDLE)
    bot = running_bot(user, strategy="dca", params={})
    result = orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    assert result is not None
    assert [d["side"] for d in result.decisions] == ["buy"]
    assert result.client_order_ids == [f"bot{bot.pk}-{CANDLE}-0"]


def test_stale_data_backs_off_reports_and_retries_the_same_candle(user, orders):
    store_candles(last_open_ms=CANDLE - HOUR)  # the newest stored candle is an hour old
    bot = running_bot(user)
    assert orders.tick(bot_id=bot.pk, candle_ms=CANDLE) is None
    bot.refresh_from_db()
    assert (bot.status, bot.failures, bot.last_candle_ms, bot.tick_candle_ms) == ("running", 1, None, None)
    assert bot.retry_at > timezone.now()
    error = bot.events.get(kind="error")
    assert "candle" in error.message and error.data["retry_in"] == 5
    # Backing off: not claimable until retry_at.
    assert not services.bot_tick_claim(bot_id=bot.pk, candle_ms=CANDLE)
    assert orders.placed == {}


def test_repeated_failures_put_the_bot_in_error_with_the_reason(user, orders):
    bot = running_bot(user, failures=MAX_FAILURES - 1)
    store_candles(last_open_ms=CANDLE - HOUR)
    orders.tick(bot_id=bot.pk, candle_ms=CANDLE)
    bot.refresh_from_db()
    assert bot.status == "error"
    assert f"{MAX_FAILURES} ticks in a row failed" in bot.error
    assert BotEvent.objects.filter(bot=bot, kind="error", data__to="error").exists()
