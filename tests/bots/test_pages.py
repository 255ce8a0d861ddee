from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from apps.bots.models import Bot
from tests.factories import BotFactory

pytestmark = pytest.mark.django_db


def test_bots_page_shows_empty_state(client, user):
    client.force_login(user)
    response = client.get(reverse("bots:index"))
    assert response.status_code == 200
    assert "No bots yet" in response.content.decode()


def test_bots_page_lists_only_own_bots(client, user, other_user):
    BotFactory(owner=user, name="mine-dca")
    BotFactory(owner=other_user, name="their-dca")
    client.force_login(user)
    html = client.get(reverse("bots:index")).content.decode()
    assert "mine-dca" in html
    assert "their-dca" not in html


def test_bots_page_needs_login(client):
    response = client.get(reverse("bots:index"))
    assert response.status_code == 302


def test_bots_page_offers_the_buttons_of_each_status(client, user):
    running = BotFactory(owner=user, status="running")
    stopped = BotFactory(owner=user)
    client.force_login(user)
    html = client.get(reverse("bots:index")).content.decode()

    # Every form is on the page (live status events show and hide them); the status's own are shown.
    def shown(pk: int, action: str) -> bool:
        tag = html.split(f'action="{reverse("bots:action", args=[pk, action])}"', 1)[1].split(">", 1)[0]
        return "hidden" not in tag

    assert shown(running.pk, "pause") and shown(running.pk, "stop")
    assert not shown(running.pk, "start") and not shown(running.pk, "resume")
    assert shown(stopped.pk, "start") and not shown(stopped.pk, "pause") and not shown(stopped.pk, "stop")
    assert f'data-bot-status="{running.pk}"' in html


def test_start_button_starts_and_an_illegal_one_says_why(client, user, django_capture_on_commit_callbacks):
    bot = BotFactory(owner=user)
    client.force_login(user)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("bots:action", args=[bot.pk, "start"]), {"from": "detail"})
    assert response.status_code == 302 and response["Location"] == reverse("bots:detail", args=[bot.pk])
    bot.refresh_from_db()
    assert bot.status == "starting"
    response = client.post(reverse("bots:action", args=[bot.pk, "pause"]), follow=True)
    assert "Cannot pause a bot that is starting" in response.content.decode()


def test_actions_on_another_users_bot_are_404(client, user, other_user):
    bot = BotFactory(owner=other_user)
    client.force_login(user)
    assert client.post(reverse("bots:action", args=[bot.pk, "start"])).status_code == 404
    assert client.get(reverse("bots:detail", args=[bot.pk])).status_code == 404


