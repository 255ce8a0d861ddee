"""One of every object a user owns through the API, and which path parameter names which.

The fuzzing test (``tests/core/test_fuzz_api.py``) aims part of its requests at these
objects so they reach past the 404; the isolation test (``tests/core/test_isolation.py``)
asks for them as another user. ``PATH_OBJECTS`` maps every parameterized API path to the
object (and attribute) its parameters name: a new route with a parameter fails
``object_for_path`` until it is listed here, so both tests cover it from the start.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.utils import timezone

# path (as the OpenAPI schema spells it) -> {parameter: (object key, attribute)}
PATH_OBJECTS: dict[str, dict[str, tuple[str, str]]] = {}


def _paths(prefix: str, key: str, suffixes: list[str], extra: dict[str, tuple[str, str]] | None = None):
    for suffix in suffixes:
        PATH_OBJECTS[f"/api/v1/{prefix}/{{id}}/{suffix}"] = {"id": (key, "pk"), **(extra or {})}


_paths(
    "backtests",
    "backtest",
    [
        "",
        "status/",
        "cancel/",
        "results/",
        "trades/",
        "trades/export/",
        "equity/",
        "positions/",
        "candles/",
        "monte-carlo/",
    ],
)
_paths("backtests/strategies", "strategy", ["", "versions/"])
_paths("backtests/strategies", "strategy", ["versions/{version}/"], {"version": ("strategy", "version")})
_paths("backtests/optimizations", "optimization", ["", "cancel/", "heatmap/", "results/"])
_paths(
    "bots",
    "bot",
    [
        "",
        "events/",
        "orders/",
        "pause/",
        "performance/",
        "positions/",
        "replay/",
        "replays/",
        "resume/",
        "signals/",
        "start/",
        "stop/",
        "trades/",
        "webhook/rotate/",
    ],
)
_paths(
    "bots", "bot", ["replays/{replay_id}/", "replays/{replay_id}/cancel/"], {"replay_id": ("replay", "pk")}
)
_paths("exchanges/connections", "connection", ["", "balance/", "test/"])
_paths("market-data/jobs", "import_job", ["", "cancel/"])
_paths("market-data/markets", "market", [""])
_paths("market-data/subscriptions", "subscription", [""])
_paths("orders", "order", ["", "cancel/"])
_paths("orders/positions", "position", ["", "close/"])
_paths("risk/alerts", "alert", ["", "acknowledge/"])
_paths("risk/kill-switch/activations", "activation", [""])
_paths("risk/limits", "limit", [""])
_paths("risk/notification-channels", "channel", ["", "test/"])
_paths("risk/notification-deliveries", "delivery", [""])
PATH_OBJECTS["/api/v1/signals/{token}/"] = {"token": ("webhook_token", "")}

# Shared, not owned: every user may read them (the market catalog).
SHARED_OBJECTS = {"market"}
# Operations for admins only (staff): no user owns what they name; any other user gets a 403.
ADMIN_ONLY_PREFIXES = ("/api/v1/ops/",)


def admin_only(path: str) -> bool:
    return path.startswith(ADMIN_ONLY_PREFIXES)


def object_for_path(path: str) -> dict[str, tuple[str, str]]:
    if admin_only(path):
        return {}
    if path not in PATH_OBJECTS:
        raise KeyError(f"{path} has parameters but no entry in tests/support/owned.py PATH_OBJECTS")
    return PATH_OBJECTS[path]


def path_values(path: str, objects: dict[str, Any]) -> dict[str, Any]:
    """The path parameters that name ``objects``' own objects on ``path``."""
    values = {}
    for name, (key, attribute) in object_for_path(path).items():
        value = objects[key]
        values[name] = getattr(value, attribute) if attribute else value
    return values


