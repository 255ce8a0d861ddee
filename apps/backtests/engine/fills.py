"""Fill rules: when and at what price an order fills against an OHLC candle.

This module is pure and scalar so that the backtest broker, the vectorized signal
path (which implements the same rules on arrays and is tested against the broker)
and the paper exchange all share one definition.

Rules
-----
1. **Market orders** placed while processing candle ``i`` (a signal on candle
   ``i``) fill at the **open of candle i+1**, moved against the trader by
   slippage; they pay the taker fee. Nothing fills at a price the strategy
   could not have traded at when it decided.
2. Every other order rests from the candle after it was placed and is checked
   along an assumed **intra-candle price path**:

   * holding a long (or flat with the open nearer the low): ``open -> low -> high -> close``
   * holding a short (or flat with the open nearer the high): ``open -> high -> low -> close``

   Holding a position, the adverse extreme always comes first, so when a stop
   and a target are both touched in one candle **the stop fills first**
   (the conservative rule). Orders are filled in the order the path crosses
   their trigger prices; each fill can change the position, and reduce-only
   orders left without a position are cancelled.
3. A price is "crossed" when the path passes through it. Each order has one
   trigger level and one direction:

   ====================  ======  ===================================
   order                 side    triggers when price ...
   ====================  ======  ===================================
   limit                 buy     falls to ``price``
   limit                 sell    rises to ``price``
   stop_market/limit     buy     rises to ``stop_price``
   stop_market/limit     sell    falls to ``stop_price``
   take_profit           buy     falls to ``price`` (closes a short)
   take_profit           sell    rises to ``price`` (closes a long)
   trailing_stop         sell    falls to ``peak * (1 - trail)``
   trailing_stop         buy     rises to ``trough * (1 + trail)``
   liquidation           long    falls to the liquidation price
   liquidation           short   rises to the liquidation price
   ====================  ======  ===================================

4. **Gaps**: an order whose level is already crossed at the candle's open fills
   at the open: better than the limit for limit and take-profit orders, worse
   than the stop for stop orders. A liquidation triggers at its liquidation
   price (or the open, on a gap) and settles at the bankruptcy price: the
   position's whole margin is lost (``engine.tiers``, docs/engine.md).
5. Fill prices: limit orders fill at their limit price and pay maker; stop-market,
   take-profit and trailing-stop orders fill at their trigger price (or the gapped
   open) plus slippage and pay taker. A triggered stop-limit becomes a limit order
   at its limit price: if that is marketable at the trigger price it fills there
   (taker), otherwise it rests (maker).
6. A trailing stop's peak (trough) starts at the price when it becomes active and
   follows the path points, so within a candle a long's trailing stop can trigger
   on the way down from the high to the close.
7. Optional partial fills: with ``max_volume_fraction`` set, one fill takes at
   most that fraction of the candle's volume (``partial_fill_size``).
"""

from __future__ import annotations

LOW = -1  # triggers when the price falls to the level
HIGH = 1  # triggers when the price rises to the level

ORDER_TYPES = (
    "market",
    "limit",
    "stop_market",
    "stop_limit",
    "take_profit",
    "trailing_stop",
)
TAKER_TYPES = frozenset(("market", "stop_market", "take_profit", "trailing_stop"))


def trigger_direction(order_type: str, side: int) -> int:
    """``LOW`` or ``HIGH``: which way the price must move to trigger the order (see table)."""
    if order_type == "limit" or order_type == "take_profit":
        return LOW if side > 0 else HIGH
    if order_type in ("stop_market", "stop_limit", "trailing_stop"):
        return HIGH if side > 0 else LOW
    raise ValueError(f"order type {order_type!r} has no trigger level")


def candle_path(
    open_: float, high: float, low: float, close: float, position_side: int
) -> tuple[float, float, float, float]:
    """The assumed intra-candle path (rule 2); ``position_side`` is +1, -1 or 0."""
    if position_side > 0 or (position_side == 0 and open_ - low <= high - open_):
        return (open_, low, high, close)
    return (open_, high, low, close)


