"""In headless Chromium with daphne and a real Celery worker: a paper bot created from a
backtest result, started from its page, whose status, first order and fill appear live."""

from __future__ import annotations

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from apps.backtests.models import BacktestRun
from apps.bots import services
from apps.bots.models import Bot
from apps.orders.models import Fill, Order
from tests.bots.support import CROSS_PARAMS, store_candles_on_replay
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser, pytest.mark.worker]


def login(page, user) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.email)
    page.fill("input[name=password]", PASSWORD)
    # Until the next page has loaded (its stylesheet too): a layout read before it raced the CSS.
    with page.expect_navigation():
        page.click("button[type=submit]")


def test_paper_bot_from_a_backtest_result_starts_and_trades_live_on_its_page(page, celery_worker):
    user = UserFactory()
    # Offline (as under tests) the bot's candle clock is the replay feed over stored candles:
    # the candle it closed last is an SMA cross up, so the first tick buys at market.
    candle = store_candles_on_replay()
    run = BacktestRun.objects.create(
        owner=user,
        strategy_kind="builtin",
        strategy_name="sma_crossover",
        params=CROSS_PARAMS,
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        status="completed",
        initial_cash=Decimal("1000"),
        # Half the equity per entry, carried over to the bot: room for the paper exchange's
        # slippage on the market entry.
        config={"initial_cash": 1000.0, "sizing": {"type": "percent_equity", "value": 0.5}},
    )
    login(page, user)

    page.goto(f"/backtests/{run.pk}/")
    page.click("#start-bot-link")
    expect(page.locator("#id_symbol")).to_have_value("BTC/USDT")
    expect(page.locator("#id_p__builtin-sma_crossover__fast")).to_have_value("2")
    # The stand-in run has no stored results, so the backtest page's charts 404: only the
    # bot pages' console counts.
    page.console_errors.clear()
    page.fill("#id_name", "from backtest")
    page.click("#bot-form button[type=submit]")

    bot = Bot.objects.get(owner=user, name="from backtest")
    assert (bot.mode, bot.params["fast"], bot.params["slow"]) == ("paper", 2, 3)
    assert bot.sizing == {"type": "percent_equity", "value": 0.5}
    expect(page.locator("[data-bot-page]")).to_have_attribute("data-bot-page", str(bot.pk))
    badge = page.locator(f'[data-bot-status="{bot.pk}"]').first
    expect(badge).to_have_text("Stopped")
    page.locator("#bot-chart[data-candles]").wait_for()

    page.get_by_role("button", name="Start").click()
    # "Starting" comes back with the redirect; "Running" arrives as a live event from the worker
    # (generous timeouts: the worker may still be booting on a loaded machine).
    expect(badge).to_have_text("Running", timeout=60000)
    # From here on nothing reloads the page: a marker the reload would drop proves it.
    page.evaluate("window.__noReload = true")

    # The beat job's enqueue for the candle that just closed; the worker ticks the bot.
    assert services.bots_enqueue_due() == 1

    events = page.locator("#bot-events")
    expect(events).to_contain_text("1 order(s)", timeout=60000)
    expect(events).to_contain_text("buy market", timeout=60000)
    trade = page.locator("#bot-trades tbody tr[data-fill]").first
    expect(trade).to_contain_text("Buy", timeout=60000)
    expect(page.locator("#bot-chart")).to_have_attribute("data-fills", "1", timeout=60000)
    expect(page.locator('[data-perf="position"]')).to_contain_text("long", timeout=60000)
    assert page.evaluate("window.__noReload") is True

    order = Order.objects.get(bot=bot)
    assert (order.side, order.type, order.status) == ("buy", "market", "filled")
    assert order.client_order_id == f"bot{bot.pk}-{candle}-0"
    fill = Fill.objects.get(order=order)
    # The row the live event added reads as a rendered one (|amount): no 18 padding places.
    expect(trade.locator("td").nth(2)).to_have_text(f"{fill.amount.normalize():,f}")
    expect(trade.locator("td").nth(3)).to_have_text(f"{fill.price.normalize():,f}")

    # The list shows the bot running with its P&L (the position marked at the last price).
    page.goto("/bots/")
    expect(page.locator(f'[data-bot-status="{bot.pk}"]')).to_have_text("Running")
    expect(page.locator(f'[data-bot-pnl="{bot.pk}"]')).to_contain_text("USDT")
    assert page.console_errors == []


