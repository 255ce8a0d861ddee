"""A futures CLI run on a candle file reads no database unless asked (no django_db mark here on purpose)."""

from __future__ import annotations

from tests.backtests.test_futures_inputs import cli


def test_cli_futures_run_on_a_file_needs_no_database_unless_asked(shared_data_dir, tmp_path):
    file = str(shared_data_dir / "ohlcv" / "binanceusdm_XRPUSDT_5m.csv.gz")
    result = cli(tmp_path, "--data", file)
    assert (
        result["info"]["funding_source"] == "none" and "--funding history" in result["info"]["funding_note"]
    )
    assert result["info"]["price_source"] == "last"
