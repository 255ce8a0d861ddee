"""The webhook section of a signal bot's page: URL (full once, masked after), rotation, example, signals."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.bots import services
from apps.bots.models import Bot, BotSignal
from tests.factories import BotFactory

pytestmark = pytest.mark.django_db


def webhook_bot(owner, **overrides) -> tuple[Bot, str]:
    values = {"owner": owner, "source": "webhook", "strategy": "", "params": {}, "timeframe": "1h"}
    bot = BotFactory(**{**values, **overrides})
    return bot, services.bot_webhook_rotate(bot=bot)


def test_the_detail_page_shows_the_masked_url_example_and_latest_signals(client, user):
    bot, token = webhook_bot(user)
    BotSignal.objects.create(
        bot=bot,
        received_at=bot.created_at,
        action="enter_long",
        signal_id="tv-42",
        outcome="rejected",
        reason="The bot is stopped; it acts on signals only while running.",
    )
    client.force_login(user)
    html = client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    assert 'id="bot-webhook"' in html
    assert f"http://testserver/api/v1/signals/{token[:6]}" in html
    assert token not in html
    assert "{{timenow}}" in html and "enter_long" in html
    assert "tv-42" in html and "only while running" in html
    assert reverse("bots:webhook-rotate", args=[bot.pk]) in html


def test_rotating_on_the_page_shows_the_new_url_once(client, user):
    bot, old = webhook_bot(user)
    client.force_login(user)
    response = client.post(reverse("bots:webhook-rotate", args=[bot.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="webhook-url-full"' in html and old not in html
    new = html.split('value="http://testserver/api/v1/signals/', 1)[1].split("/", 1)[0]
    assert len(new) >= 40
    bot.refresh_from_db()
    assert bot.webhook.token_hash == bot.webhook.hash_token(new)
    again = client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    assert new not in again and new[:6] in again


def test_rotating_another_users_bot_is_404(client, user, other_user):
    bot, _ = webhook_bot(other_user)
    client.force_login(user)
    assert client.post(reverse("bots:webhook-rotate", args=[bot.pk])).status_code == 404


def test_a_strategy_bots_page_has_no_webhook_section(client, user):
    bot = BotFactory(owner=user)
    client.force_login(user)
    assert 'id="bot-webhook"' not in client.get(reverse("bots:detail", args=[bot.pk])).content.decode()


def test_creating_a_webhook_bot_on_the_page_shows_its_url(client, user):
    client.force_login(user)
    form = {
        "name": "TV alerts",
        "source": "webhook",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "allocated_capital": "500",
    }
    response = client.post(reverse("bots:new"), form)
    assert response.status_code == 200, response.content.decode()[:2000]
    bot = Bot.objects.get(owner=user, name="TV alerts")
    assert (bot.source, bot.strategy, bot.params) == ("webhook", "", {})
    html = response.content.decode()
    token = html.split('value="http://testserver/api/v1/signals/', 1)[1].split("/", 1)[0]
    assert bot.webhook.token_hash == bot.webhook.hash_token(token)
