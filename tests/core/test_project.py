"""Project-level checks: API schema and docs, deploy settings, docker-compose, periodic tasks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.django_db
def test_openapi_schema_and_swagger_ui(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    body = schema.json()
    assert body["openapi"].startswith("3.")
    assert "/api/v1/auth/token/" in body["paths"]
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert "swagger" in docs.content.decode().lower()


def test_schema_generates_without_warnings():
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--fail-on-warn", "--file", os.devnull],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def test_production_settings_pass_check_deploy_without_warnings():
    env = {
        **os.environ,
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": "x" * 20 + "k3y-f0r-ch3ck-d3pl0y-0nly-" + "y" * 20,
        "DJANGO_ALLOWED_HOSTS": "trading.example.com",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    env.pop("DJANGO_DEBUG", None)
    # Set for this pytest process by the browser fixture; a real deployment never has it.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_secret_key():
    env = {
        **os.environ,
        "DJANGO_ENV": "production",
        "DJANGO_ALLOWED_HOSTS": "x",
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    env.pop("DJANGO_SECRET_KEY", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_docker_compose_is_valid():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "postgres", "redis"} <= set(services)
    for name in ("web", "worker", "beat"):
        service = services[name]
        assert "build" in service or "image" in service
        env = service.get("environment", {})
        assert "DATABASE_URL" in env and "REDIS_URL" in env
        assert set(service.get("depends_on", {})) >= {"postgres", "redis"}
    assert "celery" in " ".join(services["worker"]["command"])
    assert "beat" in " ".join(services["beat"]["command"])
    assert (ROOT / services["web"]["build"]["dockerfile"]).exists()
    for name in ("postgres", "redis"):
        assert "healthcheck" in services[name]


@pytest.mark.django_db
def test_periodic_tasks_are_installed_after_migrate():
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.filter(task="apps.core.tasks.heartbeat", enabled=True).exists()


def test_pages_load_no_asset_from_another_host():
    """Every JS/CSS asset comes from our static files, so the app works offline."""
    import re

    offenders = []
    for template in [*ROOT.glob("templates/**/*.html"), *ROOT.glob("apps/*/templates/**/*.html")]:
        for match in re.finditer(r'(?:src|href)="(https?:)?//[^"]+"', template.read_text()):
            offenders.append(f"{template.relative_to(ROOT)}: {match.group(0)}")
    assert offenders == []


@pytest.mark.django_db
def test_swagger_ui_assets_are_local(client):
    page = client.get("/api/docs/").content.decode()
    assert "cdn." not in page
    assert "/static/drf_spectacular_sidecar/" in page
