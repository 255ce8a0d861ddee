from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from apps.portfolio import selectors

#: Metrics shown on the page, in order, with how to format them (the API has them all).
PAGE_METRICS = [
    ("total_return", "Total return", "pct"),
    ("annualized_return", "Annualized return", "pct"),
    ("volatility", "Volatility", "pct"),
    ("sharpe_ratio", "Sharpe", "ratio"),
    ("sortino_ratio", "Sortino", "ratio"),
    ("calmar_ratio", "Calmar", "ratio"),
    ("max_drawdown", "Max drawdown", "pct"),
    ("var_95", "VaR 95% (daily)", "pct"),
    ("cvar_95", "CVaR 95% (daily)", "pct"),
    ("beta", "Beta to BTC", "ratio"),
]
TRADE_METRICS = [
    ("total_trades", "Trades", "int"),
    ("win_rate", "Win rate", "pct"),
    ("profit_factor", "Profit factor", "ratio"),
    ("expectancy", "Average trade", "money"),
    ("avg_win", "Average win", "money"),
    ("avg_loss", "Average loss", "money"),
]


def _rows(values: dict, spec: list) -> list[dict]:
    return [
        {"name": name, "label": label, "kind": kind, "value": values.get(name)} for name, label, kind in spec
    ]


@login_required
def index(request):
    page = selectors.portfolio_page(user=request.user)
    if page["has_history"]:
        page["performance_rows"] = _rows(page["performance"], PAGE_METRICS)
        page["trading_rows"] = _rows(page["trading"], TRADE_METRICS)
    return render(request, "portfolio/index.html", {"section": "Portfolio", **page})
