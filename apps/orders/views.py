from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from apps.exchanges.gateway.paper import SIMULATED_TYPES
from apps.exchanges.models import ExchangeConnection
from apps.exchanges.services import paper_account_get_or_create
from apps.orders import selectors
from apps.orders.filters import OrderFilter
from apps.orders.models import Order


@login_required
def index(request):
    """Orders with filters and cancel, the manual order ticket, and positions with close."""
    filterset = OrderFilter(
        request.GET, queryset=selectors.order_list(user=request.user).select_related("bot")
    )
    orders = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    page = Paginator(orders, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("trades_page", None)
    paper = paper_account_get_or_create(user=request.user)
    trades = Paginator(selectors.fill_list(user=request.user), 25).get_page(request.GET.get("trades_page"))
    return render(
        request,
        "orders/index.html",
        {
            "section": "Orders",
            "page": page,
            "only_open": request.GET.get("open") == "true",
            "filtered": bool(query),
            "query": query.urlencode(),
            "filters": request.GET,
            "statuses": Order.Status.choices,
            "paper": paper,
            # The ticket offers a paper account only the order types the paper exchange simulates.
            "paper_types": ",".join(SIMULATED_TYPES),
            "connections": ExchangeConnection.objects.alive().filter(user=request.user).order_by("label"),
            "markets": selectors.ticket_markets(exchange=paper.exchange),
            "positions": selectors.position_list(user=request.user).filter(size__gt=0),
            "trades": trades,
            # For the filters: every account the user's orders may be in, and their bots.
            "accounts": selectors.order_account_choices(user=request.user),
            "bots": selectors.order_bot_choices(user=request.user),
        },
    )
