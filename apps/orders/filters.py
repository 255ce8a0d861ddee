"""Query filters shared by the orders API and the orders page."""

from __future__ import annotations

import django_filters
from django import forms

from apps.orders.models import Order


class IdFilter(django_filters.NumberFilter):
    field_class = forms.IntegerField  # NumberFilter's DecimalField would truncate ?bot=1.5 to bot 1


class AccountField(forms.RegexField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("error_messages", {"invalid": "use paper:<id> or connection:<id>"})
        super().__init__(r"^(paper|connection):[0-9]+$", *args, **kwargs)


class AccountFilter(django_filters.CharFilter):
    field_class = AccountField


class OrderFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=Order.Status.choices)
    side = django_filters.ChoiceFilter(choices=Order.Side.choices)
    symbol = django_filters.CharFilter(field_name="symbol", lookup_expr="iexact")
    # A plain id, not a model choice: the queryset is already the user's, so
    # another user's bot id simply matches nothing.
    bot = IdFilter(field_name="bot_id")
    # One parameter for either kind of account, as the order ticket names them.
    account = AccountFilter(
        method="filter_account",
        label="paper:<paper account id> or connection:<connection id>",
    )
    # A choice, not a BooleanFilter: its widget reads "maybe" as "no filter" instead of refusing it.
    open = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_open",
        label="true: only orders that may still fill; false: only finished ones",
    )

    class Meta:
        model = Order
        fields = ["status", "side", "symbol", "bot", "account", "open"]

    def filter_open(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.open() if value == "true" else queryset.exclude(status__in=Order.OPEN_STATUSES)

    def filter_account(self, queryset, name, value):
        if not value:
            return queryset
        kind, _, pk = value.partition(":")
        return queryset.filter(**{"paper_account_id" if kind == "paper" else "connection_id": int(pk)})