def crossed(direction: int, level: float, price: float) -> bool:
    """Whether ``price`` is at or beyond ``level`` in the trigger ``direction``."""
    return price <= level if direction == LOW else price >= level


def market_fill_price(
    open_: float, side: int, slippage=None, size: float = 0.0, volume: float = 0.0
) -> float:
    """Rule 1: a market order's fill price at the next candle's open."""
    return open_ if slippage is None else slippage.apply(open_, side, size, volume)


def triggered_fill_price(order_type: str, side: int, level: float, point: float, at_open: bool) -> float:
    """Price of an order triggered at ``level`` while the path is at ``point``.

    ``at_open`` marks a gap: the level was already crossed at the candle's open
    (``point`` is the open), so the order fills at the open (rule 4). Otherwise the
    path moved continuously through the level and the order fills at it.
    Slippage for taker types is added by the caller.
    """
    if at_open:
        return point
    return level


def trailing_level(side: int, extreme: float, trail: float) -> float:
    """Trigger of a trailing stop: ``peak*(1-trail)`` for sells, ``trough*(1+trail)`` for buys."""
    return extreme * (1.0 - trail) if side < 0 else extreme * (1.0 + trail)


def evaluate_order(
    order_type: str,
    side: int,
    open_: float,
    high: float,
    low: float,
    close: float,
    *,
    price: float | None = None,
    stop_price: float | None = None,
    trail: float | None = None,
    extreme: float | None = None,
    position_side: int = 0,
) -> tuple[float | None, float | None]:
    """Scalar single-order check for one candle: ``(fill_price or None, new_extreme)``.

    For a lone resting order (the paper exchange's case): walks ``candle_path`` and
    applies the rules above. ``extreme`` is a trailing stop's running peak (sell) or
    trough (buy); the updated value is returned so the caller can keep it. A
    stop-limit returns its limit fill price if the limit is reached after the
    trigger in the same candle. Market orders return the open (slippage is the
    caller's). No slippage or fees are applied here.
    """
    if order_type == "market":
        return open_, extreme
    path = candle_path(open_, high, low, close, position_side)
    if order_type == "trailing_stop":
        if trail is None:
            raise ValueError("trailing_stop needs trail")
        ext = open_ if extreme is None else extreme
        prev = path[0]
        for k, point in enumerate(path):
            # Check against the level set by the path so far, then let the new point move it.
            level = trailing_level(side, ext, trail)
            if k == 0:
                if (point <= level) if side < 0 else (point >= level):
                    return point, ext
            elif (side < 0 and point < prev and point <= level) or (
                side > 0 and point > prev and point >= level
            ):
                return level, ext
            ext = max(ext, point) if side < 0 else min(ext, point)
            prev = point
        return None, ext
    if order_type == "stop_limit":
        if stop_price is None or price is None:
            raise ValueError("stop_limit needs stop_price and price")
        hit = _first_cross(path, trigger_direction("stop_limit", side), stop_price)
        if hit is None:
            return None, extreme
        k, trig = hit
        if (side > 0 and trig <= price) or (side < 0 and trig >= price):
            return trig, extreme  # marketable at the trigger
        rest = _first_cross(path[k:], trigger_direction("limit", side), price)
        return (None if rest is None else rest[1]), extreme
    level = price if order_type in ("limit", "take_profit") else stop_price
    if level is None:
        raise ValueError(f"{order_type} needs a price")
    hit = _first_cross(path, trigger_direction(order_type, side), level)
    return (None if hit is None else hit[1]), extreme


def _first_cross(path: tuple[float, ...], direction: int, level: float) -> tuple[int, float] | None:
    """First path index where ``level`` is crossed and the fill price there (rule 4 at the open)."""
    if crossed(direction, level, path[0]):
        return 0, path[0]
    for k in range(1, len(path)):
        if crossed(direction, level, path[k]):
            return k, level
    return None


def partial_fill_size(size: float, candle_volume: float, max_volume_fraction: float | None) -> float:
    """Rule 7: cap a fill at ``max_volume_fraction`` of the candle's volume (None: no cap)."""
    if max_volume_fraction is None:
        return size
    return min(size, max(candle_volume, 0.0) * max_volume_fraction)
