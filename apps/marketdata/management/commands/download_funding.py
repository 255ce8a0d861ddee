from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import DomainError
from apps.marketdata.funding import funding_rates_download
from apps.marketdata.management.commands.download_candles import parse_date


class Command(BaseCommand):
    help = (
        "Download a perpetual market's funding-rate history through ccxt fetch_funding_rate_history "
        "(paged), resuming after the last stored funding event."
    )

    def add_arguments(self, parser):
        parser.add_argument("--exchange", default="binanceusdm")
        parser.add_argument(
            "--symbol", required=True, action="append", help="repeatable: --symbol BTC/USDT:USDT ..."
        )
        parser.add_argument("--start", type=parse_date, help="ISO date (UTC); default: resume / last year")
        parser.add_argument("--end", type=parse_date, help="ISO date (UTC); default: now")

    def handle(self, *args, **options):
        for symbol in options["symbol"]:
            try:
                report = funding_rates_download(
                    exchange=options["exchange"], symbol=symbol, start=options["start"], end=options["end"]
                )
            except DomainError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(self.style.SUCCESS(report.summary()))
