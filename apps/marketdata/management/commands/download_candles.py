from __future__ import annotations

import sys
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import DomainError
from apps.marketdata.download import PRICES, candles_download
from apps.marketdata.management.commands._progress import progress_bar
from apps.marketdata.timeframes import TIMEFRAMES


def parse_date(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Download candles through ccxt fetch_ohlcv (paged, rate limited, retried with backoff), "
        "resuming after the last stored candle."
    )

    def add_arguments(self, parser):
        parser.add_argument("--exchange", default="binance")
        parser.add_argument(
            "--symbol", required=True, action="append", help="repeatable: --symbol BTC/USDT ..."
        )
        parser.add_argument("--timeframe", default="1h", choices=TIMEFRAMES)
        parser.add_argument(
            "--start", type=parse_date, help="ISO date (UTC); default: resume / last 1000 candles"
        )
        parser.add_argument("--end", type=parse_date, help="ISO date (UTC); default: now")
        parser.add_argument(
            "--price",
            default="last",
            choices=PRICES,
            help="last: trade candles (default); mark: a futures/swap market's mark-price candles",
        )
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        for symbol in options["symbol"]:
            try:
                with progress_bar(
                    f"{symbol} {options['timeframe']}",
                    stream=sys.stderr,
                    disable=options["no_progress"] or not sys.stderr.isatty(),
                ) as progress:
                    report = candles_download(
                        exchange=options["exchange"],
                        symbol=symbol,
                        timeframe=options["timeframe"],
                        start=options["start"],
                        end=options["end"],
                        progress=progress,
                        price=options["price"],
                    )
            except DomainError as exc:
                raise CommandError(exc.message) from exc
            self.stdout.write(self.style.SUCCESS(report.summary()))