def seed_owned_objects(user, *, shared_data_dir: Path | None = None) -> dict[str, Any]:
    """Create one of each owned object for ``user``. With ``shared_data_dir`` the backtest
    really runs (real candles, stored results); without it the run stays queued."""
    from apps.backtests.models import BacktestRun, Optimization, Strategy, StrategyVersion
    from apps.backtests.services import backtest_create, backtest_execute
    from apps.bots.models import BotEvent, BotReplay
    from apps.bots.services.signals import bot_webhook_rotate
    from apps.core.jobs import JobStatus
    from apps.marketdata.models import ImportJob
    from apps.orders.models import Position
    from apps.risk.models import (
        KillSwitchActivation,
        NotificationChannel,
        NotificationDelivery,
        RiskAlert,
        RiskLimit,
    )
    from tests.backtests.api_support import SMA_BODY, USER_SIGNAL_CODE, import_candles
    from tests.factories import (
        BotFactory,
        ExchangeConnectionFactory,
        FillFactory,
        MarketFactory,
        OrderFactory,
        PaperAccountFactory,
        SubscriptionFactory,
    )

    now = timezone.now()
    objects: dict[str, Any] = {"user": user}
    objects["market"] = market = MarketFactory()
    objects["paper_account"] = account = PaperAccountFactory(user=user)
    objects["connection"] = ExchangeConnectionFactory(user=user)
    objects["bot"] = bot = BotFactory(owner=user)
    BotEvent.objects.create(bot=bot, kind="lifecycle", message="seeded")
    objects["order"] = order = OrderFactory(owner=user, paper_account=account, bot=bot)
    objects["fill"] = FillFactory(order=order)
    objects["position"] = Position.objects.create(
        owner=user, paper_account=account, symbol="BTC/USDT", side="long", size=Decimal("0.5"),
        average_entry=Decimal("64000"),
    )  # fmt: skip
    objects["subscription"] = SubscriptionFactory(user=user, market=market)
    if shared_data_dir is not None:
        import_candles(shared_data_dir, "1h")
        run = backtest_create(user=user, data=dict(SMA_BODY), enqueue=False)
        assert backtest_execute(run_id=run.id) == JobStatus.COMPLETED
    else:
        run = BacktestRun.objects.create(
            owner=user, strategy_kind="builtin", strategy_name="sma_crossover", params={"fast": 10, "slow": 30},
            exchange="binance", symbol="BTC/USDT", timeframe="1h", initial_cash=Decimal("10000"),
            config={"initial_cash": 10000.0},
        )  # fmt: skip
    objects["backtest"] = run
    objects["strategy"] = strategy = Strategy.objects.create(
        owner=user, name=f"seeded {user.pk}", source=USER_SIGNAL_CODE
    )
    StrategyVersion.objects.create(
        strategy=strategy, version=1, name=strategy.name, source=strategy.source, code_hash="0" * 64
    )
    objects["optimization"] = Optimization.objects.create(
        owner=user, strategy_kind="builtin", strategy_name="sma_crossover", params={"slow": 40},
        exchange="binance", symbol="BTC/USDT", timeframe="1h", kind="grid", initial_cash=Decimal("1000"),
    )  # fmt: skip
    objects["replay"] = BotReplay.objects.create(
        owner=user, bot=bot, start=now - timedelta(days=30), end=now, strategy=bot.strategy, params=bot.params
    )
    webhook_bot = BotFactory(owner=user, source="webhook", strategy="", params={}, status="running")
    objects["webhook_bot"] = webhook_bot
    objects["webhook_token"] = bot_webhook_rotate(bot=webhook_bot)
    objects["import_job"] = ImportJob.objects.create(
        user=user, kind="download", exchange="binance", symbol="BTC/USDT", timeframe="1h"
    )
    objects["limit"] = limit = RiskLimit.objects.create(owner=user, kind="open_orders", value=Decimal("50"))
    objects["alert"] = RiskAlert.objects.create(
        owner=user, limit=limit, key=f"seeded-{user.pk}", kind=limit.kind, severity="warning",
        message="seeded alert", last_seen_at=now,
    )  # fmt: skip
    objects["activation"] = KillSwitchActivation.objects.create(
        owner=user, engaged_by=user, released_at=now, released_by=user
    )
    objects["channel"] = channel = NotificationChannel.objects.create(
        owner=user, kind="email", name="seeded", events=["risk_alert"], email="seeded@example.com"
    )
    objects["delivery"] = NotificationDelivery.objects.create(
        owner=user, channel=channel, event="risk_alert", payload={"message": "seeded"}
    )
    return objects


def dashboard_pages(objects: dict[str, Any]) -> list[str]:
    """The dashboard's pages for the owner of ``objects`` (the Swagger UI and the admin too)."""
    bot, run, strategy = objects["bot"].pk, objects["backtest"].pk, objects["strategy"].pk
    return [
        "/",
        "/markets/",
        "/markets/chart/?exchange=binance&symbol=BTC/USDT&timeframe=1h",
        "/backtests/",
        "/backtests/new/",
        f"/backtests/{run}/",
        f"/backtests/compare/?ids={run}",
        "/backtests/strategies/",
        f"/backtests/strategies/{strategy}/",
        "/backtests/optimizations/",
        f"/backtests/optimizations/{objects['optimization'].pk}/",
        "/bots/",
        "/bots/new/",
        f"/bots/{bot}/",
        f"/bots/{objects['webhook_bot'].pk}/",
        "/orders/",
        "/portfolio/",
        "/risk/",
        "/exchanges/",
        "/accounts/settings/",
        "/accounts/password/change/",
        "/jobs/",
        "/ops/jobs/",  # staff pages: the callers' users are staff
        "/ops/cache/",
        "/api/docs/",
        "/admin/",
    ]
