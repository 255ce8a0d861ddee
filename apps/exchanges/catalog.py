"""The one catalog of supported exchanges, with what each one needs (shown as help on the add form).

Connections, bots, orders, user preferences and market data (downloads, live
prices, the Markets page) all accept exactly these ccxt ids.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExchangeInfo:
    id: str  # ccxt exchange id
    name: str
    needs_passphrase: bool = False
    has_testnet: bool = True
    futures: bool = False
    help: str = ""

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "needs_passphrase": self.needs_passphrase,
            "has_testnet": self.has_testnet,
            "futures": self.futures,
            "help": self.help,
        }


SUPPORTED_EXCHANGES: dict[str, ExchangeInfo] = {
    info.id: info
    for info in (
        ExchangeInfo(
            "binance",
            "Binance (spot)",
            help="API Management -> Create API. Enable Reading and Spot trading; leave Withdrawals OFF. "
            "Testnet keys come from testnet.binance.vision.",
        ),
        ExchangeInfo(
            "binanceusdm",
            "Binance USD-M futures",
            futures=True,
            help="Same key as Binance spot with 'Enable Futures' ticked. Testnet: testnet.binancefuture.com.",
        ),
        ExchangeInfo(
            "bybit",
            "Bybit",
            futures=True,
            help="API -> Create New Key (System-generated). Read-Write, Spot + Derivatives; no Withdraw. "
            "Testnet: testnet.bybit.com.",
        ),
        ExchangeInfo(
            "okx",
            "OKX",
            needs_passphrase=True,
            futures=True,
            help="API -> Create V5 API key; the passphrase you choose there is required here. "
            "Permissions Read + Trade only. 'Testnet' uses OKX demo trading.",
        ),
        ExchangeInfo(
            "kucoin",
            "KuCoin",
            needs_passphrase=True,
            help="API Management -> Create API; enter its API passphrase. General + Trade; no Transfer.",
        ),
        ExchangeInfo(
            "kraken",
            "Kraken",
            has_testnet=False,
            help="Security -> API -> Add key. Query Funds, Query/Create/Cancel Orders; no Withdraw Funds.",
        ),
        ExchangeInfo(
            "coinbase",
            "Coinbase Advanced",
            has_testnet=False,
            help="Developer platform -> API key (name + private key as the secret). View + Trade only.",
        ),
    )
}


def exchange_choices() -> list[tuple[str, str]]:
    return [(info.id, info.name) for info in SUPPORTED_EXCHANGES.values()]


def exchange_name(exchange: str) -> str:
    """The display name of a ccxt id (the id itself, titled, for one outside the catalog)."""
    info = SUPPORTED_EXCHANGES.get(exchange)
    return info.name if info else exchange.title()