def test_start_bot_link_on_an_optimization_trial_row_prefills_that_trial(page):
    from apps.backtests.models import Optimization, OptimizationTrial

    user = UserFactory()
    opt = Optimization.objects.create(
        owner=user,
        strategy_kind="builtin",
        strategy_name="sma_crossover",
        exchange="binance",
        symbol="ETH/USDT",
        timeframe="4h",
        kind="grid",
        status="completed",
        initial_cash=Decimal("1000"),
        space={"fast": [5, 9]},
        total=2,
        completed=2,
        best_params={"fast": 5, "slow": 50},
        best_metrics={"sharpe_ratio": 1.5},
        best_value=1.5,
    )
    for index, fast in enumerate([5, 9]):
        OptimizationTrial.objects.create(
            optimization=opt, index=index, params={"fast": fast, "slow": 50}, metrics={"sharpe_ratio": 1.0}
        )
    login(page, user)
    page.goto(f"/backtests/optimizations/{opt.pk}/")
    expect(page.locator("#best-bot-link")).to_have_attribute("href", f"/bots/new/?optimization={opt.pk}")
    page.locator("#trials-table tbody tr", has_text="9").locator("a.start-bot").click()
    expect(page.locator("#id_p__builtin-sma_crossover__fast")).to_have_value("9")
    expect(page.locator("#id_symbol")).to_have_value("ETH/USDT")
    expect(page.locator("#bot-prefilled")).to_contain_text(f"optimization #{opt.pk} trial 1")
    assert page.console_errors == []


@pytest.mark.django_db(transaction=True)
def test_bot_page_keeps_the_orders_url_after_drawing_its_open_orders(page):
    """The chart's ``data-orders`` is the orders API URL the page re-reads on a reconnect;
    drawing once replaced it with the open-order count, so every later re-read fetched
    ``/bots/<pk>/1/?open=true`` and got a 405 (found trying the platform in Chromium)."""
    from apps.exchanges.services import paper_account_get_or_create
    from tests.bots.support import store_candles
    from tests.factories import T0, BotFactory, OrderFactory

    user = UserFactory()
    bot = BotFactory(owner=user, strategy="sma_crossover", timeframe="1h")
    store_candles(last_open_ms=int(T0.timestamp() * 1000))
    account = paper_account_get_or_create(user=user, bot_id=bot.pk, exchange=bot.exchange)
    OrderFactory(
        owner=user,
        paper_account=account,
        bot=bot,
        side="buy",
        type="limit",
        price=Decimal("90"),
        amount=Decimal("1"),
        status="open",
    )
    login(page, user)
    page.goto(f"/bots/{bot.pk}/")
    chart = page.locator("#bot-chart")
    expect(chart).to_have_attribute("data-open-orders", "1", timeout=30000)
    expect(chart).to_have_attribute("data-orders", f"/api/v1/bots/{bot.pk}/orders/")
    assert page.console_errors == []


@pytest.mark.django_db(transaction=True)
def test_a_bot_page_opened_while_starting_offers_pause_once_the_bot_runs(page):
    """A start redirects to the bot's page while the worker activates the bot: the page had only
    the Stop form, so the live "running" status turned the badge green but never offered Pause;
    and hidden forms still showed, ``form.inline`` overriding the ``hidden`` attribute."""
    from apps.bots.services.log import bot_publish_status
    from tests.bots.support import store_candles
    from tests.factories import T0, BotFactory

    user = UserFactory()
    bot = BotFactory(owner=user, status="starting", timeframe="1h")
    store_candles(last_open_ms=int(T0.timestamp() * 1000))
    login(page, user)
    page.goto(f"/bots/{bot.pk}/")
    actions = page.locator(f'[data-bot-actions="{bot.pk}"]')
    expect(actions.get_by_role("button", name="Stop")).to_be_visible()
    for name in ("Start", "Pause", "Resume"):
        expect(actions.get_by_role("button", name=name)).to_be_hidden()
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "on", timeout=15000)

    Bot.objects.filter(pk=bot.pk).update(status="running")
    bot.refresh_from_db()
    bot_publish_status(bot)  # what the worker sends when it has activated the bot
    expect(page.locator(f'[data-bot-status="{bot.pk}"]').first).to_have_text("Running", timeout=15000)
    expect(actions.get_by_role("button", name="Pause")).to_be_visible()
    expect(actions.get_by_role("button", name="Stop")).to_be_visible()
    expect(actions.get_by_role("button", name="Start")).to_be_hidden()
    assert page.console_errors == []
