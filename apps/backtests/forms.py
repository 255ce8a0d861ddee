"""Dashboard forms: turn what a trader types into the backtests API body.

The forms only translate units and shapes (percent inputs -> fractions, the
market select -> exchange + symbol, one field per strategy parameter); every
rule about what is valid lives in ``apps.backtests.services`` / ``specs``, whose
``ValidationFailed.fields`` are mapped back onto the inputs by ``apply_errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from django import forms

from apps.backtests.engine import METRIC_NAMES
from apps.marketdata.timeframes import TIMEFRAMES

PERCENT = Decimal(100)

SIZING_CHOICES = [
    ("percent_equity", "% of equity"),
    ("fixed_quote", "Fixed amount (quote currency)"),
    ("fixed_quantity", "Fixed quantity (base asset)"),
    ("risk_per_trade", "Risk % of equity per trade (needs a stop loss)"),
]
# Sizing types whose value the form shows in percent.
PERCENT_SIZING = {"percent_equity", "risk_per_trade"}

DEFAULT_STRATEGY = "builtin:sma_crossover"
OBJECTIVE_CHOICES = [(name, name.replace("_", " ")) for name in METRIC_NAMES]


@dataclass
class StrategyOption:
    """One strategy a form can run: a built-in (``builtin:<name>``) or a user strategy (``user:<id>``)."""

    value: str
    label: str
    description: str
    style: str
    params: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        return self.value.replace(":", "-")

    def to_body(self) -> dict[str, Any]:
        kind, _, ref = self.value.partition(":")
        return {"strategy": ref} if kind == "builtin" else {"strategy_id": int(ref)}

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "slug": self.slug, "label": self.label, "description": self.description}


def strategy_options(*, builtins: list[dict[str, Any]], user_strategies) -> list[StrategyOption]:
    """Options from the registry's ``StrategyInfo.to_dict()`` list and the user's ``Strategy`` rows."""
    options = [
        StrategyOption(
            value=f"builtin:{info['name']}",
            label=info["name"].replace("_", " "),
            description=info.get("description", ""),
            style=info.get("style", "signal"),
            params=info.get("params") or {},
        )
        for info in builtins
    ]
    options += [
        StrategyOption(
            value=f"user:{strategy.pk}",
            label=f"{strategy.name} (yours, v{strategy.version})",
            description=strategy.description,
            style=strategy.style,
            params=strategy.params_schema or {},
        )
        for strategy in user_strategies
    ]
    return options


def _param_field(name: str, spec: dict[str, Any]) -> forms.Field:
    kind = spec.get("type")
    common = {
        "required": False,
        "initial": spec.get("default"),
        "help_text": spec.get("help") or "",
        "label": name.replace("_", " ").capitalize(),
    }
    bounds = {"min_value": spec.get("min"), "max_value": spec.get("max")}
    if kind == "int":
        return forms.IntegerField(**common, **bounds)
    if kind == "float":
        widget = forms.NumberInput(attrs={"step": spec.get("step") or "any"})
        return forms.FloatField(**common, **bounds, widget=widget)
    if kind == "bool":
        return forms.BooleanField(**common)
    if kind == "choice":
        return forms.ChoiceField(**common, choices=[(c, c) for c in spec.get("choices") or []])
    return forms.CharField(**common)


def _to_fraction(value: Decimal | None) -> float | None:
    return None if value is None else float(value / PERCENT)


def _day_start(value) -> str | None:
    if value is None:
        return None
    return datetime.combine(value, time.min, tzinfo=UTC).isoformat().replace("+00:00", "Z")


class ResearchForm(forms.Form):
    """What a run and an optimization share: strategy, market, range and trading costs."""

    strategy = forms.ChoiceField()
    market = forms.ChoiceField(help_text="Markets with stored candles (import them under Markets).")
    timeframe = forms.ChoiceField(choices=[(tf, tf) for tf in TIMEFRAMES], initial="1h")
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Exclusive; empty = all data.",
    )
    initial_cash = forms.DecimalField(min_value=Decimal("0.01"), initial=Decimal("10000"), label="Capital")
    fee_percent = forms.DecimalField(
        min_value=0,
        max_value=10,
        initial=Decimal("0.1"),
        label="Fee %",
        help_text="Per fill (taker = maker).",
    )
    slippage_percent = forms.DecimalField(
        min_value=0, max_value=10, initial=Decimal("0.05"), label="Slippage %", required=False
    )
    market_type = forms.ChoiceField(choices=[("spot", "Spot"), ("futures", "Futures")], initial="spot")
    leverage = forms.DecimalField(min_value=1, max_value=125, initial=1)
    margin_mode = forms.ChoiceField(
        choices=[("isolated", "Isolated"), ("cross", "Cross")], initial="isolated"
    )
    allow_short = forms.BooleanField(required=False, help_text="Futures only.")
    funding = forms.ChoiceField(
        choices=[
            ("history", "Stored funding history"),
            ("none", "No funding"),
            ("constant", "Constant rate"),
        ],
        initial="history",
        required=False,  # empty: the stored history, as the API's default
        label="Funding",
        help_text="Futures only. Download history under Markets.",
    )
    funding_rate_percent = forms.DecimalField(
        required=False,
        min_value=Decimal("-1"),
        max_value=Decimal("1"),
        label="Funding rate %",
        help_text="Per 8 hours, for a constant rate (0.01 is Binance's usual rate).",
    )
    sizing_type = forms.ChoiceField(choices=SIZING_CHOICES, initial="percent_equity", label="Position sizing")
    sizing_value = forms.DecimalField(min_value=0, initial=Decimal("100"), help_text="In % for the % types.")
    stop_loss_percent = forms.DecimalField(min_value=0, max_value=100, required=False, label="Stop loss %")
    take_profit_percent = forms.DecimalField(min_value=0, required=False, label="Take profit %")
    trailing_stop_percent = forms.DecimalField(
        min_value=0, max_value=100, required=False, label="Trailing stop %"
    )

    config_fields = (
        "initial_cash",
        "fee_percent",
        "slippage_percent",
        "market_type",
        "leverage",
        "margin_mode",
        "allow_short",
        "funding",
        "funding_rate_percent",
        "sizing_type",
        "sizing_value",
        "stop_loss_percent",
        "take_profit_percent",
        "trailing_stop_percent",
    )

    def __init__(self, *args, strategies: list[StrategyOption], markets: list[tuple[str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.strategies = strategies
        self.fields["strategy"].choices = [(s.value, s.label) for s in strategies]
        self.fields["strategy"].initial = DEFAULT_STRATEGY
        self.fields["market"].choices = markets
        for option in strategies:
            for name, spec in option.params.items():
                self.fields[self.param_field_name(option, name)] = _param_field(name, spec)

    @staticmethod
    def param_field_name(option: StrategyOption, param: str) -> str:
        return f"p__{option.slug}__{param}"

    def param_groups(self) -> list[tuple[StrategyOption, list[forms.BoundField]]]:
        """Per strategy, its parameter inputs (the page shows the selected strategy's group)."""
        return [(o, [self[self.param_field_name(o, name)] for name in o.params]) for o in self.strategies]

    def selected_strategy(self) -> StrategyOption:
        value = self.cleaned_data["strategy"]
        return next(o for o in self.strategies if o.value == value)

    def clean(self):
        data = super().clean()
        if (
            data.get("market_type") == "futures"
            and data.get("funding") == "constant"
            and data.get("funding_rate_percent") is None
        ):
            self.add_error("funding_rate_percent", "Give the rate per 8 hours for a constant funding rate.")
        return data

    def _funding_body(self) -> str | float | None:
        data = self.cleaned_data
        if data.get("market_type") != "futures":
            return None
        if data.get("funding") == "constant":
            return float(data["funding_rate_percent"] / PERCENT)
        return data.get("funding") or None

    def params_body(self) -> dict[str, Any]:
        option = self.selected_strategy()
        params = {}
        for name in option.params:
            value = self.cleaned_data.get(self.param_field_name(option, name))
            if value is not None and value != "":
                params[name] = value
        return params

    def to_body(self) -> dict[str, Any]:
        """The API create body (``POST /api/v1/backtests/``, its schema is ``RunCreateSerializer``)."""
        data = self.cleaned_data
        exchange, _, symbol = data["market"].partition("|")
        sizing_value = data["sizing_value"]
        if data["sizing_type"] in PERCENT_SIZING:
            sizing_value = sizing_value / PERCENT
        body: dict[str, Any] = {
            **self.selected_strategy().to_body(),
            "params": self.params_body(),
            "exchange": exchange,
            "symbol": symbol,
            "timeframe": data["timeframe"],
            "start": _day_start(data.get("start")),
            "end": _day_start(data.get("end")),
            "initial_cash": str(data["initial_cash"]),
            "fee": _to_fraction(data["fee_percent"]),
            "slippage": _to_fraction(data.get("slippage_percent")),
            "sizing": {"type": data["sizing_type"], "value": float(sizing_value)},
            "leverage": float(data["leverage"]),
            "market_type": data["market_type"],
            "margin_mode": data["margin_mode"],
            "allow_short": data["allow_short"],
            "funding": self._funding_body(),
            "stop_loss": _to_fraction(data.get("stop_loss_percent")),
            "take_profit": _to_fraction(data.get("take_profit_percent")),
            "trailing_stop": _to_fraction(data.get("trailing_stop_percent")),
        }
        return {key: value for key, value in body.items() if value is not None}

    # API field names -> this form's inputs (the rest map one to one or onto the form itself).
    ERROR_FIELDS = {
        "exchange": "market",
        "symbol": "market",
        "strategy_id": "strategy",
        "strategy_version": "strategy",
        "fee": "fee_percent",
        "slippage": "slippage_percent",
        "sizing": "sizing_value",
        "stop_loss": "stop_loss_percent",
        "take_profit": "take_profit_percent",
        "trailing_stop": "trailing_stop_percent",
        "funding": "funding_rate_percent",
        "funding_rates": "funding_rate_percent",
    }

    def apply_errors(self, message: str, fields: dict[str, Any]) -> None:
        """Show a service's ``ValidationFailed`` next to the inputs it names."""
        option = self.selected_strategy()
        shown = False
        for key, messages in (fields or {}).items():
            texts = messages if isinstance(messages, list) else [messages]
            target = self._error_target(option, key)
            for text in texts:
                self.add_error(target, str(text))
            shown = shown or target is not None
        if not shown:
            self.add_error(None, message)

    def _error_target(self, option: StrategyOption, key: str) -> str | None:
        if key.startswith("params."):
            name = self.param_field_name(option, key.split(".", 1)[1])
            return name if name in self.fields else None
        root = key.split(".", 1)[0]
        target = self.ERROR_FIELDS.get(root, root)
        return target if target in self.fields else None


class BacktestForm(ResearchForm):
    name = forms.CharField(max_length=200, required=False, help_text="Optional label.")

    field_order = ["name", "strategy", "market", "timeframe", "start", "end"]

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        if self.cleaned_data.get("name"):
            body["name"] = self.cleaned_data["name"]
        return body


def _parse_space(text: str, spec: dict[str, Any]) -> list[Any] | dict[str, Any]:
    """``5:50:5`` -> a min/max/step range; ``5,10,20`` -> those values (cast to the param's type)."""
    kind = spec.get("type")
    cast = {"int": int, "float": float, "bool": lambda v: v.lower() in ("1", "true", "yes")}.get(kind, str)
    text = text.strip()
    if ":" in text and kind in ("int", "float"):
        parts = [p.strip() for p in text.split(":")]
        if len(parts) != 3:
            raise forms.ValidationError("write a range as min:max:step, e.g. 5:50:5")
        try:
            low, high, step = (cast(p) for p in parts)
        except ValueError:
            raise forms.ValidationError(f"range bounds must be {kind} numbers") from None
        return {"min": low, "max": high, "step": step}
    try:
        return [cast(p.strip()) for p in text.split(",") if p.strip()]
    except ValueError:
        raise forms.ValidationError(f"values must be {kind} numbers separated by commas") from None


class OptimizationForm(ResearchForm):
    kind = forms.ChoiceField(
        choices=[("grid", "Grid search"), ("random", "Random search"), ("walk_forward", "Walk-forward")],
        initial="grid",
    )
    objective = forms.ChoiceField(choices=OBJECTIVE_CHOICES, initial="sharpe_ratio")
    maximize = forms.BooleanField(
        required=False, initial=True, help_text="Untick to minimize (e.g. drawdown)."
    )
    samples = forms.IntegerField(
        min_value=1, max_value=5000, required=False, help_text="Random search: combinations to try."
    )
    seed = forms.IntegerField(initial=0, required=False)
    windows = forms.IntegerField(min_value=2, max_value=50, initial=4, required=False, label="Windows")
    in_sample_percent = forms.DecimalField(
        min_value=10, max_value=95, initial=75, required=False, label="In-sample %"
    )
    anchored = forms.BooleanField(
        required=False, help_text="Anchored: in-sample always starts at the beginning."
    )

    field_order = ["kind", "strategy", "market", "timeframe", "start", "end", "objective", "maximize"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for option in self.strategies:
            for name, spec in option.params.items():
                if spec.get("type") in ("int", "float", "choice", "bool"):
                    self.fields[self.space_field_name(option, name)] = forms.CharField(
                        required=False,
                        widget=forms.TextInput(attrs={"placeholder": "5:50:5 or 5,10,20"}),
                    )

    @staticmethod
    def space_field_name(option: StrategyOption, param: str) -> str:
        return f"s__{option.slug}__{param}"

    def param_groups(self):
        groups = []
        for option in self.strategies:
            rows = []
            for name in option.params:
                space = self.space_field_name(option, name)
                rows.append(
                    (self[self.param_field_name(option, name)], self[space] if space in self.fields else None)
                )
            groups.append((option, rows))
        return groups

    def clean(self):
        data = super().clean()
        if "strategy" not in data:
            return data
        option = self.selected_strategy()
        space = {}
        for name, spec in option.params.items():
            field_name = self.space_field_name(option, name)
            text = (self.data.get(self.add_prefix(field_name)) or "").strip()
            if text:
                try:
                    space[name] = _parse_space(text, spec)
                except forms.ValidationError as exc:
                    self.add_error(field_name, exc)
        if not space and not self.errors:
            raise forms.ValidationError("Give a search range for at least one parameter.")
        data["space"] = space
        return data

    def to_body(self) -> dict[str, Any]:
        body = super().to_body()
        data = self.cleaned_data
        # Searched parameters come from the space, not from the fixed values.
        body["params"] = {k: v for k, v in body["params"].items() if k not in data["space"]}
        body.update(
            kind=data["kind"],
            space=data["space"],
            objective=data["objective"],
            maximize=data["maximize"],
            seed=data.get("seed") or 0,
        )
        if data.get("samples"):
            body["samples"] = data["samples"]
        if data["kind"] == "walk_forward":
            body["walk_forward"] = {
                "windows": data.get("windows") or 4,
                "in_sample_fraction": float((data.get("in_sample_percent") or Decimal(75)) / PERCENT),
                "anchored": data["anchored"],
            }
        return body

    def _error_target(self, option: StrategyOption, key: str) -> str | None:
        if key.startswith("space."):
            name = self.space_field_name(option, key.split(".", 1)[1])
            return name if name in self.fields else None
        if key.startswith("walk_forward"):
            return "windows"
        return super()._error_target(option, key)
