"""Trading fee models: none, fixed per fill, percentage and tiered maker/taker.

Spec forms accepted by ``parse_fee`` (also what ``BacktestConfig.fee`` stores):

* ``None`` / ``0`` / ``{"type": "none"}``
* ``0.001`` (shorthand) or ``{"type": "percentage", "rate": 0.001}`` or
  ``{"type": "percentage", "maker": 0.0002, "taker": 0.0004}`` (fractions of notional)
* ``{"type": "fixed", "amount": 1.0}``: a flat quote-currency amount per fill
* ``{"type": "tiered", "tiers": [{"volume": 0, "maker": 0.001, "taker": 0.001},
  {"volume": 1_000_000, "maker": 0.0008, "taker": 0.001}], "window_days": 30}``:
  the tier is chosen by the quote volume traded in the trailing ``window_days``
  before the fill (exchanges use 30-day volume), the highest tier whose
  ``volume`` threshold is reached applies.

Market, stop-market, take-profit, trailing-stop and liquidation fills pay taker;
resting limit orders pay maker.
"""

from __future__ import annotations

import bisect
from collections import deque
from typing import Any

from .errors import ConfigError

DAY_MS = 86_400_000


def normalize_fee(spec: Any) -> dict[str, Any]:
    """Return the canonical dict form of a fee spec (raises ``ConfigError``)."""
    if spec is None:
        return {"type": "none"}
    if isinstance(spec, bool):
        raise ConfigError({"fee": "must be a number or a fee model object"})
    if isinstance(spec, (int, float)):
        spec = float(spec)
        if spec == 0:
            return {"type": "none"}
        spec = {"type": "percentage", "rate": spec}
    if not isinstance(spec, dict):
        raise ConfigError({"fee": "must be a number or a fee model object"})
    kind = spec.get("type", "percentage")
    if kind == "none":
        return {"type": "none"}
    if kind == "percentage":
        rate = spec.get("rate")
        maker = _fraction(spec.get("maker", rate), "fee.maker")
        taker = _fraction(spec.get("taker", rate), "fee.taker")
        return {"type": "percentage", "maker": maker, "taker": taker}
    if kind == "fixed":
        amount = spec.get("amount")
        if not isinstance(amount, (int, float)) or isinstance(amount, bool) or amount < 0:
            raise ConfigError({"fee.amount": "must be a non-negative number"})
        return {"type": "fixed", "amount": float(amount)}
    if kind == "tiered":
        tiers = spec.get("tiers")
        if not isinstance(tiers, list) or not tiers:
            raise ConfigError({"fee.tiers": "must be a non-empty list of {volume, maker, taker}"})
        out = []
        for k, tier in enumerate(tiers):
            if not isinstance(tier, dict):
                raise ConfigError({f"fee.tiers[{k}]": "must be an object"})
            volume = tier.get("volume", 0)
            if not isinstance(volume, (int, float)) or volume < 0:
                raise ConfigError({f"fee.tiers[{k}].volume": "must be a non-negative number"})
            out.append(
                {
                    "volume": float(volume),
                    "maker": _fraction(tier.get("maker"), f"fee.tiers[{k}].maker"),
                    "taker": _fraction(tier.get("taker"), f"fee.tiers[{k}].taker"),
                }
            )
        out.sort(key=lambda t: t["volume"])
        if out[0]["volume"] != 0:
            raise ConfigError({"fee.tiers": "the first tier must start at volume 0"})
        window = spec.get("window_days", 30)
        if not isinstance(window, (int, float)) or window <= 0:
            raise ConfigError({"fee.window_days": "must be a positive number"})
        return {"type": "tiered", "tiers": out, "window_days": float(window)}
    raise ConfigError({"fee.type": "must be one of none, fixed, percentage, tiered"})


def _fraction(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 0.5:
        raise ConfigError({name: "must be a fraction between 0 and 0.5 (0.001 is 0.1%)"})
    return float(value)


class FeeModel:
    """Stateful fee calculator (tiered fees remember the traded volume).

    ``rate(maker, ts)`` is the proportional part, ``fixed`` the flat part, so that
    position sizing can solve ``notional + fee <= cash`` before a fill;
    ``charge(notional, maker, ts)`` returns the fee and records the volume.
    """

    __slots__ = (
        "_fills",
        "_thresholds",
        "_tiers",
        "_volume",
        "_window",
        "fixed",
        "kind",
        "maker",
        "taker",
    )

    def __init__(self, spec: Any) -> None:
        spec = normalize_fee(spec)
        self.kind = spec["type"]
        self.maker = self.taker = self.fixed = 0.0
        self._tiers: list[dict[str, float]] = []
        self._thresholds: list[float] = []
        self._window = 0
        self._fills: deque[tuple[int, float]] = deque()
        self._volume = 0.0
        if self.kind == "percentage":
            self.maker, self.taker = spec["maker"], spec["taker"]
        elif self.kind == "fixed":
            self.fixed = spec["amount"]
        elif self.kind == "tiered":
            self._tiers = spec["tiers"]
            self._thresholds = [t["volume"] for t in self._tiers]
            self._window = int(spec["window_days"] * DAY_MS)
            self.maker, self.taker = self._tiers[0]["maker"], self._tiers[0]["taker"]

    @property
    def proportional(self) -> bool:
        """True when fees scale with notional and have no memory (allows vectorized paths)."""
        return self.kind in ("none", "percentage")

    def rate(self, maker: bool, ts: int) -> float:
        """The proportional fee rate that would apply to a fill at ``ts``."""
        if self.kind == "tiered":
            self._expire(ts)
            tier = self._tiers[bisect.bisect_right(self._thresholds, self._volume) - 1]
            return tier["maker"] if maker else tier["taker"]
        return self.maker if maker else self.taker

    def charge(self, notional: float, maker: bool, ts: int) -> float:
        """Fee for a fill of ``notional`` quote value at ``ts``; records volume for tiers."""
        fee = notional * self.rate(maker, ts) + self.fixed
        if self.kind == "tiered":
            self._fills.append((ts, notional))
            self._volume += notional
        return fee

    def _expire(self, ts: int) -> None:
        cutoff = ts - self._window
        fills = self._fills
        while fills and fills[0][0] <= cutoff:
            self._volume -= fills.popleft()[1]
        if not fills:
            self._volume = 0.0  # drop accumulated float error once the window is empty
