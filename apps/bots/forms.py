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
from apps.exchanges.catalog import exchange_choices
from apps.marketdata.timeframes import TIMEFRAME_CHOICES

PERCENT = Decimal(100)
DEFAULT_STRATEGY = "builtin:sma_crossover"


class BotForm(forms.Form):
    name = forms.CharField(max_length=80)
    strategy = forms.ChoiceField()
    strategy_version = forms.IntegerField(
        required=False, min_value=1, help_text="your strategies only; empty: the latest version, pinned"
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
    stop_loss_percent = forms.DecimalField(required=False, min_value=0, max_value=99, label="Stop-loss %")
    take_profit_percent = forms.DecimalField(required=False, min_value=0, label="Take-profit %")
    trailing_stop_percent = forms.DecimalField(
        required=False, min_value=0, max_value=99, label="Trailing stop %"
    )
    warmup = forms.IntegerField(required=False, min_value=2, max_value=5000, help_text="candles per tick")

    def __init__(self, *args, strategies: list[StrategyOption], connections, **kwargs):
        super().__init__(*args, **kwargs)
        self.strategies = strategies
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

    def selected_strategy(self) -> StrategyOption:
        return next(o for o in self.strategies if o.value == self.cleaned_data["strategy"])

    def to_service_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``apps.bots.services.bot_create``."""
        data = self.cleaned_data
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
        live = data.get("connection") is not None
        kwargs: dict[str, Any] = {
            **strategy,
            "name": data["name"],
            "params": params,
            "exchange": data["exchange"],
            "symbol": data["symbol"],
            "timeframe": data["timeframe"],
            "mode": Bot.Mode.LIVE if live else Bot.Mode.PAPER,
            "connection_id": data.get("connection"),
            "confirm_live": bool(data.get("confirm_live")),
            "allocated_capital": data["allocated_capital"],
            "warmup": data.get("warmup"),
        }
        for field in ("stop_loss", "take_profit", "trailing_stop"):
            value = data.get(f"{field}_percent")
            kwargs[field] = float(value / PERCENT) if value is not None else None
        return kwargs

    ERROR_FIELDS = {
        "strategy_id": "strategy",
        "stop_loss": "stop_loss_percent",
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
