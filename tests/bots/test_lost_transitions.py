"""A start or stop whose worker message was lost is sent again by the beat (``bots_resend_lost``).

Lost: a broker restart drops it, or it was sent by a process whose in-memory broker no
worker reads (``seed_demo`` before the embedded default's server starts: the demo bot
stayed "Starting" for ever).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.bots import services
from apps.bots.models import Bot
from tests.backtests.api_support import wait_for
from tests.factories import BotFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """The tasks sent to the broker (name, args, kwargs), instead of sending them."""
    calls = []
    monkeypatch.setattr(
        "celery.current_app.send_task",
        lambda name, args, kwargs=None, queue=None, **_: calls.append((name, args, kwargs or {}, queue)),
    )
    return calls


def age(bot: Bot, seconds: float) -> None:
    Bot.objects.filter(pk=bot.pk).update(updated_at=timezone.now() - timedelta(seconds=seconds))


def start_lost(user) -> Bot:
    """A bot started through the service whose activation message never arrives."""
    bot = BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3})
    return services.bot_start(bot=bot)


def test_a_bot_left_starting_past_the_period_has_its_activation_sent_again_once(user, sent, settings):
    settings.BOT_TRANSITION_RESEND_SECONDS = 15
    bot = start_lost(user)
    sent.clear()
    assert services.bots_resend_lost() == 0  # a fresh start is the worker's to finish
    age(bot, 14)
    assert services.bots_resend_lost() == 0
    age(bot, 16)
    assert services.bots_resend_lost() == 1
    assert sent == [("apps.bots.tasks.bot_activate", [bot.pk], {}, "bots")]
    assert services.bots_resend_lost() == 0  # once per period, not on every beat
    services.bot_activate(bot_id=bot.pk)  # the resent message runs
    assert Bot.objects.get(pk=bot.pk).status == "running"
    age(bot, 60)
    assert services.bots_resend_lost() == 0 and len(sent) == 1  # running bots are not touched


@pytest.mark.parametrize("close_position", [True, False])
def test_a_lost_stop_is_sent_again_with_what_the_user_asked_for_the_position(user, sent, close_position):
    bot = start_lost(user)
    services.bot_activate(bot_id=bot.pk)
    services.bot_stop(bot=Bot.objects.get(pk=bot.pk), close_position=close_position)
    sent.clear()
    age(bot, 60)
    assert services.bots_resend_lost() == 1
    assert sent == [("apps.bots.tasks.bot_finish_stop", [bot.pk], {"close_position": close_position}, "bots")]


def test_a_stop_sent_twice_finishes_once(user, sent):
    bot = start_lost(user)
    services.bot_activate(bot_id=bot.pk)
    services.bot_stop(bot=Bot.objects.get(pk=bot.pk))
    assert services.bot_finish_stop(bot_id=bot.pk).status == "stopped"
    assert services.bot_finish_stop(bot_id=bot.pk) is None  # the duplicate does nothing
    bot.refresh_from_db()
    assert bot.status == "stopped"
    assert bot.events.filter(data__to="stopped").count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.worker
def test_a_bot_whose_activation_was_lost_runs_after_the_beat_sends_it_again(user, celery_worker):
    # The message is lost for real: the bot is put in "starting" as bot_start does, but nothing is sent.
    bot = BotFactory(owner=user, strategy="sma_crossover", params={"fast": 2, "slow": 3})
    Bot.objects.filter(pk=bot.pk).update(status="starting", updated_at=timezone.now() - timedelta(minutes=5))
    assert services.bots_resend_lost() == 1
    wait_for(lambda: Bot.objects.get(pk=bot.pk).status == "running", timeout=30)
    services.bot_stop(bot=Bot.objects.get(pk=bot.pk))
    wait_for(lambda: Bot.objects.get(pk=bot.pk).status == "stopped", timeout=30)
