"""The risk app's hook points for the apps above it (bots, notifications).

``risk_alert_raised``: sent once per new alert (not for repeats of an active
one), after the commit, with ``alert`` (a ``RiskAlert``). Notifications
subscribe to it.

``risk_action_required``: sent after the commit when a breached limit's action
is to pause a bot or stop all bots, with ``user_id``, ``bot_id`` (``None``:
every bot in scope), ``symbol`` (``""``: any), ``action`` and ``reason``.
The bots app carries it out (``apps.bots.receivers``); risk cannot import bots.
"""

from __future__ import annotations

from django.dispatch import Signal

risk_alert_raised = Signal()
risk_action_required = Signal()
