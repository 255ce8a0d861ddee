"""The create-bot form: strategy (built-in or your own, version chosen), its parameters
generated from the strategy's schema, market, account (paper by default) and risk defaults."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms

# The one place parameter inputs are built from a strategy's schema (backtest and
# optimization forms use the same), so a bot's form offers exactly the same inputs.
from apps.backtests.forms import StrategyOption, _param_field
from apps.bots.models import Bot
from apps.core.errors import NotFound
from apps.exchanges.catalog import exchange_choices
from apps.marketdata.timeframes import TIMEFRAME_CHOICES

PERCENT = Decimal(100)
DEFAULT_STRATEGY = "builtin:sma_crossover"


class VersionSelect(forms.Select):
    """Each version option says which strategy it belongs to (``data-strategy``), so the
    page offers only the chosen strategy's versions."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex, attrs)
        if value:
            option["attrs"]["data-strategy"] = "user:" + str(value).partition(":")[0]
        return option


class BotForm(forms.Form):
    name = forms.CharField(max_length=80)
    source = forms.ChoiceField(
        choices=Bot.Source.choices,
        initial=Bot.Source.STRATEGY,
        required=False,  # empty: a strategy bot
        label="Trades on",
        help_text="webhook: alerts (TradingView) posted to the bot's secret URL; no strategy",
    )
    strategy = forms.ChoiceField(required=False)
    strategy_version = forms.ChoiceField(
        required=False,
        label="Version",
        widget=VersionSelect,
        help_text="your strategies only: the code the bot runs, pinned when it is created",
    )
    exchange = forms.ChoiceField(choices=exchange_choices(), initial="binance")
    symbol = forms.CharField(max_length=60, initial="BTC/USDT")
    timeframe = forms.ChoiceField(choices=TIMEFRAME_CHOICES, initial="1h")
    connection = forms.TypedChoiceField(
        coerce=int,
        required=False,
        empty_value=None,
        label="Account",
        help_text="paper unless you choose a live key",
    )
    confirm_live = forms.BooleanField(required=False, label="I understand this bot trades real money")
    allocated_capital = forms.DecimalField(min_value=Decimal("0.00000001"), initial=Decimal("1000"))
    leverage = forms.DecimalField(
        required=False,
        min_value=1,
        max_digits=6,
        decimal_places=2,
        initial=Decimal("1"),
        help_text="futures only (a symbol such as BTC/USDT:USDT); the bot may then go short",
    )
    margin_mode = forms.ChoiceField(
        choices=Bot.MarginMode.choices,
        initial=Bot.MarginMode.ISOLATED,
        required=False,
        help_text="futures only",
    )
    size_percent = forms.DecimalField(
        required=False,
        min_value=Decimal("0.01"),
        max_value=100,
        label="Position size %",
        help_text="of the bot's equity per entry; empty: 100%",
    )
    stop_loss_percent = forms.DecimalField(required=False, min_value=0, max_value=99, label="Stop-loss %")
    take_profit_percent = forms.DecimalField(required=False, min_value=0, label="Take-profit %")
    trailing_stop_percent = forms.DecimalField(
        required=False, min_value=0, max_value=99, label="Trailing stop %"
    )
    warmup = forms.IntegerField(required=False, min_value=2, max_value=5000, help_text="candles per tick")

    def __init__(self, *args, strategies: list[StrategyOption], connections, versions=(), **kwargs):
        """``versions``: ``(strategy_id, version, created_at)`` of the user's strategies, newest first."""
        super().__init__(*args, **kwargs)
        self.strategies = strategies
        self.fields["strategy_version"].choices = [("", "latest")] + [
            (f"{sid}:{version}", f"v{version} · {created:%Y-%m-%d %H:%M}")
            for sid, version, created in versions
        ]
        self.fields["strategy"].choices = [(s.value, s.label) for s in strategies]
        self.fields["strategy"].initial = DEFAULT_STRATEGY
        self.fields["connection"].choices = [("", "Paper (simulated)")] + [
            (c.pk, f"LIVE: {c.label} ({c.exchange})") for c in connections
        ]
        for option in strategies:
            for name, spec in option.params.items():
                self.fields[self.param_field_name(option, name)] = _param_field(name, spec)

    @staticmethod
    def param_field_name(option: StrategyOption, param: str) -> str:
        return f"p__{option.slug}__{param}"

    def param_groups(self) -> list[tuple[StrategyOption, list[forms.BoundField]]]:
        return [(o, [self[self.param_field_name(o, name)] for name in o.params]) for o in self.strategies]

    def clean(self):
        data = super().clean()
        if data.get("source") != Bot.Source.WEBHOOK and not data.get("strategy"):
            self.add_error("strategy", "Choose a strategy (or make it a webhook bot).")
        version = data.get("strategy_version")
        if version:
            sid, _, number = version.partition(":")
            if data.get("strategy") != f"user:{sid}":
                self.add_error("strategy_version", "a version of another strategy")
            else:
                data["strategy_version"] = int(number)
        else:
            data["strategy_version"] = None
        return data

    def selected_strategy(self) -> StrategyOption:
        return next(o for o in self.strategies if o.value == self.cleaned_data["strategy"])

    def to_service_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``apps.bots.services.bot_create``."""
        data = self.cleaned_data
        common = self._common_kwargs()
        if data.get("source") == Bot.Source.WEBHOOK:
            return {**common, "source": Bot.Source.WEBHOOK}
        option = self.selected_strategy()
        params = {}
        for name in option.params:
            value = data.get(self.param_field_name(option, name))
            if value is not None and value != "":
                params[name] = value
        kind, _, ref = option.value.partition(":")
        strategy = {"strategy": ref} if kind == "builtin" else {"strategy_id": int(ref)}
        if kind == "user" and data.get("strategy_version"):
            strategy["strategy_version"] = data["strategy_version"]
        return {**common, **strategy, "params": params, "warmup": data.get("warmup")}

    def _common_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        live = data.get("connection") is not None
        kwargs: dict[str, Any] = {
            "name": data["name"],
            "exchange": data["exchange"],
            "symbol": data["symbol"],
            "timeframe": data["timeframe"],
            "mode": Bot.Mode.LIVE if live else Bot.Mode.PAPER,
            "connection_id": data.get("connection"),
            "confirm_live": bool(data.get("confirm_live")),
            "allocated_capital": data["allocated_capital"],
        }
        if ":" in data["symbol"] or data.get("leverage") not in (None, 1):
            kwargs["leverage"] = data.get("leverage") or Decimal("1")
            kwargs["margin_mode"] = data.get("margin_mode") or Bot.MarginMode.ISOLATED
        if data.get("size_percent") is not None:
            kwargs["sizing"] = {"type": "percent_equity", "value": float(data["size_percent"] / PERCENT)}
        for field in ("stop_loss", "take_profit", "trailing_stop"):
            value = data.get(f"{field}_percent")
            kwargs[field] = float(value / PERCENT) if value is not None else None
        return kwargs

    ERROR_FIELDS = {
        "strategy_id": "strategy",
        "stop_loss": "stop_loss_percent",
        "sizing": "size_percent",
        "take_profit": "take_profit_percent",
        "trailing_stop": "trailing_stop_percent",
        "mode": "connection",
    }

    def apply_errors(self, message: str, fields: dict[str, Any]) -> None:
        """Show a service's ``ValidationFailed`` next to the inputs it names."""
        shown = False
        for key, messages in (fields or {}).items():
            target = self.ERROR_FIELDS.get(key, key)
            target = target if target in self.fields else None
            for text in messages if isinstance(messages, list) else [messages]:
                self.add_error(target, str(text))
            shown = shown or target is not None
        if not shown:
            self.add_error(None, message)


