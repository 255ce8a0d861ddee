"""The admin account: ``createsuperuser`` with the email login (as the README says), and the demo's
``seed_demo_admin`` (run by ``seed_demo``), whose login opens ``/admin/``."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

from apps.accounts.management.commands.seed_demo_admin import ADMIN_EMAIL
from apps.accounts.models import User
from apps.core.management.commands.seed_demo import APP_SEED_COMMANDS
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def seed_admin(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("seed_demo_admin", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def opens_admin(client, email: str, password: str) -> bool:
    client.logout()
    response = client.post("/admin/login/?next=/admin/", {"username": email, "password": password})
    return response.status_code == 302 and client.get("/admin/").status_code == 200


def test_the_demo_admin_gets_a_generated_password_printed_once(client, settings):
    settings.DEMO_ADMIN_PASSWORD = ""
    out, _ = seed_admin()
    password = re.search(r"password (\S+)\s+\(shown this once\)", out).group(1)
    assert ADMIN_EMAIL in out and len(password) >= 16
    admin = User.objects.get(email=ADMIN_EMAIL)
    assert admin.is_staff and admin.is_superuser
    assert opens_admin(client, ADMIN_EMAIL, password)
    # Idempotent: a second run neither prints the password nor changes it.
    again, _ = seed_admin()
    assert password not in again and "changepassword" in again
    assert User.objects.filter(email=ADMIN_EMAIL).count() == 1
    assert opens_admin(client, ADMIN_EMAIL, password)


def test_a_second_demo_gets_another_password(settings):
    settings.DEMO_ADMIN_PASSWORD = ""
    first = re.search(r"password (\S+)\s+\(shown", seed_admin()[0]).group(1)
    User.objects.filter(email=ADMIN_EMAIL).delete()
    second = re.search(r"password (\S+)\s+\(shown", seed_admin()[0]).group(1)
    assert first != second


def test_demo_admin_password_from_the_environment_is_used_kept_and_never_echoed(client, settings):
    settings.DEMO_ADMIN_PASSWORD = "correct horse battery staple"
    out, _ = seed_admin()
    assert "DEMO_ADMIN_PASSWORD" in out and "correct horse" not in out
    assert opens_admin(client, ADMIN_EMAIL, "correct horse battery staple")
    settings.DEMO_ADMIN_PASSWORD = "another long passphrase"
    out, _ = seed_admin()
    assert "updated" in out
    assert opens_admin(client, ADMIN_EMAIL, "another long passphrase")
    assert not opens_admin(client, ADMIN_EMAIL, "correct horse battery staple")


def test_a_trader_who_registered_the_admin_address_is_not_made_an_admin(settings):
    settings.DEMO_ADMIN_PASSWORD = "correct horse battery staple"
    trader = UserFactory(email=ADMIN_EMAIL)
    out, err = seed_admin()
    assert "not an admin" in err and "password" not in out
    trader.refresh_from_db()
    assert not trader.is_staff and not trader.is_superuser
    assert not trader.check_password("correct horse battery staple")


def test_another_email_for_the_demo_admin(client, settings):
    settings.DEMO_ADMIN_PASSWORD = "correct horse battery staple"
    seed_admin("--email", "Ops@Example.org")
    assert opens_admin(client, "ops@example.org", "correct horse battery staple")


def test_seed_demo_runs_the_admin_seed():
    assert "seed_demo_admin" in APP_SEED_COMMANDS


def test_createsuperuser_with_the_email_login_as_the_readme_says(client, monkeypatch):
    # README: DJANGO_SUPERUSER_PASSWORD=... python manage.py createsuperuser --noinput --email ...
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a long admin passphrase")
    call_command("createsuperuser", "--noinput", "--email", "root@example.com", stdout=io.StringIO())
    admin = User.objects.get(email="root@example.com")
    assert admin.is_staff and admin.is_superuser
    assert opens_admin(client, "root@example.com", "a long admin passphrase")