def test_create_form_is_generated_from_the_strategy_schema_and_creates_a_paper_bot(client, user):
    client.force_login(user)
    html = client.get(reverse("bots:new")).content.decode()
    assert 'name="p__builtin-sma_crossover__fast"' in html
    assert "Paper (simulated)" in html
    response = client.post(
        reverse("bots:new"),
        {
            "name": "from the form",
            "strategy": "builtin:sma_crossover",
            "p__builtin-sma_crossover__fast": "5",
            "p__builtin-sma_crossover__slow": "20",
            "exchange": "binance",
            "symbol": "eth/usdt",
            "timeframe": "1h",
            "allocated_capital": "500",
            "stop_loss_percent": "2",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    bot = Bot.objects.get(owner=user, name="from the form")
    assert (bot.mode, bot.symbol, bot.params["fast"], bot.stop_loss) == ("paper", "ETH/USDT", 5, 0.02)


def test_create_form_shows_parameter_errors_next_to_the_inputs(client, user):
    client.force_login(user)
    response = client.post(
        reverse("bots:new"),
        {
            "name": "bad",
            "strategy": "builtin:sma_crossover",
            "p__builtin-sma_crossover__fast": "30",
            "p__builtin-sma_crossover__slow": "20",
            "exchange": "binance",
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "allocated_capital": "500",
        },
    )
    assert response.status_code == 400
    assert "less than slow" in response.content.decode()
    assert not Bot.objects.filter(name="bad").exists()


def test_detail_shows_status_and_event_log(client, user):
    from apps.bots.services import bot_event_add

    bot = BotFactory(owner=user, status="error", error="exchange down")
    bot_event_add(bot=bot, kind="error", message="Tick failed (exchange down)")
    client.force_login(user)
    html = client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    assert "Tick failed (exchange down)" in html
    assert 'data-status="error"' in html
    assert "bots/bots.js" in html


def test_detail_page_offers_a_replay_form_and_shows_the_latest_replay(client, user):
    from datetime import UTC, datetime

    from apps.bots.models import BotReplay

    bot = BotFactory(owner=user)
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    BotReplay.objects.create(
        owner=user,
        bot=bot,
        start=start,
        end=end,
        candles=744,
        strategy=bot.strategy,
        status="completed",
        progress=100,
        result={
            "trades": [{"pnl": 1.0}, {"pnl": -0.5}],
            "metrics": {"total_return": 0.0123, "max_drawdown": -0.05, "win_rate": 0.5},
            "equity": {"end": 1012.3},
            "seconds": 1.5,
        },
    )
    client.force_login(user)
    html = client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    assert reverse("bots:replay", args=[bot.pk]) in html
    assert 'type="datetime-local"' in html
    assert "744 candles" in html and "1012.30" in html


def test_replay_form_with_a_period_without_candles_reports_why(client, user):
    from apps.bots.models import BotReplay

    bot = BotFactory(owner=user, timeframe="1h")
    client.force_login(user)
    response = client.post(
        reverse("bots:replay", args=[bot.pk]),
        {"start": "2020-01-01T00:00", "end": "2020-01-02T00:00"},
        follow=True,
    )
    assert "fewer than two stored" in response.content.decode()
    assert not BotReplay.objects.exists()


def test_replay_form_of_another_users_bot_is_404(client, user, other_user):
    bot = BotFactory(owner=other_user)
    client.force_login(user)
    response = client.post(
        reverse("bots:replay", args=[bot.pk]), {"start": "2020-01-01T00:00", "end": "2020-01-02T00:00"}
    )
    assert response.status_code == 404


def test_bots_page_shows_each_bots_pnl_from_its_fills(client, user):
    from tests.bots.test_api_trading import filled

    bot = BotFactory(owner=user)
    filled(bot, "buy", "1", "100", hours=0)
    filled(bot, "sell", "1", "112.5", hours=1, fee="0.5")
    client.force_login(user)
    html = client.get(reverse("bots:index")).content.decode()
    assert f'data-bot-pnl="{bot.pk}"' in html
    assert "12.00 USDT" in html  # 12.5 gain - 0.5 fee


def test_detail_shows_performance_chart_open_orders_and_trades(client, user):
    from tests.bots.test_api_trading import bot_account, filled
    from tests.factories import OrderFactory

    bot = BotFactory(owner=user)
    filled(bot, "buy", "0.5", "100", hours=0)
    order = OrderFactory(owner=user, paper_account=bot_account(bot), bot=bot, side="sell", price="150")
    client.force_login(user)
    html = client.get(reverse("bots:detail", args=[bot.pk])).content.decode()
    assert 'id="bot-chart"' in html and "plotly.min.js" in html and "bots/detail.js" in html
    assert f'data-cancel="{order.pk}"' in html
    assert 'data-perf="position">long 0.5 @ 100' in html
    assert 'id="bot-trades"' in html


def _run(owner, **extra):
    from apps.backtests.models import BacktestRun

    values = {
        "owner": owner,
        "strategy_kind": "builtin",
        "strategy_name": "sma_crossover",
        "params": {"fast": 7, "slow": 21},
        "exchange": "binance",
        "symbol": "ETH/USDT",
        "timeframe": "4h",
        "initial_cash": Decimal("2500"),
        "config": {
            "initial_cash": 2500.0,
            "stop_loss": 0.02,
            "take_profit": 0.05,
            "sizing": {"type": "percent_equity", "value": 0.25},
        },
    }
    values.update(extra)
    return BacktestRun.objects.create(**values)


def test_start_a_bot_from_a_backtest_prefills_the_form(client, user):
    run = _run(user)
    client.force_login(user)
    detail = client.get(reverse("backtests:detail", args=[run.pk])).content.decode()
    link = f"{reverse('bots:new')}?backtest={run.pk}"
    assert link in detail
    html = client.get(link).content.decode()
    assert f"backtest #{run.pk}" in html
    assert '<option value="builtin:sma_crossover" selected>' in html
    assert 'name="p__builtin-sma_crossover__fast" value="7"' in html
    assert 'name="symbol" value="ETH/USDT"' in html
    assert '<option value="4h" selected>' in html
    assert 'name="stop_loss_percent" value="2"' in html
    assert 'name="take_profit_percent" value="5"' in html
    assert 'name="allocated_capital" value="2500' in html
    assert 'name="size_percent" value="25"' in html


def test_start_a_bot_from_an_optimization_trial_uses_that_trials_parameters(client, user):
    from apps.backtests.models import Optimization, OptimizationTrial

    opt = Optimization.objects.create(
        owner=user,
        strategy_kind="builtin",
        strategy_name="sma_crossover",
        params={"slow": 40},
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        kind="grid",
        initial_cash=Decimal("1000"),
        best_params={"fast": 5},
    )
    OptimizationTrial.objects.create(optimization=opt, index=3, params={"fast": 9})
    client.force_login(user)
    best = client.get(f"{reverse('bots:new')}?optimization={opt.pk}").content.decode()
    assert 'name="p__builtin-sma_crossover__fast" value="5"' in best
    assert 'name="p__builtin-sma_crossover__slow" value="40"' in best
    trial = client.get(f"{reverse('bots:new')}?optimization={opt.pk}&trial=3").content.decode()
    assert 'name="p__builtin-sma_crossover__fast" value="9"' in trial
    assert client.get(f"{reverse('bots:new')}?optimization={opt.pk}&trial=99").status_code == 404


def test_start_a_bot_from_another_users_backtest_is_404(client, user, other_user):
    run = _run(other_user)
    client.force_login(user)
    assert client.get(f"{reverse('bots:new')}?backtest={run.pk}").status_code == 404


def test_create_form_pins_the_chosen_version_of_your_own_strategy(client, user):
    from apps.backtests.services import strategy_create, strategy_update

    source = "class S(Strategy):\n    name = 's'\n    def on_data(self, candle):\n        pass\n"
    strategy = strategy_create(user=user, source=source)
    strategy_update(strategy=strategy, source=source + "\n# v2\n")
    client.force_login(user)
    html = client.get(reverse("bots:new")).content.decode()
    assert f'value="{strategy.pk}:1" data-strategy="user:{strategy.pk}"' in html
    data = {
        "name": "pinned",
        "strategy": f"user:{strategy.pk}",
        "strategy_version": f"{strategy.pk}:1",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "allocated_capital": "100",
    }
    assert client.post(reverse("bots:new"), data).status_code == 302
    assert Bot.objects.get(name="pinned").code_version == 1


def test_create_form_needs_the_confirmation_for_a_live_key(client, user):
    from tests.factories import ExchangeConnectionFactory

    connection = ExchangeConnectionFactory(user=user, can_trade_spot=True)
    client.force_login(user)
    html = client.get(reverse("bots:new")).content.decode()
    assert 'id="live-confirmation"' in html and f'value="{connection.pk}"' in html
    data = {
        "name": "live one",
        "strategy": "builtin:sma_crossover",
        "exchange": "binance",
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "allocated_capital": "100",
        "connection": connection.pk,
    }
    response = client.post(reverse("bots:new"), data)
    assert response.status_code == 400
    assert "confirm" in response.content.decode()
    assert client.post(reverse("bots:new"), {**data, "confirm_live": "on"}).status_code == 302
    assert Bot.objects.get(name="live one").mode == "live"


def test_start_a_bot_from_a_backtest_of_your_own_strategy_pins_its_version_and_starts(
    client, user, django_capture_on_commit_callbacks
):
    from apps.backtests.services import strategy_create, strategy_update

    source = (
        "class Mine(SignalStrategy):\n"
        "    name = 'mine'\n"
        "    params = {'n': Param('int', 3, min=2)}\n\n"
        "    def signals(self, data):\n"
        "        return Signals(long_entries=data.close > data.close.mean())\n"
    )
    strategy = strategy_create(user=user, source=source)
    version = strategy.versions.get(version=1)
    strategy_update(strategy=strategy, source=source + "\n# v2\n")  # the run used v1
    run = _run(
        user,
        strategy_kind="user",
        strategy_name="mine",
        strategy=strategy,
        strategy_version=version,
        code_version=1,
        params={"n": 5},
    )
    client.force_login(user)
    link = f"{reverse('bots:new')}?backtest={run.pk}"
    assert link in client.get(reverse("backtests:detail", args=[run.pk])).content.decode()
    html = client.get(link).content.decode()
    assert f'<option value="user:{strategy.pk}" selected>' in html
    assert f'<option value="{strategy.pk}:1" selected data-strategy="user:{strategy.pk}">' in html
    assert f'name="p__user-{strategy.pk}__n" value="5"' in html
    data = {
        "name": "from my backtest",
        "strategy": f"user:{strategy.pk}",
        "strategy_version": f"{strategy.pk}:1",
        f"p__user-{strategy.pk}__n": "5",
        "exchange": "binance",
        "symbol": "ETH/USDT",
        "timeframe": "4h",
        "allocated_capital": "2500",
    }
    assert client.post(reverse("bots:new"), data).status_code == 302
    bot = Bot.objects.get(owner=user, name="from my backtest")
    assert (bot.strategy_kind, bot.code_version, bot.params) == ("user", 1, {"n": 5})
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post(reverse("bots:action", args=[bot.pk, "start"]))
    assert response.status_code == 302
    assert Bot.objects.get(pk=bot.pk).status == "starting"  # no longer refused
