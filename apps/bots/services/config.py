"""Bot settings: create, update and delete (update and delete only when stopped)."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction

from apps.backtests.engine.errors import ConfigError
from apps.backtests.engine.sizing import normalize_sizing
from apps.backtests.models import StrategyKind
from apps.backtests.specs import StrategyRef, resolve_strategy
from apps.bots.models import Bot
from apps.bots.services.log import bot_event_add
from apps.core.errors import Conflict, NotFound, ValidationFailed
from apps.exchanges.catalog import SUPPORTED_EXCHANGES
from apps.exchanges.models import ExchangeConnection
from apps.exchanges.selectors import connection_get
from apps.marketdata.timeframes import TIMEFRAMES

# ccxt unified symbols: BASE/QUOTE for spot, BASE/QUOTE:SETTLE for swaps.
SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}(:[A-Z0-9]{1,20})?$")
STRATEGY_FIELDS = ("strategy", "strategy_id", "strategy_version")
TRADING_FIELDS = (
    "params",
    "exchange",
    "symbol",
    "timeframe",
    "mode",
    "connection_id",
    "allocated_capital",
    "leverage",
    "margin_mode",
    "sizing",
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "warmup",
)
SETTINGS = ("name", "source", *STRATEGY_FIELDS, *TRADING_FIELDS, "confirm_live")
MAX_WARMUP = 5000


def _bot_ref(bot: Bot) -> StrategyRef:
    return StrategyRef(
        kind=bot.strategy_kind, name=bot.strategy, strategy=bot.user_strategy, version=bot.strategy_version
    )


def _fraction(value: Any) -> float | str | None:
    """A fraction in (0, 1), or an error message."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return "Expected a number such as 0.02 (2%)."
    try:
        number = float(value)
    except ValueError:
        return "Expected a number such as 0.02 (2%)."
    if not math.isfinite(number) or not 0 < number < 1:
        return "A fraction of the entry price between 0 and 1 (0.02 is 2%)."
    return number


