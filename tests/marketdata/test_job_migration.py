"""Existing import jobs survive the move to the core ``Job`` model."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("marketdata", "0002_candle_market_no_index_no_constraint")]
AFTER = [("marketdata", "0004_importjob_core_job")]


def test_done_becomes_completed_progress_becomes_a_percent_and_errors_are_kept(user):
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps.get_model("marketdata", "ImportJob")
    done = old.objects.create(
        user_id=user.id, kind="import", exchange="binance", symbol="BTC/USDT", timeframe="1m",
        state="done", progress=100.0, inserted=5,
    )  # fmt: skip
    failed = old.objects.create(
        user_id=user.id, kind="download", exchange="binance", symbol="BTC/USDT", timeframe="1h",
        state="failed", progress=42.7, error="ExchangeUnavailable('x')", human_readable_error="Cannot reach binance",
    )  # fmt: skip
    try:
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        new = executor.loader.project_state(AFTER).apps.get_model("marketdata", "ImportJob")
        row = new.objects.get(id=done.id)
        assert (row.status, row.progress, row.inserted, row.error) == ("completed", 100, 5, "")
        row = new.objects.get(id=failed.id)
        assert (row.status, row.progress, row.error_code) == ("failed", 42, "error")
        assert row.error == "Cannot reach binance" and row.error_detail == "ExchangeUnavailable('x')"
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
