"""The demo's paper bot: a fast SMA crossover on BTC/USDT, started, so a newcomer sees it trade."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.bots.models import Bot
from apps.bots.services import bot_create, bot_start
from apps.core.errors import DomainError
from apps.marketdata.errors import UnknownMarket
from apps.marketdata.selectors import market_get, stored_timeframes

DEMO_BOT_NAME = "Demo: SMA 2/3 crossover on BTC/USDT"
DEMO_EXCHANGE, DEMO_SYMBOL = "binance", "BTC/USDT"
# Averages of 2 and 3 candles cross often: on the shipped hourly sample about 4 candles in
# 10 end with an entry or an exit, so with the demo's replay speed (scripts/run.sh: an
# hourly candle every 15 s) the bot trades within the first minute or so.
DEMO_STRATEGY, DEMO_PARAMS = "sma_crossover", {"fast": 2, "slow": 3}
DEMO_WARMUP = 50


class Command(BaseCommand):
    help = (
        "Demo bot: a paper bot (SMA 2/3 crossover on binance BTC/USDT, on the finest stored timeframe) "
        "for the demo user, started (idempotent: an existing one is left as it is, or started if stopped)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="email of the bot's owner")

    def handle(self, *args, user: str, **options):
        owner = get_user_model().objects.filter(email=user).first()
        if owner is None:
            raise CommandError(f"No user {user}.")
        bot = Bot.objects.filter(owner=owner, name=DEMO_BOT_NAME).first()
        if bot is None:
            try:
                timeframes = stored_timeframes(market=market_get(exchange=DEMO_EXCHANGE, symbol=DEMO_SYMBOL))
            except UnknownMarket:
                timeframes = []
            if not timeframes:
                self.stdout.write(f"Demo bot: no {DEMO_SYMBOL} candles stored, no bot created.")
                return
            bot = bot_create(
                user=owner,
                name=DEMO_BOT_NAME,
                exchange=DEMO_EXCHANGE,
                symbol=DEMO_SYMBOL,
                # The replay feed (offline) plays the finest stored timeframe; a bot on it
                # ticks on every replayed candle.
                timeframe=timeframes[0],
                strategy=DEMO_STRATEGY,
                params=DEMO_PARAMS,
                warmup=DEMO_WARMUP,
            )
            self.stdout.write(f"Created the demo paper bot '{bot.name}' ({bot.timeframe}).")
        if bot.status in (Bot.Status.STOPPED, Bot.Status.ERROR):
            try:
                bot = bot_start(bot=bot)
            except DomainError as exc:
                self.stderr.write(f"Demo bot not started: {exc.message}")
                return
            self.stdout.write("Started the demo bot; a worker activates it and it ticks on each candle.")
        else:
            self.stdout.write(f"Demo bot is {bot.status}, left as it is.")
