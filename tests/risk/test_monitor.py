"""The monitor: snapshot figures (VaR from stored daily prices), alerts deduplicated while the
condition lasts, the limit's action once, trade results from position changes, the beat schedule."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
import websockets
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from apps.bots.models import Bot
from apps.core.schedules import declared_schedules
from apps.marketdata import services as marketdata
from apps.orders.models import Position
from apps.risk import monitoring
from apps.risk import services as risk
from apps.risk.models import RiskAlert, RiskSnapshot, RiskState
from apps.risk.selectors import local_today
from apps.risk.signals import risk_alert_raised
from tests.factories import BotFactory, PaperAccountFactory, UserFactory
from tests.support import aio

DAY = 86_400_000
# The return series of the metrics test: -10% .. -1% then 90 days of +1%.
RETURNS = [-0.10, -0.09, -0.08, -0.07, -0.06, -0.05, -0.04, -0.03, -0.02, -0.01] + [0.01] * 90


def store_daily(symbol="BTC/USDT", returns=RETURNS, last_close=None) -> float:
    closes = [100.0]
    for r in returns:
        closes.append(closes[-1] * (1 + r))
    if last_close is not None:
        closes = [c * last_close / closes[-1] for c in closes]
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    ts = np.array([start + i * DAY for i in range(len(closes))], dtype=np.int64)
    c = np.array(closes)
    marketdata.candles_import_arrays(
        exchange="binance", symbol=symbol, timeframe="1d", ts=ts,
        ohlcv=np.column_stack([c, c, c, c, np.ones_like(c)]),
    )  # fmt: skip
    return closes[-1]


def hold(user, account, *, size="1", entry="1000", mark="1000", symbol="BTC/USDT", realized="0") -> Position:
    return Position.objects.create(
        owner=user, paper_account=account, symbol=symbol, side="long", size=Decimal(size),
        average_entry=Decimal(entry), mark_price=Decimal(mark), realized_pnl=Decimal(realized),
        unrealized_pnl=(Decimal(mark) - Decimal(entry)) * Decimal(size),
    )  # fmt: skip


def lose_today(user, account, loss: str) -> None:
    """A closed losing trade through the position receiver: long 1 @ 1000, closed ``loss`` lower."""
    position = Position.objects.filter(owner=user, symbol="BTC/USDT").first() or hold(user, account)
    position.side, position.size, position.average_entry = "long", Decimal("1"), Decimal("1000")
    position.save()  # (re)opening: no trade result
    position = Position.objects.get(pk=position.pk)
    position.side, position.size, position.average_entry = "flat", Decimal("0"), None
    position.realized_pnl -= Decimal(loss)
    position.unrealized_pnl = Decimal("0")
    position.save()


@pytest.mark.django_db
def test_snapshot_var_from_stored_daily_prices_equals_the_hand_computation(user):
    account = PaperAccountFactory(user=user, initial_balances={"USDT": "9000", "BTC": "1"})
    store_daily()
    hold(user, account, size="1", entry="1000", mark="1000")
    monitoring.risk_monitor_user(user_id=user.pk)
    snapshot = RiskSnapshot.objects.get(owner=user)
    # Exposure 1000: 95% -> 5th worst day (-6%) = 60, CVaR = mean(100, 90, 80, 70, 60) = 80; 99% -> 100.
    assert float(snapshot.var_95) == pytest.approx(60, rel=1e-6)
    assert float(snapshot.cvar_95) == pytest.approx(80, rel=1e-6)
    assert float(snapshot.var_99) == pytest.approx(100, rel=1e-6)
    assert snapshot.var_days == 100
    assert snapshot.equity == Decimal("10000") and snapshot.exposure == {"BTC": "1000"}
    assert snapshot.leverage == Decimal("0.1") and 1 <= snapshot.score <= 100
    # One row per user and 15-minute bucket: a second run replaces it.
    monitoring.risk_monitor_user(user_id=user.pk)
    assert RiskSnapshot.objects.filter(owner=user).count() == 1


@pytest.mark.django_db
def test_a_closed_losing_trade_counts_toward_today_and_the_streak(user):
    account = PaperAccountFactory(user=user)
    lose_today(user, account, "40")
    state = RiskState.objects.get(owner=user)
    assert state.day_realized == Decimal("-40") and state.consecutive_losses == 1
    position = Position.objects.get(owner=user)
    position.side, position.size, position.average_entry, position.mark_price = "long", 1, Decimal("900"), 900
    position.save()  # opening again: no trade result
    position = Position.objects.get(pk=position.pk)
    position.side, position.size, position.realized_pnl = "flat", Decimal("0"), Decimal("-10")  # +30 win
    position.save()
    state.refresh_from_db()
    assert state.day_realized == Decimal("-10") and state.consecutive_losses == 0


@pytest.mark.django_db
@pytest.mark.parametrize("held", [True, False], ids=["owner held", "owner not held"])
def test_a_trade_result_moves_the_owners_local_day_whether_or_not_the_saver_holds_the_owner(user, held):
    user.timezone = "Pacific/Kiritimati"  # UTC+14: its day is not UTC's for 14 hours of each
    user.save(update_fields=["timezone"])
    account = PaperAccountFactory(user=user)
    lose_today(user, account, "40")  # today's row, streak 1
    state = RiskState.objects.get(owner=user)
    assert state.day == local_today("Pacific/Kiritimati", timezone.now())
    position = Position.objects.get(owner=user)
    position.side, position.size, position.average_entry, position.mark_price = "long", 1, Decimal("900"), 900
    position.save()  # opening again: no trade result
    position = Position.objects.get(pk=position.pk)  # its owner not loaded
    if held:
        position.owner = user  # as the orders service does with the order's owner
    position.side, position.size, position.realized_pnl = "flat", Decimal("0"), Decimal("-45.5")
    with CaptureQueriesContext(connection) as queries:
        position.save()
    state.refresh_from_db()
    assert state.day_realized == Decimal("-45.5") and state.consecutive_losses == 2
    assert state.last_loss_at is not None and state.day == local_today("Pacific/Kiritimati", timezone.now())
    on_state = [q["sql"].split()[0] for q in queries.captured_queries if "risk_riskstate" in q["sql"]]
    # Held (on PostgreSQL), today's row is moved by one UPDATE without reading it first.
    assert on_state == (["UPDATE"] if held and connection.vendor == "postgresql" else ["SELECT", "UPDATE"])


@pytest.mark.django_db
def test_daily_loss_breach_alerts_once_pauses_the_bot_once_and_resolves(
    user, django_capture_on_commit_callbacks
):
    account = PaperAccountFactory(user=user)
    bot = BotFactory(owner=user, status=Bot.Status.RUNNING)
    risk.risk_limit_create(user=user, kind="daily_loss", value=Decimal("150"), action="pause_bot", bot=bot.pk)
    lose_today(user, account, "150")  # at the limit: no breach
    with django_capture_on_commit_callbacks(execute=True):
        monitoring.risk_monitor_user(user_id=user.pk)
    assert list(RiskAlert.objects.values_list("severity", flat=True)) == ["info"]  # 100% used, not broken
    lose_today(user, account, "0.01")  # one cent beyond
    raised = []
    risk_alert_raised.connect(
        lambda sender, user_id, payload, alert, **kw: raised.append((user_id, payload["id"], alert.pk)),
        weak=False,
        dispatch_uid="t",
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            monitoring.risk_monitor_user(user_id=user.pk)
        bot.refresh_from_db()
        assert bot.status == Bot.Status.PAUSED
        from apps.bots.services import bot_resume

        bot_resume(bot=bot)
        with django_capture_on_commit_callbacks(execute=True):
            monitoring.risk_monitor_user(user_id=user.pk)  # still breached: same alert, no second pause
    finally:
        risk_alert_raised.disconnect(dispatch_uid="t")
    alert = RiskAlert.objects.get(owner=user, severity="critical")
    assert raised == [(user.pk, alert.pk, alert.pk)]
    assert (alert.kind, alert.severity, alert.occurrences, alert.action) == (
        "daily_loss",
        "critical",
        2,
        "pause_bot",
    )
    assert alert.data["measured"] == "150.01" and alert.data["threshold"] == "150"
    bot.refresh_from_db()
    assert bot.status == Bot.Status.RUNNING
    # A new local day: the condition is over and the alert resolves.
    RiskState.objects.filter(owner=user).update(day=timezone.now().date() - timedelta(days=1))
    monitoring.risk_monitor_user(user_id=user.pk)
    alert.refresh_from_db()
    assert alert.resolved_at is not None


@pytest.mark.django_db
def test_daily_pnl_starts_at_the_users_midnight(user):
    user.timezone = "Pacific/Kiritimati"  # UTC+14: already tomorrow for most of the UTC day
    user.save()
    account = PaperAccountFactory(user=user)
    lose_today(user, account, "25")
    state = RiskState.objects.get(owner=user)
    assert (
        state.day == timezone.now().astimezone(__import__("zoneinfo").ZoneInfo("Pacific/Kiritimati")).date()
    )


@pytest.mark.django_db
def test_users_to_monitor_and_the_minute_schedule(user, other_user):
    risk.risk_limit_create(user=user, kind="drawdown", value=Decimal("0.2"))
    assert monitoring.users_to_monitor() == [user.pk]
    schedule = next(s for s in declared_schedules() if s.task == "apps.risk.tasks.risk_monitor_all")
    assert schedule.seconds == 60


@pytest.mark.django_db
def test_one_failing_user_does_not_stop_the_chunk(user, monkeypatch):
    other = UserFactory()
    calls = []

    def monitor(*, user_id, now=None):
        calls.append(user_id)
        if user_id == user.pk:
            raise RuntimeError("boom")

    monkeypatch.setattr(monitoring, "risk_monitor_user", monitor)
    assert monitoring.risk_monitor_users(user_ids=[user.pk, other.pk]) == 1
    assert calls == [user.pk, other.pk]


@pytest.mark.django_db(transaction=True)
def test_paper_bot_breaching_the_daily_loss_is_paused_and_the_alert_arrives_over_websocket(
    live_server_url, settings
):
    """The acceptance test of the risk issue: paused, pushed live, and delivered to the user's
    signed webhook (a real local HTTP receiver checks the signature)."""
    from apps.risk.models import NotificationDelivery
    from apps.risk.notifications import notification_attempt, notification_channel_create
    from apps.risk.transports import webhook_verify
    from tests.risk.receiver import Receiver

    settings.NOTIFICATION_ALLOW_PRIVATE_WEBHOOKS = True
    settings.NOTIFICATION_RETRY_BASE_SECONDS = 0
    user = UserFactory()
    receiver = Receiver().__enter__()
    secret = "whsec-risk-0123456789"
    notification_channel_create(
        user=user, kind="webhook", name="alerts", events=["risk_alert"], url=receiver.url, secret=secret
    )
    account = PaperAccountFactory(user=user)
    bot = BotFactory(owner=user, status=Bot.Status.RUNNING, mode=Bot.Mode.PAPER)
    risk.risk_limit_create(user=user, kind="daily_loss", value=Decimal("100"), action="pause_bot", bot=bot.pk)
    lose_today(user, account, "120")
    token = str(AccessToken.for_user(user))
    url = live_server_url.replace("http://", "ws://") + f"/ws/events/?token={token}"

    async def receive(ws, event_type):
        while True:
            event = json.loads(await ws.recv())
            if event["type"] == event_type:
                return event

    async def scenario():
        async with websockets.connect(url, origin="http://127.0.0.1") as ws:
            await asyncio.wait_for(receive(ws, "connected"), 15)
            await asyncio.to_thread(monitoring.risk_monitor_user, user_id=user.pk)
            alert = await asyncio.wait_for(receive(ws, "risk.alert"), 15)
            status = await asyncio.wait_for(receive(ws, "bot.status"), 15)
            return alert, status

    alert, status = aio.run(scenario())
    assert alert["payload"]["kind"] == "daily_loss" and alert["payload"]["severity"] == "critical"
    assert alert["payload"]["data"]["measured"] == "120"
    bot.refresh_from_db()
    assert bot.status == Bot.Status.PAUSED
    assert status["payload"]["status"] == "paused"

    # The webhook delivery (a Celery task in production; attempted here until it is done).
    try:
        [delivery] = NotificationDelivery.objects.filter(owner=user, event="risk_alert")
        while notification_attempt(delivery_id=delivery.pk) is not None:
            pass
        delivery.refresh_from_db()
        assert delivery.status == "delivered"
        [request] = receiver.requests
        assert webhook_verify(
            secret, request.headers["X-Signature-Timestamp"], request.body, request.headers["X-Signature"]
        )
        body = request.json()
        assert body["event"] == "risk_alert"
        assert (body["data"]["kind"], body["data"]["severity"]) == ("daily_loss", "critical")
    finally:
        receiver.__exit__(None, None, None)


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_fills_schedule_one_debounced_monitor_run_on_a_real_worker(celery_worker):
    import time

    from django.core.cache import cache

    from apps.risk.tracking import FILL_DEBOUNCE_SECONDS
    from tests.factories import FillFactory, OrderFactory

    user = UserFactory()
    account = PaperAccountFactory(user=user)
    order = OrderFactory(owner=user, paper_account=account)
    for _ in range(3):
        FillFactory(order=order)  # each commits; only the first enqueues a run
    assert cache.get(f"risk:monitor-due:{user.pk}") == 1
    deadline = time.monotonic() + FILL_DEBOUNCE_SECONDS + 25
    while not RiskSnapshot.objects.filter(owner=user).exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert RiskSnapshot.objects.filter(owner=user).count() == 1


@pytest.mark.django_db
def test_a_limit_used_80_percent_raises_an_info_alert_that_gives_way_to_the_breach(user):
    account = PaperAccountFactory(user=user)
    risk.risk_limit_create(user=user, kind="daily_loss", value=Decimal("100"))
    lose_today(user, account, "79.99")
    monitoring.risk_monitor_user(user_id=user.pk)
    assert not RiskAlert.objects.exists()
    lose_today(user, account, "5.01")  # 85 of 100
    monitoring.risk_monitor_user(user_id=user.pk)
    near = RiskAlert.objects.get(owner=user)
    assert near.severity == "info" and "85% used (85 of 100)" in near.message and near.action == ""
    lose_today(user, account, "20")  # 105: broken
    monitoring.risk_monitor_user(user_id=user.pk)
    near.refresh_from_db()
    assert near.resolved_at is not None
    broken = RiskAlert.objects.get(owner=user, resolved_at__isnull=True)
    assert broken.severity == "warning" and broken.data["measured"] == "105"


@pytest.mark.django_db
def test_breaches_reach_the_notification_channels_once_but_info_alerts_do_not(
    user, django_capture_on_commit_callbacks
):
    from apps.risk.models import NotificationDelivery
    from apps.risk.notifications import notification_channel_create

    notification_channel_create(
        user=user, kind="email", name="alerts", events=["risk_alert"], email="trader@example.com"
    )
    account = PaperAccountFactory(user=user)
    risk.risk_limit_create(user=user, kind="daily_loss", value=Decimal("100"))
    lose_today(user, account, "85")  # 85% used: an info alert, on the page only
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            monitoring.risk_monitor_user(user_id=user.pk)
    assert list(RiskAlert.objects.values_list("severity", flat=True)) == ["info"]
    assert not NotificationDelivery.objects.exists()
    lose_today(user, account, "20")  # 105 of 100: broken (a warning), then repeated while it lasts
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            monitoring.risk_monitor_user(user_id=user.pk)
    [delivery] = NotificationDelivery.objects.all()
    warning = RiskAlert.objects.get(owner=user, resolved_at__isnull=True)
    assert (warning.severity, warning.occurrences) == ("warning", 3)
    assert delivery.event == "risk_alert" and delivery.payload["id"] == warning.pk
    assert (delivery.payload["severity"], delivery.payload["kind"]) == ("warning", "daily_loss")
