"""The home page's reads: one owner-scoped view over the apps below (portfolio, orders, bots,
risk, market data), each through that app's own selectors.

The home app sits at the top of the import order because it reads every trading app;
nothing imports it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from apps.bots.models import Bot
from apps.bots.selectors import bot_list, bots_with_pnl
from apps.marketdata.live import watched_stats
from apps.orders.selectors import order_list
from apps.portfolio import selectors as portfolio
from apps.risk.selectors import risk_alert_list

#: The equity curve on the home page: the last month (the portfolio page has the year).
CURVE_DAYS = 30
#: Rows per table; each links to its full page.
OPEN_ORDERS = 20
ALERTS = 5

#: Bots shown on the home page: every one not stopped (an errored bot needs attention too).
SHOWN_BOT_STATUSES = [s for s in Bot.Status.values if s != Bot.Status.STOPPED]


def home_page(*, user) -> dict[str, Any]:
    """Everything the home page shows for ``user``; ``is_new`` when there is nothing to show yet."""
    bots = bots_with_pnl(
        list(bot_list(user=user).filter(status__in=SHOWN_BOT_STATUSES).order_by("name", "id"))
    )
    summary = portfolio.portfolio_summary(user=user)
    start = timezone.now() - timedelta(days=CURVE_DAYS)
    has_bots = bots or bot_list(user=user).exists()
    return {
        "is_new": not summary["accounts"] and not has_bots,
        "has_accounts": bool(summary["accounts"]),
        "summary": summary,
        "equity": portfolio.equity_curve(user=user, span=portfolio.Range(start, None)),
        "positions": portfolio.positions(user=user),
        "open_orders": list(order_list(user=user).open().order_by("-created_at", "-id")[:OPEN_ORDERS]),
        "bots": bots,
        "alerts": list(risk_alert_list(user=user)[:ALERTS]),
        "prices": watched_stats(user=user),
    }
