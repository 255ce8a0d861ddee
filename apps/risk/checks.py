"""The pre-trade risk check every order passes before it is sent.

A pure function of the order and the account's state: until the risk issue
fills it in, it allows everything (returns no breaches).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class Breach:
    """One limit the order would break: which one (``code``) and a message for the user."""

    code: str
    message: str


def order_check(
    *,
    owner_id: int,
    symbol: str,
    side: str,
    amount: Decimal,
    price: Decimal | None,
    reduce_only: bool = False,
    bot_id: int | None = None,
) -> list[Breach]:
    """The limits this order would break; an empty list lets it through."""
    return []
