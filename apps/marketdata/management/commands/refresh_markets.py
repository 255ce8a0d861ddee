from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import DomainError
from apps.marketdata.download import markets_refresh
from apps.marketdata.offline_markets import OFFLINE_MARKETS
from apps.marketdata.services import market_ensure


class Command(BaseCommand):
    help = "Load the market catalog through ccxt load_markets(); --offline installs the built-in catalog instead."

    def add_arguments(self, parser):
        parser.add_argument("--exchange", action="append", help="ccxt id, repeatable (default binance)")
        parser.add_argument("--offline", action="store_true", help="install the built-in offline catalog")

    def handle(self, *args, **options):
        exchanges = options["exchange"] or ["binance"]
        if options["offline"]:
            for exchange in exchanges:
                specs = OFFLINE_MARKETS.get(exchange, [])
                for spec in specs:
                    market_ensure(exchange=exchange, symbol=spec["symbol"])
                self.stdout.write(f"{exchange}: {len(specs)} markets from the built-in catalog")
            return
        for exchange in exchanges:
            try:
                count = markets_refresh(exchange=exchange)
            except DomainError as exc:
                raise CommandError(f"{exc.message} (use --offline for the built-in catalog)") from exc
            self.stdout.write(self.style.SUCCESS(f"{exchange}: {count} markets loaded through ccxt"))
