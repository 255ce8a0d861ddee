"""Celery tasks: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from apps.core.schedules import Schedule

PERIODIC_TASKS: list[Schedule] = [
    Schedule(
        name="marketdata: publish prices of watched markets",
        task="apps.marketdata.tasks.poll_prices",
        seconds=settings.MARKETDATA_POLL_SECONDS,
    ),
    Schedule(
        name="marketdata: refresh the market catalog",
        task="apps.marketdata.tasks.refresh_markets",
        seconds=24 * 60 * 60,
        kwargs={"exchanges": ["binance"]},
    ),
    # Binance settles funding every 8 hours; checking hourly stores each event soon after it.
    Schedule(
        name="marketdata: download funding rates of watched perpetual markets",
        task="apps.marketdata.tasks.refresh_funding_rates",
        seconds=60 * 60,
    ),
]


@shared_task(name="apps.marketdata.tasks.poll_prices", ignore_result=True, acks_late=False)
def poll_prices() -> int:
    """Publish ``price`` events for every watched market (live ticker or replay feed)."""
    from apps.marketdata.live import prices_publish

    return prices_publish()


@shared_task(name="apps.marketdata.tasks.refresh_markets")
def refresh_markets(exchanges: list[str] | None = None) -> dict[str, int | str]:
    """Reload the catalog from ccxt; offline, the exchange is reported and skipped."""
    from apps.core.errors import DomainError
    from apps.marketdata.download import markets_refresh

    result: dict[str, int | str] = {}
    for exchange in exchanges or ["binance"]:
        try:
            result[exchange] = markets_refresh(exchange=exchange)
        except DomainError as exc:
            result[exchange] = exc.message
    return result


@shared_task(name="apps.marketdata.tasks.refresh_funding_rates")
def refresh_funding_rates() -> dict[str, str]:
    """Download new funding rates of every watched perpetual market; offline, each is reported and skipped."""
    from apps.marketdata.funding import funding_rates_refresh_watched

    return funding_rates_refresh_watched()


@shared_task(name="apps.marketdata.tasks.run_job", bind=True, acks_late=True)
def run_job(self, job_id: int, attempt: int = 1) -> None:
    """Run one candle import/download job (``ImportJob``)."""
    from apps.marketdata.jobs import job_run

    job_run(job_id=job_id, worker=self.request.hostname or "", attempt=attempt)
