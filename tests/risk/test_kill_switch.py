"""The kill switch against a paper account and a live connection whose exchange goes down."""

from __future__ import annotations

import types
from decimal import Decimal

import pytest

from apps.bots.models import Bot
from apps.core.errors import Conflict
from apps.marketdata import live
from apps.orders import services as orders
from apps.orders.models import Order, Position
from apps.risk import killswitch
from apps.risk.models import KillSwitchActivation, NotificationDelivery, RiskProfile
from apps.risk.tasks import kill_switch_retry
from tests.exchanges.conftest import btc_1h  # noqa: F401 - fixture
from tests.exchanges.fake_binance_account import API_KEY, SECRET, BinanceAccount
from tests.factories import BotFactory, ExchangeConnectionFactory, PaperAccountFactory
from tests.orders.conftest import candles_stored  # noqa: F401 - fixture
from tests.risk.receiver import Receiver
from tests.support.cache import clear_cache
from tests.support.fake_exchange import FakeBinance
from tests.support.servers import free_port

# Committed transactions, as in production: an order is sent to the exchange when its write
# commits, so the kill switch sees a close order filled within its pass.
pytestmark = pytest.mark.django_db(transaction=True)
HOUR = 3_600_000


@pytest.fixture(autouse=True)
def _settings(settings):
    # A retry is a Celery task with a countdown: an hour here, so that a worker another test
    # started in this session never runs it behind the test's back (the tests run the retry
    # pass themselves).
    settings.KILL_SWITCH_RETRY_BASE_SECONDS = 3600
    settings.KILL_SWITCH_MAX_RETRIES = 5
    settings.KILL_SWITCH_EXCHANGE_TIMEOUT_SECONDS = 3
    settings.NOTIFICATION_ALLOW_PRIVATE_WEBHOOKS = True


@pytest.fixture
def market(candles_stored, settings, monkeypatch):  # noqa: F811
    """The paper exchange's default prices: the offline replay feed pinned to stored candle 100."""
    settings.MARKETDATA_ONLINE = False
    wall_ms = (10_000 * len(candles_stored.timestamp) + 100) * HOUR + 1
    monkeypatch.setattr(live, "time", types.SimpleNamespace(time=lambda: wall_ms / 1000))
    clear_cache()


@pytest.fixture
def fake(settings):
    with FakeBinance() as server:
        settings.MARKETDATA_API_OVERRIDES = server.overrides()
        yield server


@pytest.fixture
def binance(fake):
    return BinanceAccount(fake).install()


@pytest.fixture
def paper_account(user):
    return PaperAccountFactory(
        user=user, slippage={"type": "percentage", "value": 0.0}, max_volume_fraction=None,
        initial_balances={"USDT": "100000"},
    )  # fmt: skip


@pytest.fixture
def live_account(user, binance):
    return ExchangeConnectionFactory(user=user, exchange="binance", api_key=API_KEY, api_secret=SECRET)


@pytest.fixture
def place(user, django_capture_on_commit_callbacks):
    def _place(account, **kw):
        kw.setdefault("symbol", "BTC/USDT")
        kw.setdefault("side", "buy")
        kw.setdefault("amount", Decimal("0.01"))
        with django_capture_on_commit_callbacks(execute=True):
            order = orders.order_place(owner=user, account=account, **kw)
        order.refresh_from_db()
        return order

    return _place


@pytest.fixture
def trading(user, market, paper_account, live_account, place):
    """A paper long position and resting order, two resting orders on the live exchange, and bots."""
    position_order = place(paper_account, type="market")
    paper_limit = place(paper_account, type="limit", price=Decimal("20000"))
    live_orders = [place(live_account, type="limit", price=Decimal("30000")) for _ in range(2)]
    assert position_order.status == "filled" and paper_limit.status == "open"
    assert [o.status for o in live_orders] == ["open", "open"]
    bots = {
        "running": BotFactory(owner=user, status=Bot.Status.RUNNING),
        "paused": BotFactory(owner=user, status=Bot.Status.PAUSED),
        "stopped": BotFactory(owner=user, status=Bot.Status.STOPPED),
    }
    return types.SimpleNamespace(paper_limit=paper_limit, live_orders=live_orders, bots=bots)


