"""Security settings and guards: the deployment check, HSTS behind TLS, the CSP header, CSRF on
every dashboard form, password reset links that expire (docs/security.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth.tokens import PasswordResetTokenGenerator, default_token_generator
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tests.factories import UserFactory
from tests.support.owned import dashboard_pages, seed_owned_objects

ROOT = Path(__file__).resolve().parents[2]


def production_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        # DJANGO_ALLOW_ASYNC_UNSAFE: set by the browser tests' fixture for this process only.
        if key
        not in (
            "DATABASE_URL",
            "REDIS_URL",
            "DJANGO_DEBUG",
            "PYTEST_XDIST_WORKER",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        )
    }
    env.update(
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY="prod-" + "k3y" * 20 + "-9f8e7d6c5b4a",
        DJANGO_ALLOWED_HOSTS="trading.example.com",
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        **extra,
    )
    return env


def test_production_settings_pass_the_deployment_check_with_no_warning():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_is_https_only_with_hsts_behind_a_tls_proxy():
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'hsts': s.SECURE_HSTS_SECONDS, 'sub': s.SECURE_HSTS_INCLUDE_SUBDOMAINS, 'redirect': s.SECURE_SSL_REDIRECT,"
        "'proxy': s.SECURE_PROXY_SSL_HEADER, 'session': s.SESSION_COOKIE_SECURE, 'csrf': s.CSRF_COOKIE_SECURE,"
        "'debug': s.DEBUG}))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["hsts"] >= 365 * 24 * 3600 and values["sub"] and values["redirect"]
    # The TLS proxy says the request was https: without this, the redirect would loop.
    assert values["proxy"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["session"] and values["csrf"] and values["debug"] is False


@pytest.mark.django_db
def test_hsts_is_sent_on_https_requests_through_the_proxy(client, settings):
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    secure = client.get("/health/", headers={"x-forwarded-proto": "https"})
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")
    plain = client.get("/health/")
    assert "Strict-Transport-Security" not in plain  # HSTS is only ever sent over TLS


@pytest.mark.django_db
def test_every_page_sends_the_content_security_policy(client, user):
    client.force_login(user)
    policy = client.get("/")["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "Content-Security-Policy" in client.get("/accounts/login/")


def test_no_template_has_an_inline_script_or_event_handler():
    import re

    inline = re.compile(
        r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>|\son[a-z]+\s*=", re.IGNORECASE
    )
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "templates").rglob("*.html"))
        + sorted((ROOT / "apps").rglob("templates/**/*.html"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if inline.search(line)
    ]
    assert found == []


# ---------------------------------------------------------------------------- CSRF
class _Forms(HTMLParser):
    def __init__(self, page: str) -> None:
        super().__init__()
        self.page, self.posts = page, []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form" and (attributes.get("method") or "get").lower() == "post":
            self.posts.append(attributes.get("action") or self.page)


def post_forms(client: Client, pages: list[str]) -> set[str]:
    actions = set()
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, (page, response.status_code)
        parser = _Forms(page)
        parser.feed(response.content.decode())
        actions.update(parser.posts)
    return actions


@pytest.mark.django_db
def test_every_dashboard_form_refuses_a_post_without_the_csrf_token():
    user = UserFactory(is_staff=True)
    objects = seed_owned_objects(user)
    anonymous = post_forms(Client(), ["/accounts/login/", "/accounts/register/", "/accounts/password/reset/"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    signed_in = post_forms(client, dashboard_pages(objects))
    assert len(signed_in) > 15  # the forms were found: bots, orders, risk, exchanges, settings, ...

    refused, accepted = [], []
    for actions, who in ((anonymous, Client(enforce_csrf_checks=True)), (signed_in, client)):
        for action in sorted(actions):
            if who.post(action, {}).status_code != 403:
                accepted.append(action)
            # With the token the same post is not refused for CSRF (the check is the token).
            who.get("/accounts/login/")
            token = who.cookies["csrftoken"].value
            if who.post(action, {"csrfmiddlewaretoken": token}).status_code == 403:
                refused.append(action)
            if who is client:
                client.force_login(user)  # a form may have logged the user out (the logout button)
    assert accepted == []
    assert refused == []


# ------------------------------------------------------------------ password reset
@pytest.mark.django_db
def test_a_password_reset_link_works_within_the_timeout_and_not_after(client, settings):
    settings.PASSWORD_RESET_TIMEOUT = 3600
    user = UserFactory()
    uid = urlsafe_base64_encode(force_bytes(user.pk))

    class IssuedEarlier(PasswordResetTokenGenerator):
        def _now(self):
            return datetime.now() - timedelta(seconds=3601)

    fresh = default_token_generator.make_token(user)
    stale = IssuedEarlier().make_token(user)

    expired = client.get(f"/accounts/password/reset/{uid}/{stale}/", follow=True)
    assert "invalid or has expired" in expired.content.decode()
    valid = client.get(f"/accounts/password/reset/{uid}/{fresh}/", follow=True)
    assert valid.context["validlink"] is True


def test_the_reset_timeout_is_an_hour_by_default():
    from django.conf import settings

    assert settings.PASSWORD_RESET_TIMEOUT == 3600