def _validated(*, user, bot: Bot | None, values: dict[str, Any]) -> dict[str, Any]:
    """``values`` merged over ``bot``'s, checked as a whole; every problem is reported at once."""
    errors: dict[str, list[str]] = {}
    merged: dict[str, Any] = {
        "name": bot.name if bot else "",
        "params": bot.params if bot else {},
        "exchange": bot.exchange if bot else "",
        "symbol": bot.symbol if bot else "",
        "timeframe": bot.timeframe if bot else "",
        "mode": bot.mode if bot else Bot.Mode.PAPER,
        "connection_id": bot.connection_id if bot else None,
        "allocated_capital": bot.allocated_capital if bot else Decimal("1000"),
        "leverage": bot.leverage if bot else Decimal("1"),
        "margin_mode": bot.margin_mode if bot else Bot.MarginMode.ISOLATED,
        "sizing": bot.sizing if bot else {},
        "stop_loss": bot.stop_loss if bot else None,
        "take_profit": bot.take_profit if bot else None,
        "trailing_stop": bot.trailing_stop if bot else None,
        "warmup": bot.warmup if bot else None,
    }
    source = values.get("source") or (bot.source if bot else Bot.Source.STRATEGY)
    webhook = source == Bot.Source.WEBHOOK
    if source not in Bot.Source.values:
        errors["source"] = [f"Use one of {', '.join(Bot.Source.values)}."]
    strategy_given = any(values.get(f) not in (None, "") for f in STRATEGY_FIELDS)
    # A bot leaving the webhook for a strategy needs one; its empty name is no reference.
    strategy_changed = not webhook and (bot is None or strategy_given or not bot.strategy)
    ref: StrategyRef | None = _bot_ref(bot) if bot and bot.strategy and not webhook else None
    if webhook:
        # Signals decide; a strategy or its parameters would be silently ignored.
        for field in ("strategy", "strategy_id", "params"):
            if values.get(field) not in (None, "", {}):
                errors[field] = ["A webhook bot has no strategy; leave this out."]
    if strategy_changed:
        try:
            wanted = {f: values.get(f) for f in STRATEGY_FIELDS}
            if (
                bot
                and bot.user_strategy_id
                and wanted["strategy"] in (None, "")
                and not wanted["strategy_id"]
            ):
                wanted["strategy_id"] = bot.user_strategy_id  # re-pinning the same strategy's version
            ref = resolve_strategy(user=user, data=wanted)
        except ValidationFailed as exc:
            errors.update(exc.fields)
            ref = None
        if (
            bot
            and ref
            and "params" not in values
            and (ref.kind, ref.name) != (bot.strategy_kind, bot.strategy)
        ):
            # The old strategy's parameters mean nothing to the new one: start from its defaults.
            merged["params"] = {}
    merged.update({k: v for k, v in values.items() if k not in (*STRATEGY_FIELDS, "confirm_live", "source")})

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
    elif ref is not None:
        try:
            # The validation backtests use: built-ins through the registry (cross-field
            # rules too), user code through its pinned version's schema.
            merged["params"] = ref.validate_params(params)
        except ValidationFailed as exc:
            errors["params"] = [
                f"{k.removeprefix('params.')}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                for k, v in sorted(exc.fields.items())
            ]

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

    try:
        capital = Decimal(str(merged["allocated_capital"]))
        if not capital.is_finite() or capital <= 0:
            raise InvalidOperation
        merged["allocated_capital"] = capital
    except (InvalidOperation, ValueError):
        errors["allocated_capital"] = ["A positive amount of the quote currency."]
    if "symbol" not in errors:
        _check_futures(merged, errors)
    try:
        merged["sizing"] = normalize_sizing(merged["sizing"] or None)
    except ConfigError as exc:
        errors["sizing"] = [f"{k}: {v}" for k, v in sorted(exc.fields.items())]
    for field in ("stop_loss", "take_profit", "trailing_stop"):
        checked = _fraction(merged[field])
        if isinstance(checked, str):
            errors[field] = [checked]
        else:
            merged[field] = checked
    warmup = merged["warmup"]
    if warmup is not None and (
        isinstance(warmup, bool) or not isinstance(warmup, int) or not 2 <= warmup <= MAX_WARMUP
    ):
        errors["warmup"] = [f"A number of candles from 2 to {MAX_WARMUP}."]

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
    if merged["mode"] == Bot.Mode.LIVE:
        if merged["connection_id"] is None:
            errors["connection"] = ["A live bot needs an exchange connection."]
        elif (
            connection is not None
            and "connection" not in errors
            and (connection.read_only or not (connection.can_trade_spot or connection.can_trade_futures))
        ):
            errors["connection"] = ["This connection has no trading permission; test it or use another key."]
        going_live = bot is None or bot.mode != Bot.Mode.LIVE or "connection_id" in values
        if going_live and values.get("confirm_live") is not True:
            errors["confirm_live"] = ["A live bot trades real money: confirm with confirm_live=true."]

    if errors:
        raise ValidationFailed("Invalid bot settings.", fields=errors)
    merged["source"] = source
    if webhook:
        merged.update(
            strategy_kind=StrategyKind.BUILTIN,
            strategy="",
            user_strategy=None,
            strategy_version=None,
            code_hash="",
            params={},
        )
    elif ref is not None:
        merged.update(
            strategy_kind=ref.kind,
            strategy=ref.name,
            user_strategy=ref.strategy,
            strategy_version=ref.version,
            code_hash=ref.version.code_hash if ref.version else "",
        )
    return merged


