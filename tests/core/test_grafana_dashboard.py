"""deploy/: the Grafana dashboard queries only metrics /metrics exports, and covers each area;
the Prometheus example scrapes /metrics with the bearer token."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "trading-platform.json"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
METRIC = re.compile(r"\b(trading_[a-z0-9_]+)\b")
# The sample names each family type exposes (the parser names a family without its suffix).
SUFFIXES = {
    "counter": ["_total"],
    "histogram": ["_bucket", "_sum", "_count"],
    "gauge": [""],
    "summary": ["_sum", "_count", ""],
}


def panels(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))  # collapsed rows keep theirs inside
    return found


def exported_sample_names(client, settings) -> set[str]:
    settings.METRICS_TOKEN = "dashboard-test-token"
    settings.PROMETHEUS_MULTIPROC_DIR = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer dashboard-test-token")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, [""]))
        names.update(sample.name for sample in family.samples)
    return names


def test_every_metric_the_dashboard_queries_is_exported(client, settings):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    assert len(exprs) >= 15
    queried = {name for expr in exprs for name in METRIC.findall(expr)}
    exported = exported_sample_names(client, settings)
    assert queried and queried <= exported, sorted(queried - exported)
    # Each area the dashboard promises has its panel.
    for name in [
        "trading_http_requests_total",
        "trading_http_request_duration_seconds_bucket",
        "trading_celery_tasks_total",
        "trading_celery_task_duration_seconds_bucket",
        "trading_celery_queue_length",
        "trading_bot_ticks_total",
        "trading_bot_tick_lag_seconds_bucket",
        "trading_orders",
        "trading_websocket_connections",
    ]:
        assert name in queried, name


def test_the_dashboard_is_importable(client):
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["uid"] == "${datasource}"
        assert all(t["refId"] and t["expr"].count("(") == t["expr"].count(")") for t in panel["targets"])
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def test_the_prometheus_example_scrapes_metrics_with_the_bearer_token():
    config = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "trading"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"].get("credentials_file") or job["authorization"].get("credentials")
