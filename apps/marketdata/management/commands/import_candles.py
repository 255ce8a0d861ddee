from __future__ import annotations

import re
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import DomainError
from apps.marketdata.management.commands._progress import progress_bar
from apps.marketdata.services import candles_import_file
from apps.marketdata.timeframes import TIMEFRAMES

# binance_BTCUSDT_1m.csv.gz (shared data) and BTCUSDT-1m-2024-01.zip (Binance public dumps)
NAME_PATTERNS = [
    re.compile(r"^(?P<exchange>[a-z]+)_(?P<symbol>[A-Z0-9]+)_(?P<timeframe>\d+[mhdwM])\."),
    re.compile(r"^(?P<symbol>[A-Z0-9]+)-(?P<timeframe>\d+[mhdwM])-\d{4}-\d{2}"),
]


def guess_from_name(name: str) -> dict[str, str]:
    for pattern in NAME_PATTERNS:
        match = pattern.match(name)
        if match:
            return {k: v for k, v in match.groupdict().items() if v}
    return {}


class Command(BaseCommand):
    help = (
        "Import candle files (Binance public-data CSV/zip dumps, or plain CSV timestamp,open,high,low,close,volume; "
        ".gz ok) into the candle store. Idempotent; a bad file is rejected whole, naming the line."
    )

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", type=Path)
        parser.add_argument("--exchange", help="ccxt exchange id (default: from the file name, else binance)")
        parser.add_argument("--symbol", help="BTC/USDT or BTCUSDT (default: from the file name)")
        parser.add_argument("--timeframe", choices=TIMEFRAMES, help="default: from the file name")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        failures = 0
        for path in options["files"]:
            guessed = guess_from_name(path.name)
            exchange = options["exchange"] or guessed.get("exchange") or "binance"
            symbol = options["symbol"] or guessed.get("symbol")
            timeframe = options["timeframe"] or guessed.get("timeframe")
            if not symbol or not timeframe:
                raise CommandError(
                    f"{path.name}: pass --symbol and --timeframe (not guessable from the name)"
                )
            try:
                with progress_bar(
                    path.name, stream=sys.stderr, disable=options["no_progress"] or not sys.stderr.isatty()
                ) as progress:
                    report = candles_import_file(
                        path=path, exchange=exchange, symbol=symbol, timeframe=timeframe, progress=progress
                    )
            except DomainError as exc:
                failures += 1
                self.stderr.write(
                    self.style.ERROR(f"FAILED {exc.message} (nothing was imported from this file)")
                )
                continue
            self.stdout.write(self.style.SUCCESS(report.summary()))
        if failures:
            raise CommandError(f"{failures} file(s) failed")
