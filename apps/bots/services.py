"""Writes for bots: create, update, delete. Start/stop belong to the bot runtime (a later issue)."""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction

from apps.backtests.engine.errors import ParamError
from apps.backtests.strategies.registry import UnknownStrategy, get_strategy_class
from apps.bots.models import Bot
from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.exchanges.catalog import SUPPORTED_EXCHANGES
from apps.exchanges.models import ExchangeConnection
from apps.exchanges.selectors import connection_get
from apps.marketdata.timeframes import TIMEFRAMES

# ccxt unified symbols: BASE/QUOTE for spot, BASE/QUOTE:SETTLE for swaps.
SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")
CONFIG_FIELDS = ("strategy", "params", "exchange", "symbol", "timeframe", "mode", "connection_id")
_UNSET: Any = object()


def _validated(*, user, bot: Bot | None, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` merged over ``bot``'s, checked as a whole; every problem is reported at once."""
    merged = {
        "name": bot.name if bot else "",
        "strategy": bot.strategy if bot else "",
        "params": bot.params if bot else {},
        "exchange": bot.exchange if bot else "",
        "symbol": bot.symbol if bot else "",
        "timeframe": bot.timeframe if bot else "",
        "mode": bot.mode if bot else Bot.Mode.PAPER,
        "connection_id": bot.connection_id if bot else None,
    }
    if bot and values.get("strategy", bot.strategy) != bot.strategy and "params" not in values:
        # The old strategy's parameters mean nothing to the new one: start from its defaults.
        merged["params"] = {}
    merged.update(values)
    errors: dict[str, list[str]] = {}

    name = str(merged["name"] or "").strip()
    if not name:
        errors["name"] = ["A name is required."]
    elif len(name) > Bot._meta.get_field("name").max_length:
        errors["name"] = ["At most 80 characters."]
    elif Bot.objects.filter(owner=user, name=name).exclude(pk=bot.pk if bot else None).exists():
        errors["name"] = ["You already have a bot with this name."]
    merged["name"] = name

    params = merged["params"] if merged["params"] is not None else {}
    if not isinstance(params, dict):
        errors["params"] = ["Expected a JSON object."]
    else:
        try:
            merged["params"] = get_strategy_class(merged["strategy"]).validate(params)
        except UnknownStrategy as exc:
            errors["strategy"] = [str(exc)]
        except ParamError as exc:
            errors["params"] = [f"{key}: {message}" for key, message in sorted(exc.fields.items())]

    if merged["exchange"] not in SUPPORTED_EXCHANGES:
        errors["exchange"] = [f"Unsupported exchange; use one of {', '.join(SUPPORTED_EXCHANGES)}."]
    symbol = str(merged["symbol"] or "").strip().upper()
    if not SYMBOL_RE.match(symbol):
        errors["symbol"] = ["Expected a ccxt symbol such as BTC/USDT or BTC/USDT:USDT."]
    merged["symbol"] = symbol
    if merged["timeframe"] not in TIMEFRAMES:
        errors["timeframe"] = [f"Unknown timeframe; use one of {', '.join(TIMEFRAMES)}."]
    if merged["mode"] not in Bot.Mode.values:
        errors["mode"] = [f"Use one of {', '.join(Bot.Mode.values)}."]

    connection: ExchangeConnection | None = None
    if merged["connection_id"] is not None:
        try:
            connection = connection_get(user=user, pk=merged["connection_id"])
        except NotFound:
            errors["connection"] = ["No such exchange connection."]
        else:
            if "exchange" not in errors and connection.exchange != merged["exchange"]:
                errors["connection"] = [
                    f"This connection is for {connection.exchange}, the bot trades on {merged['exchange']}."
                ]
    if merged["mode"] == Bot.Mode.LIVE and merged["connection_id"] is None:
        errors["connection"] = ["A live bot needs an exchange connection."]

    if errors:
        raise ValidationFailed("Invalid bot settings.", fields=errors)
    return merged


def _save(bot: Bot) -> Bot:
    try:
        # A savepoint, so that losing a race on the unique name leaves the caller's transaction usable.
        with transaction.atomic():
            bot.save()
    except IntegrityError as exc:
        raise ValidationFailed(
            "Invalid bot settings.", fields={"name": ["You already have a bot with this name."]}
        ) from exc
    return bot


@transaction.atomic
def bot_create(
    *,
    user,
    name: str,
    strategy: str,
    exchange: str,
    symbol: str,
    timeframe: str,
    params: dict[str, Any] | None = None,
    mode: str = Bot.Mode.PAPER,
    connection_id: int | None = None,
) -> Bot:
    """Create a stopped bot.

    The strategy parameters are validated against the strategy registry and
    stored with defaults filled in, so the runtime runs exactly what was saved.
    A live bot needs one of the user's exchange connections for the same exchange.
    Raises ``ValidationFailed`` with every invalid field.
    """
    values = _validated(
        user=user,
        bot=None,
        values={
            "name": name,
            "strategy": strategy,
            "params": params or {},
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": timeframe,
            "mode": mode,
            "connection_id": connection_id,
        },
    )
    return _save(Bot(owner=user, **values))


@transaction.atomic
def bot_update(*, bot: Bot, **changes: Any) -> Bot:
    """Change some of a bot's settings (the keyword names of ``bot_create``).

    The name can change at any time; the trading configuration only while the
    bot is not running or paused (``Conflict``), so the runtime never trades on
    settings that changed underneath it.
    """
    unknown = sorted(set(changes) - {"name", *CONFIG_FIELDS})
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(unknown)}.", fields={k: ["unknown field"] for k in unknown}
        )
    # Lock the row: the runtime changes ``status`` under the same lock.
    bot = Bot.objects.select_for_update().get(pk=bot.pk)
    if bot.is_active and any(field in changes for field in CONFIG_FIELDS):
        raise Conflict(f"Stop the bot before changing its trading settings (it is {bot.status}).")
    values = _validated(user=bot.owner, bot=bot, values=changes)
    for field, value in values.items():
        setattr(bot, field, value)
    return _save(bot)


@transaction.atomic
def bot_delete(*, bot: Bot) -> None:
    """Delete a stopped bot; any other status is a ``Conflict``. Its orders keep their history."""
    bot = Bot.objects.select_for_update().get(pk=bot.pk)
    if bot.status != Bot.Status.STOPPED:
        raise Conflict(f"Only a stopped bot can be deleted (it is {bot.status}).")
    bot.delete()
