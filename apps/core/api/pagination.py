from __future__ import annotations

from django.core.paginator import Paginator
from rest_framework.pagination import PageNumberPagination


class FirstPagePaginator(Paginator):
    """Django's paginator, minus the ``COUNT`` query when the first page holds every row.

    Most lists a dashboard polls (a user's positions, bots, open orders) fit on one page:
    the first page is read with one row more than it shows, and when that row is not there
    the count is the rows read (one query instead of two). Otherwise the count is asked of
    the database as usual, when the response needs it.
    """

    def page(self, number):
        try:
            first = int(number) == 1
        except (TypeError, ValueError):
            first = False
        if not first or "count" in self.__dict__:
            return super().page(number)
        shown = self.per_page + self.orphans
        rows = list(self.object_list[: shown + 1])
        if len(rows) <= shown:
            self.__dict__["count"] = len(rows)  # Paginator.count is a cached_property
            return self._get_page(rows, 1, self)
        return self._get_page(rows[: self.per_page], 1, self)


class StandardPagination(PageNumberPagination):
    """Every list is paginated: ``?page=N&page_size=M`` (at most 500)."""

    django_paginator_class = FirstPagePaginator
    page_size_query_param = "page_size"
    max_page_size = 500
