"""The demo (``manage.py seed_demo``, run by scripts/run.sh) starts one paper bot that trades
on the replay feed offline."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.bots import services
from apps.bots.management.commands.seed_demo_bots import DEMO_BOT_NAME, DEMO_PARAMS
from apps.bots.models import Bot, BotEvent
from apps.core.management.commands.seed_demo import DEMO_EMAIL
from tests.backtests.api_support import wait_for
from tests.support.cache import clear_cache

pytestmark = pytest.mark.slow


def seed() -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, stderr=out)
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_creates_and_starts_one_paper_bot_on_the_stored_btc_candles():
    out = seed()
    bot = Bot.objects.get(owner__email=DEMO_EMAIL)
    assert bot.name == DEMO_BOT_NAME and "demo paper bot" in out
    assert (bot.mode, bot.exchange, bot.symbol) == ("paper", "binance", "BTC/USDT")
    assert (bot.strategy, bot.params) == ("sma_crossover", DEMO_PARAMS)
    assert bot.timeframe == "1h"  # offline: the shipped hourly sample, which the replay feed plays
    assert bot.status == "starting"  # a worker activates it (see the worker test below)
    # Idempotent: a second seed keeps the one bot as it is.
    assert "left as it is" in seed()
    assert Bot.objects.filter(owner__email=DEMO_EMAIL).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_the_demo_bot_runs_and_ticks_the_replay_feeds_candle_on_a_real_worker(celery_worker):

    clear_cache()  # the replay feed's cached candle counts of other tests' markets
    seed()
    bot = Bot.objects.get(owner__email=DEMO_EMAIL)
    wait_for(lambda: Bot.objects.get(pk=bot.pk).status == "running", timeout=30)
    assert services.bots_enqueue_due() == 1
    bot = wait_for(lambda: Bot.objects.filter(pk=bot.pk, last_candle_ms__isnull=False).first(), timeout=30)
    # The candle it ticked is a stored one from the shipped sample (not stale), and nothing failed.
    assert bot.failures == 0 and bot.status == "running"
    assert not BotEvent.objects.filter(bot=bot, kind="error").exists()
    assert 1_745_982_000_000 <= bot.last_candle_ms <= 1_777_514_400_000  # the sample's year
    services.bot_stop(bot=bot)
    wait_for(lambda: Bot.objects.get(pk=bot.pk).status == "stopped", timeout=30)
