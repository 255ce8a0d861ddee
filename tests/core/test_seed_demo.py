from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.accounts.management.commands.seed_demo_admin import ADMIN_EMAIL
from apps.accounts.models import User
from apps.core.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


def test_seed_demo_creates_a_working_demo_login_and_is_idempotent(client):
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    call_command("seed_demo", stdout=io.StringIO())
    assert DEMO_EMAIL in out.getvalue() and DEMO_PASSWORD in out.getvalue()
    assert User.objects.filter(email=DEMO_EMAIL).count() == 1
    # ... and the admin account, whose login it prints too (tests/accounts/test_admin_account.py).
    assert ADMIN_EMAIL in out.getvalue()
    assert User.objects.get(email=ADMIN_EMAIL).is_superuser
    assert client.login(email=DEMO_EMAIL, password=DEMO_PASSWORD)
