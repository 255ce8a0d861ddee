"""Query filters shared by the orders API and the orders page."""

from __future__ import annotations

import django_filters
from django import forms

from apps.orders.models import Order


class IdFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField  # NumberFilter's DecimalField would truncate ?bot=1.5 to bot 1


class OrderFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Order.Status.choices)
    side = django_filters.ChoiceFilter(choices=Order.Side.choices)
    symbol = django_filters.CharFilter(field_name="symbol", lookup_expr="iexact")
    # A plain id, not a model choice: the queryset is already the user's, so
    # another user's bot id simply matches nothing.
    bot = IdFilter(field_name="bot_id")
    # A choice, not a BooleanFilter: its widget reads "maybe" as "no filter" instead of refusing it.
    open = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_open",
        label="true: only orders that may still fill; false: only finished ones",
    )

    class Meta:
        model = Order
        fields = ["status", "side", "symbol", "bot", "open"]

    def filter_open(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.open() if value == "true" else queryset.exclude(status__in=Order.OPEN_STATUSES)
