"""Whose is a paper bot id: the bots app's business, registered at start-up.

The bots app depends on this app, not the reverse, so ``BotsConfig.ready``
installs the check here. This module imports nothing, so that registration does
not load the paper exchange (and the engine) into every process at start-up.
Until a check is registered no bot id is anyone's.
"""

from __future__ import annotations

from collections.abc import Callable

_bot_is_owned: Callable[..., bool] = lambda *, user, bot_id: False  # noqa: E731


def paper_bot_check_register(check: Callable[..., bool]) -> None:
    """Install ``check(user=..., bot_id=...) -> bool``: whether the bot is the user's."""
    global _bot_is_owned
    _bot_is_owned = check


def paper_bot_is_owned(*, user, bot_id: int) -> bool:
    """Whether ``bot_id`` is one of ``user``'s bots (per the registered check)."""
    return _bot_is_owned(user=user, bot_id=bot_id)