def exchange_down(settings) -> None:
    """The live exchange stops answering: its ccxt client points at a closed local port."""
    dead = f"http://127.0.0.1:{free_port()}"
    settings.MARKETDATA_API_OVERRIDES = {"binance": dead, "binanceusdm": dead}


def engage(user, capture, **kw):
    with capture(execute=True):
        return killswitch.kill_switch_engage(user=user, actor=user, **kw)


def test_kill_switch_with_one_failing_exchange_stops_cancels_closes_reports_and_retries(
    user, trading, settings, fake, paper_account, live_account, place, django_capture_on_commit_callbacks
):
    with Receiver() as receiver:
        from apps.risk.notifications import notification_attempt, notification_channel_create

        notification_channel_create(
            user=user, kind="webhook", name="ops", events=["kill_switch"], url=receiver.url,
            secret="s" * 20,
        )  # fmt: skip
        exchange_down(settings)
        activation, created = engage(user, django_capture_on_commit_callbacks, close_positions=True)

        assert created and activation.engaged_by == user and activation.is_active
        assert RiskProfile.objects.get(owner=user).kill_switch is True
        # Every bot that could trade is stopping (or already stopped, when a Celery worker of an
        # earlier test has run the stop task); the stopped one is left alone.
        bots = trading.bots
        assert sorted(activation.bots_stopped) == sorted([bots["running"].pk, bots["paused"].pk])
        statuses = dict(Bot.objects.filter(owner=user).values_list("pk", "status"))
        assert statuses[bots["running"].pk] in ("stopping", "stopped")
        assert statuses[bots["paused"].pk] in ("stopping", "stopped")
        assert statuses[bots["stopped"].pk] == "stopped"
        # The paper account is done: its order cancelled, its position closed at market.
        assert activation.orders_cancelled == [trading.paper_limit.pk]
        assert Order.objects.get(pk=trading.paper_limit.pk).status == "cancelled"
        [closed] = activation.positions_closed
        assert closed["status"] == "filled" and closed["symbol"] == "BTC/USDT"
        assert Position.objects.get(paper_account=paper_account).size == 0
        # The live exchange failed: reported per order, asked only once, and retried later.
        failures = activation.failures
        assert [f["action"] for f in failures] == ["cancel_order", "cancel_order"]
        assert all(f["account"] == f"binance connection #{live_account.pk}" for f in failures)
        assert "Not tried" in failures[1]["error"] and "Not tried" not in failures[0]["error"]
        assert activation.retry == "scheduled" and activation.next_retry_at is not None
        assert activation.attempts == 1
        assert [o.status for o in Order.objects.filter(connection=live_account)] == ["open", "open"]

        # While it is on, no new order is accepted; a reduce-only one still is.
        with pytest.raises(Conflict) as refused:
            place(paper_account, type="market")
        assert refused.value.code == "kill_switch_engaged"

        # The user's channel heard about it, with the failures.
        [delivery] = NotificationDelivery.objects.filter(owner=user, event="kill_switch")
        assert "2 action(s) failed (retrying)" in delivery.payload["message"]
        notification_attempt(delivery_id=delivery.pk)
        assert receiver.requests[0].json()["data"]["action"] == "engaged"

    # Pressing again harms nothing: same activation, no second close order, another pass at once.
    again, created = engage(user, django_capture_on_commit_callbacks, close_positions=True)
    assert not created and again.pk == activation.pk and again.attempts == 2
    assert Order.objects.filter(client_order_id__startswith="ks").count() == 1
    assert KillSwitchActivation.objects.filter(owner=user).count() == 1
    assert len(again.failures) == 2

    # The exchange is back: the retry task's pass cancels what failed, and nothing is left to retry.
    settings.MARKETDATA_API_OVERRIDES = fake.overrides()
    with django_capture_on_commit_callbacks(execute=True):
        kill_switch_retry.apply(args=[activation.pk])
    activation.refresh_from_db()
    assert activation.failures == [] and activation.retry == "none" and activation.attempts == 3
    assert sorted(activation.orders_cancelled) == sorted(
        [trading.paper_limit.pk, *[o.pk for o in trading.live_orders]]
    )
    assert [o.status for o in Order.objects.filter(connection=live_account)] == ["cancelled", "cancelled"]


