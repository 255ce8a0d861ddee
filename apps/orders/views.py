from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from apps.orders import selectors
from apps.orders.filters import OrderFilter


@login_required
def index(request):
    filterset = OrderFilter(
        request.GET, queryset=selectors.order_list(user=request.user).select_related("bot")
    )
    orders = filterset.qs if filterset.is_valid() else filterset.queryset.none()
    page = Paginator(orders, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "orders/index.html",
        {
            "section": "Orders",
            "page": page,
            "only_open": request.GET.get("open") == "true",
            "filtered": bool(query),
            "query": query.urlencode(),
        },
    )
