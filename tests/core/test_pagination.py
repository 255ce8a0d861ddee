"""The API's paginator (apps.core.api.pagination): Django's pages, one query fewer when page 1 holds all."""

from __future__ import annotations

import pytest
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator

from apps.accounts.models import User
from apps.core.api.pagination import FirstPagePaginator
from tests.factories import OrderFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def users():
    UserFactory.create_batch(7)
    return User.objects.order_by("pk")


def pages(paginator_class, queryset, per_page, number, orphans=0):
    paginator = paginator_class(queryset, per_page, orphans=orphans)
    page = paginator.page(number)
    return list(page.object_list), paginator.count, paginator.num_pages, page.has_next(), page.has_previous()


@pytest.mark.parametrize(
    ("per_page", "number", "orphans"),
    [
        (10, 1, 0),
        (7, 1, 0),
        (6, 1, 0),
        (6, 2, 0),
        (3, 1, 0),
        (3, 3, 0),
        (5, 1, 2),
        (4, 1, 2),
        (3, 2, 1),
        (1, 7, 0),
    ],
)
def test_every_page_equals_djangos(users, per_page, number, orphans):
    assert pages(FirstPagePaginator, users, per_page, number, orphans) == pages(
        Paginator, users, per_page, number, orphans
    )


@pytest.mark.parametrize("number", [0, 9, "x", None])
def test_pages_that_do_not_exist_raise_as_djangos(users, number):
    for paginator_class in (FirstPagePaginator, Paginator):
        with pytest.raises((EmptyPage, PageNotAnInteger)) as raised:
            paginator_class(users, 3).page(number)
        assert raised.type in (EmptyPage, PageNotAnInteger)


def test_a_first_page_holding_every_row_costs_one_query(users, django_assert_num_queries):
    with django_assert_num_queries(1):
        _, count, num_pages, has_next, _ = pages(FirstPagePaginator, users, 10, 1)
    assert (count, num_pages, has_next) == (7, 1, False)
    with django_assert_num_queries(2):  # more rows than the page: the count is asked for
        _, count, num_pages, has_next, _ = pages(FirstPagePaginator, users, 5, 1)
    assert (count, num_pages, has_next) == (7, 2, True)


def test_the_api_counts_and_links_as_before(user):
    from rest_framework.test import APIClient

    OrderFactory.create_batch(3, owner=user)
    client = APIClient()
    client.force_authenticate(user)
    full = client.get("/api/v1/orders/").json()
    assert (full["count"], full["next"], len(full["results"])) == (3, None, 3)
    first = client.get("/api/v1/orders/?page_size=2").json()
    assert (first["count"], len(first["results"])) == (3, 2)
    assert "page=2" in first["next"]
    second = client.get(first["next"]).json()
    assert (second["count"], second["next"], len(second["results"])) == (3, None, 1)
    assert {o["id"] for o in first["results"] + second["results"]} == {o["id"] for o in full["results"]}
    assert client.get("/api/v1/orders/?page=3&page_size=2").status_code == 404