def _check_futures(merged: dict[str, Any], errors: dict[str, list[str]]) -> None:
    """Leverage and margin mode: futures only, the leverage within the market's tiers.

    The limit is the one a futures backtest enforces (``BacktestConfig``): the first
    bracket's maximum leverage of the shipped Binance USD-M tiers of the symbol, else
    the flat bracket's. Spot bots keep 1x (and the default margin mode).
    """
    from apps.backtests.engine.tiers import resolve_tiers
    from apps.exchanges.gateway.paper import DEFAULT_MMR

    try:
        leverage = Decimal(str(merged["leverage"]))
        if not leverage.is_finite():
            raise InvalidOperation
    except (InvalidOperation, ValueError):
        errors["leverage"] = ["A number such as 3 (3x)."]
        return
    if ":" not in merged["symbol"]:
        if leverage != 1:
            errors["leverage"] = ["Spot has no leverage; use a futures symbol such as BTC/USDT:USDT."]
        if merged["margin_mode"] != Bot.MarginMode.ISOLATED:
            errors["margin_mode"] = ["Spot has no margin mode; use a futures symbol such as BTC/USDT:USDT."]
        merged["leverage"], merged["margin_mode"] = Decimal("1"), Bot.MarginMode.ISOLATED
        return
    if merged["margin_mode"] not in Bot.MarginMode.values:
        errors["margin_mode"] = [f"Use one of {', '.join(Bot.MarginMode.values)}."]
    tiers = resolve_tiers(None, merged["symbol"], DEFAULT_MMR)
    cap = tiers.max_leverage[0]
    if not 1 <= leverage <= Decimal(repr(cap)):
        errors["leverage"] = [f"Between 1 and {cap:g} on {merged['symbol']} ({tiers.source})."]
    elif leverage != leverage.quantize(Decimal("0.01")):
        errors["leverage"] = ["At most two decimal places."]
    merged["leverage"] = leverage


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
def bot_create(*, user, name: str, exchange: str, symbol: str, timeframe: str, **settings: Any) -> Bot:
    """Create a stopped bot (paper unless a live connection with trading permission is confirmed).

    ``source="webhook"`` makes a signal bot: no strategy, orders from webhook alerts;
    its secret token is generated and left on ``bot.webhook_token`` for the answer.
    Otherwise the strategy is a built-in ``strategy`` name or the user's ``strategy_id`` with
    an optional ``strategy_version`` (default: the latest, pinned). Parameters are
    validated by the strategy's schema and stored with defaults filled in, so the
    loop runs exactly what was saved. Other keywords: ``params``, ``mode``,
    ``connection_id``, ``confirm_live``, ``allocated_capital``, ``leverage`` and
    ``margin_mode`` (futures symbols ``BASE/QUOTE:SETTLE`` only), ``sizing``,
    ``stop_loss``, ``take_profit``, ``trailing_stop``, ``warmup``.
    Raises ``ValidationFailed`` with every invalid field.
    """
    _check_known(settings)
    values = _validated(
        user=user,
        bot=None,
        values={"name": name, "exchange": exchange, "symbol": symbol, "timeframe": timeframe, **settings},
    )
    bot = _save(Bot(owner=user, **values))
    bot_event_add(bot=bot, kind="lifecycle", message="Bot created (stopped).")
    if bot.source == Bot.Source.WEBHOOK:
        from apps.bots.services.signals import bot_webhook_rotate

        # Readable this once, for the answer to the owner; only its hash is stored.
        bot.webhook_token = bot_webhook_rotate(bot=bot)
    return bot


def _check_known(changes: dict[str, Any]) -> None:
    unknown = sorted(set(changes) - set(SETTINGS))
    if unknown:
        raise ValidationFailed(
            f"Unknown field(s): {', '.join(unknown)}.", fields={k: ["unknown field"] for k in unknown}
        )


@transaction.atomic
def bot_update(*, bot: Bot, **changes: Any) -> Bot:
    """Change some of a bot's settings (the keyword names of ``bot_create``).

    The name can change at any time; the strategy and trading settings only while
    the bot is stopped (``Conflict`` otherwise), so the loop never trades on
    settings that changed underneath it.
    """
    _check_known(changes)
    # Lock the row: the lifecycle services change ``status`` under the same lock.
    bot = Bot.objects.select_for_update().get(pk=bot.pk)
    if bot.status != Bot.Status.STOPPED and set(changes) - {"name"}:
        raise Conflict(f"Stop the bot before changing its trading settings (it is {bot.status}).")
    values = _validated(user=bot.owner, bot=bot, values=changes)
    market = (bot.symbol, bot.leverage, bot.margin_mode)
    for field, value in values.items():
        setattr(bot, field, value)
    bot = _save(bot)
    if bot.mode == Bot.Mode.PAPER and (bot.symbol, bot.leverage, bot.margin_mode) != market:
        from apps.bots.services.accounts import bot_paper_account_refit
        from apps.exchanges.gateway import ExchangeError

        try:
            bot_paper_account_refit(bot=bot)
        except ExchangeError as exc:  # a position is still open on the futures market
            raise Conflict(f"{exc.message} (close the bot's position first).") from exc
    return bot


@transaction.atomic
def bot_delete(*, bot: Bot) -> None:
    """Delete a stopped bot; any other status is a ``Conflict``. Its orders keep their history."""
    bot = Bot.objects.select_for_update().get(pk=bot.pk)
    if bot.status != Bot.Status.STOPPED:
        raise Conflict(f"Only a stopped bot can be deleted (it is {bot.status}).")
    bot.delete()
