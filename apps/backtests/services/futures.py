"""What a futures run takes from market data besides its candles: mark-price candles and funding history.

``futures_inputs`` is the one place that decides, for the run task, optimizations
and the CLI alike: mark-price candles of the run's market and timeframe are
attached when stored (else the engine uses the last price and says so), and
funding comes from the stored history by default, or is off or a constant
when asked. The result's info says which was used (``funding_source``,
``funding_note``; the engine adds ``price_source``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from apps.backtests.engine import BacktestConfig, Candles
from apps.backtests.specs import FUNDING_CONSTANT, FUNDING_HISTORY, FUNDING_NONE, FUNDING_SERIES


@dataclass
class FuturesInputs:
    candles: Candles
    config: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


def funding_note(source: str, config: dict[str, Any], events: int = 0, market_label: str = "") -> str:
    """The sentence the result gives for where its funding came from."""
    if source == FUNDING_HISTORY:
        return (
            f"funding from the stored history of {market_label}: {events} funding events in the run's range"
        )
    if source == FUNDING_CONSTANT:
        return f"constant funding rate {config.get('funding_rates')} every 8 hours, as asked"
    if source == FUNDING_SERIES:
        return f"the funding series given with the request ({events} events)"
    return "no funding, as asked"


def futures_inputs(
    *,
    exchange: str,
    symbol: str,
    timeframe: str,
    candles: Candles,
    config: dict[str, Any] | BacktestConfig,
    funding_source: str,
) -> FuturesInputs:
    """Attach stored mark-price candles and funding history to a futures run (spot runs pass through).

    ``funding_source`` is what the request asked (``specs.FUNDING_*``); with
    ``history`` and nothing stored in the range the run has no funding, and
    ``info["funding_source"]`` says ``none`` with the reason in ``funding_note``.
    """
    config = config.to_dict() if isinstance(config, BacktestConfig) else dict(config)
    if config.get("market_type") != "futures" or len(candles) == 0:
        return FuturesInputs(candles, config)
    from apps.core.errors import NotFound
    from apps.marketdata.selectors import funding_rates, mark_candles, market_get

    market_label = f"{exchange} {symbol}"
    try:
        market = market_get(exchange=exchange, symbol=symbol)
    except NotFound:  # candles from a file (CLI) for a market the store does not know
        market = None
    first, last = int(candles.timestamp[0]), int(candles.timestamp[-1])
    if market is not None:
        mark = mark_candles(market=market, timeframe=timeframe, start_ms=first, end_ms=last + 1)
        if mark is not None:
            candles = candles.with_mark(mark)
    info: dict[str, Any] = {}
    source = funding_source or FUNDING_NONE
    events = 0
    if source == FUNDING_HISTORY:
        history = (
            # The engine charges an event at the first candle opening at or after it: later ones never apply.
            funding_rates(market=market, start_ms=first, end_ms=last + 1) if market is not None else []
        )
        if history:
            config["funding_rates"] = history
            events = len(history)
        else:
            config["funding_rates"] = None
            info["funding_source"] = FUNDING_NONE
            info["funding_note"] = (
                f"no funding history is stored for {market_label} in the run's range, so the run has "
                "no funding; download it (manage.py download_funding, or watch the perpetual market) "
                "or give a constant rate"
            )
            return FuturesInputs(candles, config, info)
    elif source == FUNDING_NONE:
        config["funding_rates"] = None
    elif source == FUNDING_SERIES:
        events = len(config.get("funding_rates") or [])
    info["funding_source"] = source
    info["funding_note"] = funding_note(source, config, events, market_label)
    if events:
        info["funding_events"] = events
    return FuturesInputs(candles, config, info)
