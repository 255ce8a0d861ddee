"""Per-user quotas (apps.accounts.quotas): research jobs, running bots and bots, set by admins.

Enforced in the services (so API, pages and commands alike), with the one error body
(409 ``quota_exceeded``), race-safe: concurrent submissions on a real PostgreSQL never get
past the limit.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.urls import reverse

from apps.accounts.quotas import Quota, quota_summary
from apps.backtests.models import BacktestRun, Optimization
from apps.backtests.optimization import optimization_create
from apps.backtests.services import backtest_create
from apps.bots import services as bot_services
from apps.bots.models import Bot, BotReplay
from apps.core.errors import QuotaExceeded
from apps.core.jobs import JobStatus
from apps.marketdata.timeframes import timeframe_ms
from tests.bots.support import store_candles
from tests.factories import BotFactory, UserFactory
from tests.support.api import assert_error

HOUR = timeframe_ms("1h")
LAST = 1_700_002_800_000  # an hour boundary
CLOSES = [10.0, 9.0, 8.0, 7.0, 6.0, 10.0, 11.0, 12.0, 9.0, 8.0, 7.0, 6.5, 6.0, 9.0, 10.0, 11.0]
FIRST = LAST - (len(CLOSES) - 1) * HOUR
ME = "/api/v1/auth/me/"
BACKTESTS = "/api/v1/backtests/"


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


RUN = {
    "strategy": "sma_crossover",
    "params": {"fast": 2, "slow": 3},
    "exchange": "binance",
    "symbol": "BTC/USDT",
    "timeframe": "1h",
    "start": _dt(FIRST).isoformat(),
    "end": _dt(LAST).isoformat(),
    "initial_cash": "10000",
}
OPTIMIZATION = {**RUN, "params": {"slow": 5}, "space": {"fast": [2, 3]}}


@pytest.fixture
def candles(db):
    store_candles(last_open_ms=LAST, closes=CLOSES)


def _replay(user) -> BotReplay:
    bot = BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3}, timeframe="1h")
    return bot_services.bot_replay_create(bot=bot, start=_dt(FIRST), end=_dt(LAST), enqueue=False)


# ------------------------------------------------------------------ research jobs
def test_a_backtest_past_the_research_quota_is_a_409_saying_the_limit(candles, settings, user, auth_client):
    settings.QUOTA_MAX_RESEARCH_JOBS = 2
    for _ in range(2):
        assert auth_client.post(BACKTESTS, RUN, format="json").status_code == 202
    error = assert_error(auth_client.post(BACKTESTS, RUN, format="json"), 409, "quota_exceeded")
    assert "allows 2 research jobs" in error["message"]
    assert error["fields"] == {"quota": "research_jobs", "limit": 2, "in_use": 2}
    assert BacktestRun.objects.filter(owner=user).count() == 2  # the refused one was rolled back


def test_backtests_optimizations_and_replays_share_the_research_quota(candles, settings, user):
    settings.QUOTA_MAX_RESEARCH_JOBS = 3
    backtest_create(user=user, data=dict(RUN), enqueue=False)
    optimization_create(user=user, data=dict(OPTIMIZATION), enqueue=False)
    _replay(user)
    with pytest.raises(QuotaExceeded):
        backtest_create(user=user, data=dict(RUN), enqueue=False)
    with pytest.raises(QuotaExceeded):
        optimization_create(user=user, data=dict(OPTIMIZATION), enqueue=False)
    with pytest.raises(QuotaExceeded):
        _replay(user)
    assert Optimization.objects.filter(owner=user).count() == 1
    assert BotReplay.objects.filter(owner=user).count() == 1


def test_finished_jobs_free_their_slot_and_other_users_do_not_count(candles, settings, user, other_user):
    settings.QUOTA_MAX_RESEARCH_JOBS = 1
    backtest_create(user=other_user, data=dict(RUN), enqueue=False)
    run = backtest_create(user=user, data=dict(RUN), enqueue=False)
    with pytest.raises(QuotaExceeded):
        backtest_create(user=user, data=dict(RUN), enqueue=False)
    for status in (JobStatus.RUNNING, JobStatus.COMPLETED):
        BacktestRun.objects.filter(pk=run.pk).update(status=status)
        if status == JobStatus.RUNNING:
            with pytest.raises(QuotaExceeded):
                backtest_create(user=user, data=dict(RUN), enqueue=False)
    backtest_create(user=user, data=dict(RUN), enqueue=False)


def test_an_admins_override_replaces_the_default(candles, settings, user):
    settings.QUOTA_MAX_RESEARCH_JOBS = 5
    user.max_research_jobs = 1
    user.save()
    backtest_create(user=user, data=dict(RUN), enqueue=False)
    with pytest.raises(QuotaExceeded):
        backtest_create(user=user, data=dict(RUN), enqueue=False)
    user.max_research_jobs = 2
    user.save()
    backtest_create(user=user, data=dict(RUN), enqueue=False)
    user.max_research_jobs = 0  # none at all
    user.save()
    BacktestRun.objects.filter(owner=user).update(status=JobStatus.CANCELLED)
    with pytest.raises(QuotaExceeded):
        backtest_create(user=user, data=dict(RUN), enqueue=False)


# ------------------------------------------------------------------------- bots
def test_starting_a_bot_past_the_running_quota_is_a_409_and_paused_bots_hold_their_slot(
    db, settings, user, auth_client
):
    settings.QUOTA_MAX_RUNNING_BOTS = 2
    first, second, third = BotFactory.create_batch(3, owner=user)
    bot_services.bot_start(bot=first)
    Bot.objects.filter(pk=first.pk).update(status=Bot.Status.PAUSED)
    assert auth_client.post(reverse("bots-api:bot-start", args=[second.pk])).status_code == 200
    error = assert_error(
        auth_client.post(reverse("bots-api:bot-start", args=[third.pk])), 409, "quota_exceeded"
    )
    assert "allows 2 bots starting, running or paused" in error["message"]
    third.refresh_from_db()
    assert third.status == Bot.Status.STOPPED
    assert not third.events.filter(message="Starting.").exists()  # the transition was rolled back
    # A stopped bot frees its slot.
    Bot.objects.filter(pk=first.pk).update(status=Bot.Status.STOPPED)
    assert bot_services.bot_start(bot=third).status == Bot.Status.STARTING


def test_a_running_bot_asked_to_start_again_is_the_lifecycle_conflict_not_the_quota(db, settings, user):
    settings.QUOTA_MAX_RUNNING_BOTS = 1
    bot = BotFactory(owner=user)
    bot_services.bot_start(bot=bot)
    with pytest.raises(Exception) as caught:
        bot_services.bot_start(bot=bot)
    assert not isinstance(caught.value, QuotaExceeded)
    assert "Cannot start a bot that is starting" in str(caught.value)


def test_creating_a_bot_past_the_bots_quota_is_refused(db, settings, user, auth_client):
    settings.QUOTA_MAX_BOTS = 1
    body = {"name": "a", "strategy": "dca", "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1d"}
    assert auth_client.post("/api/v1/bots/", body, format="json").status_code == 201
    error = assert_error(auth_client.post("/api/v1/bots/", {**body, "name": "b"}, format="json"), 409)
    assert error["code"] == "quota_exceeded" and error["fields"]["quota"] == "bots"
    assert Bot.objects.filter(owner=user).count() == 1


# ------------------------------------------------------------- shown to the user
def test_me_shows_each_quota_with_its_limit_and_use(db, settings, user, auth_client):
    settings.QUOTA_MAX_RUNNING_BOTS = 4
    user.max_bots = 7
    user.save()
    BotFactory(owner=user, status=Bot.Status.RUNNING)
    BotFactory(owner=user)
    quotas = auth_client.get(ME).json()["quotas"]
    assert quotas["running_bots"]["limit"] == 4 and quotas["running_bots"]["used"] == 1
    assert quotas["bots"]["limit"] == 7 and quotas["bots"]["used"] == 2
    assert quotas["research_jobs"]["limit"] == django_settings.QUOTA_MAX_RESEARCH_JOBS
    assert quotas["research_jobs"]["used"] == 0
    assert set(quotas) == {quota.value for quota in Quota}


def test_the_settings_page_shows_the_limits(db, client, settings, user):
    settings.QUOTA_MAX_RUNNING_BOTS = 3
    settings.TRADING_THROTTLE_RATE = "42/minute"
    BotFactory(owner=user, status=Bot.Status.PAUSED)
    client.force_login(user)
    page = client.get(reverse("accounts:settings")).content.decode()
    assert 'data-quota="running_bots"><td>Bots starting, running or paused</td><td>3</td><td>1</td>' in page
    assert "42/minute" in page


def test_an_admin_sets_a_users_quota_in_the_admin(db, client, user):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    url = reverse("admin:accounts_user_change", args=[user.pk])
    page = client.get(url)
    assert page.status_code == 200 and b'name="max_running_bots"' in page.content
    form = {
        "email": user.email,
        "display_name": user.display_name,
        "timezone": user.timezone,
        "display_currency": user.display_currency,
        "default_exchange": user.default_exchange,
        "is_active": "on",
        "max_research_jobs": "",
        "max_running_bots": "3",
        "max_bots": "12",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    user.refresh_from_db()
    assert (user.max_research_jobs, user.max_running_bots, user.max_bots) == (None, 3, 12)
    summary = quota_summary(user=user)
    assert summary["running_bots"]["limit"] == 3 and summary["bots"]["limit"] == 12


# ------------------------------------------------------------------------ pages
def test_the_pages_show_the_quota_message_instead_of_failing(candles, client, settings, user):
    settings.QUOTA_MAX_RESEARCH_JOBS = 0
    settings.QUOTA_MAX_RUNNING_BOTS = 0
    settings.QUOTA_MAX_BOTS = 0
    client.force_login(user)
    sma = "builtin-sma_crossover"
    backtest = {
        "strategy": "builtin:sma_crossover",
        "market": "binance|BTC/USDT",
        "timeframe": "1h",
        "start": "2023-11-14",
        "end": "2023-11-15",
        "initial_cash": "5000",
        "fee_percent": "0.1",
        "slippage_percent": "0.05",
        "market_type": "spot",
        "leverage": "1",
        "margin_mode": "isolated",
        "sizing_type": "percent_equity",
        "sizing_value": "50",
        f"p__{sma}__fast": "2",
        f"p__{sma}__slow": "3",
    }
    page = client.post(reverse("backtests:new"), backtest)
    assert page.status_code == 200 and "allows 0 research jobs" in page.content.decode()
    assert not BacktestRun.objects.filter(owner=user).exists()

    bot = {
        "name": "over the quota",
        "strategy": "builtin:sma_crossover",
        f"p__{sma}__fast": "2",
        f"p__{sma}__slow": "3",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "allocated_capital": "500",
    }
    page = client.post(reverse("bots:new"), bot)
    assert page.status_code == 400 and "allows 0 bots" in page.content.decode()

    stopped = BotFactory(owner=user)
    page = client.post(reverse("bots:action", args=[stopped.pk, "start"]), follow=True)
    assert page.status_code == 200 and "allows 0 bots starting, running or paused" in page.content.decode()
    stopped.refresh_from_db()
    assert stopped.status == Bot.Status.STOPPED


# ----------------------------------------------------------------- concurrency
def _race(calls) -> list[str]:
    """Run ``calls`` at once, each in its own thread with its own connection; 'ok' or 'quota' each."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[str] = []

    def run(call) -> None:
        try:
            barrier.wait()
            call()
            outcomes.append("ok")
        except QuotaExceeded:
            outcomes.append("quota")
        except Exception as exc:  # anything else is a failure of the test, reported below
            outcomes.append(f"error: {exc!r}")
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