class BotReplayForm(forms.Form):
    """The period of a replay on the bot page (open times of its first and last candle, UTC)."""

    start = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", "must be after start")
        return data


def initial_from_research(*, user, query) -> tuple[dict[str, Any], str]:
    """The create form's initial values from a backtest (``?backtest=<id>``) or an optimization
    (``?optimization=<id>``: its best parameters; ``&trial=<index>[&window=<n>]``: that trial's),
    so "Start a bot with these parameters" carries strategy, version, parameters, market,
    timeframe, capital and the stop-loss/take-profit defaults over. Returns ``(initial, what)``
    where ``what`` names the source ("backtest #3"); another user's run is a 404."""
    from apps.backtests import selectors as research

    if query.get("backtest"):
        job = research.backtest_get(user=user, pk=query["backtest"])
        params, label = dict(job.params or {}), f"backtest #{job.pk}"
    elif query.get("optimization"):
        job = research.optimization_get(user=user, pk=query["optimization"])
        params = {**(job.params or {}), **(job.best_params or {})}
        label = f"optimization #{job.pk}"
        if query.get("trial") not in (None, ""):
            trials = job.trials.filter(index=query["trial"] if str(query["trial"]).isdigit() else -1)
            if query.get("window") not in (None, ""):
                trials = trials.filter(window=query["window"] if str(query["window"]).isdigit() else -1)
            trial = trials.order_by("window").first()
            if trial is None:
                raise NotFound("Trial not found.")
            params = {**(job.params or {}), **trial.params}
            label += f" trial {trial.index}"
    else:
        return {}, ""
    strategy = f"user:{job.strategy_id}" if job.strategy_id else f"builtin:{job.strategy_name}"
    slug = strategy.replace(":", "-")
    config = job.config or {}
    initial: dict[str, Any] = {
        "name": f"{job.strategy_name} {job.symbol} {job.timeframe} ({label})"[:80],
        "strategy": strategy,
        "strategy_version": f"{job.strategy_id}:{job.code_version}" if job.strategy_id else "",
        "exchange": job.exchange,
        "symbol": job.symbol,
        "timeframe": job.timeframe,
        **{f"p__{slug}__{name}": value for name, value in params.items()},
    }
    if job.initial_cash:
        initial["allocated_capital"] = _plain(job.initial_cash)
    sizing = config.get("sizing") or {}
    if sizing.get("type", "percent_equity") == "percent_equity" and sizing.get("value"):
        initial["size_percent"] = _plain(Decimal(str(sizing["value"])) * PERCENT)
    for field in ("stop_loss", "take_profit", "trailing_stop"):
        if config.get(field) is not None:
            initial[f"{field}_percent"] = _plain(Decimal(str(config[field])) * PERCENT)
    return initial, label


def _plain(value: Decimal) -> Decimal:
    """Without padding zeros and never in exponent form (``normalize`` alone gives ``1E+1``)."""
    return Decimal(f"{value.normalize():f}")