def test_retries_stop_after_the_limit_and_say_so(user, trading, settings, django_capture_on_commit_callbacks):
    settings.KILL_SWITCH_MAX_RETRIES = 1
    exchange_down(settings)
    activation, _ = engage(user, django_capture_on_commit_callbacks)
    assert activation.retry == "scheduled"
    assert killswitch.kill_switch_retry(activation_id=activation.pk) is None  # the second pass gives up
    activation.refresh_from_db()
    assert activation.retry == "gave_up" and len(activation.failures) == 2 and activation.attempts == 2
    # Nothing more runs for it (a late task is a no-op), but a press still runs a pass.
    assert killswitch.kill_switch_retry(activation_id=activation.pk) is None
    activation.refresh_from_db()
    assert activation.attempts == 2


def test_without_close_positions_positions_stay_open(
    user, trading, paper_account, django_capture_on_commit_callbacks
):
    activation, _ = engage(user, django_capture_on_commit_callbacks)
    assert activation.positions_closed == [] and not activation.failures
    assert Position.objects.get(paper_account=paper_account).size == Decimal("0.01")
    assert activation.retry == "none"


def test_release_accepts_orders_again_and_stops_the_retries(
    user, trading, settings, paper_account, place, django_capture_on_commit_callbacks
):
    exchange_down(settings)
    activation, _ = engage(user, django_capture_on_commit_callbacks)
    released = killswitch.kill_switch_release(user=user, actor=user)
    assert released.pk == activation.pk and released.released_by == user and not released.is_active
    assert released.retry == "none"
    assert RiskProfile.objects.get(owner=user).kill_switch is False
    assert killswitch.kill_switch_retry(activation_id=activation.pk) is None
    assert place(paper_account, type="limit", price=Decimal("20000")).status == "open"
    # Bots stay stopped (or stopping until a worker runs the stop); releasing twice is a conflict.
    assert Bot.objects.get(pk=trading.bots["running"].pk).status in ("stopping", "stopped")
    with pytest.raises(Conflict) as err:
        killswitch.kill_switch_release(user=user, actor=user)
    assert err.value.code == "kill_switch_not_engaged"
    # A new press is a new audited activation.
    second, created = engage(user, django_capture_on_commit_callbacks)
    assert created and second.pk != activation.pk


def test_kill_switch_touches_only_its_owners_things(
    user, other_user, market, place, django_capture_on_commit_callbacks
):
    theirs = PaperAccountFactory(user=other_user, initial_balances={"USDT": "100000"})
    their_bot = BotFactory(owner=other_user, status=Bot.Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        their_order = orders.order_place(
            owner=other_user, account=theirs, symbol="BTC/USDT", side="buy", type="limit",
            amount=Decimal("0.01"), price=Decimal("20000"),
        )  # fmt: skip
    activation, _ = engage(user, django_capture_on_commit_callbacks, close_positions=True)
    assert activation.orders_cancelled == [] and activation.bots_stopped == []
    assert Order.objects.get(pk=their_order.pk).status == "open"
    assert Bot.objects.get(pk=their_bot.pk).status == "running"
    assert not RiskProfile.objects.filter(owner=other_user, kill_switch=True).exists()


def test_order_place_refuses_with_409_while_only_the_flag_is_on(user, market, paper_account, place):
    RiskProfile.objects.create(owner=user, kill_switch=True)  # the flag without a press (an old row)
    with pytest.raises(Conflict) as err:
        place(paper_account, type="market")
    assert (err.value.status, err.value.code) == (409, "kill_switch_engaged")
    assert "kill switch is on" in err.value.message
    assert not Order.objects.filter(owner=user).exists()


def test_a_bot_tick_refused_by_the_kill_switch_is_in_its_log(user, django_capture_on_commit_callbacks):
    """A tick already past its claim when the switch went on: its order is refused, the bot logs why."""
    from apps.bots import services as bots
    from tests.bots.support import CROSS_PARAMS, store_candles

    candle = 1_700_002_800_000
    store_candles(last_open_ms=candle)
    bot = BotFactory(
        owner=user, status="running", strategy="sma_crossover", params=CROSS_PARAMS, timeframe="1h"
    )
    RiskProfile.objects.create(owner=user, kill_switch=True)  # on while the bot is still running
    with django_capture_on_commit_callbacks(execute=True):
        assert bots.bot_tick(bot_id=bot.pk, candle_ms=candle) is None
    error = bot.events.get(kind="error")
    assert "kill switch is on" in error.message
    assert not Order.objects.filter(bot=bot).exists()