def _needs_postgresql() -> None:
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        pytest.skip("concurrent row locks need PostgreSQL (DATABASE_URL); SQLite serializes every write")


@pytest.mark.django_db(transaction=True)
def test_concurrent_research_submissions_never_get_past_the_quota():
    _needs_postgresql()
    store_candles(last_open_ms=LAST, closes=CLOSES)
    user = UserFactory(max_research_jobs=3)
    bots = [
        BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3}, timeframe="1h")
        for _ in range(2)
    ]
    calls = [
        *(lambda: backtest_create(user=user, data=dict(RUN), enqueue=False) for _ in range(3)),
        *(lambda: optimization_create(user=user, data=dict(OPTIMIZATION), enqueue=False) for _ in range(2)),
        *(
            lambda bot=bot: bot_services.bot_replay_create(
                bot=bot, start=_dt(FIRST), end=_dt(LAST), enqueue=False
            )
            for bot in bots
        ),
    ]
    assert _race(calls) == ["ok"] * 3 + ["quota"] * 4
    active = (
        BacktestRun.objects.filter(owner=user).active().count()
        + Optimization.objects.filter(owner=user).active().count()
        + BotReplay.objects.filter(owner=user).active().count()
    )
    assert active == 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_bot_starts_never_get_past_the_running_quota():
    _needs_postgresql()
    user = UserFactory(max_running_bots=2)
    bots = BotFactory.create_batch(6, owner=user)
    assert (
        _race([lambda bot=bot: bot_services.bot_start(bot=bot) for bot in bots]) == ["ok"] * 2 + ["quota"] * 4
    )
    # Started: a Celery worker of an earlier test in the session may already be ticking them.
    assert Bot.objects.filter(owner=user).exclude(status=Bot.Status.STOPPED).count() == 2
    assert Bot.objects.filter(owner=user, status=Bot.Status.STOPPED).count() == 4
