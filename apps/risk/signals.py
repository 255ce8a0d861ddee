"""Signals of the risk app, for the apps that react to it without importing upward.

``risk_alert_raised``
    Sent after the commit, once per new ``RiskAlert`` (a repeat of an active one is not new):
    ``send_robust(sender=RiskAlert, user_id=..., payload={...}, alert=...)``; ``payload`` is the
    alert as pushed live (``risk.alert``). Notifications subscribe to it.

``risk_action_required``
    Sent after the commit when a breached limit's action is to pause a bot or stop all bots,
    with ``user_id``, ``bot_id`` (``None``: every bot in scope), ``symbol`` (``""``: any),
    ``action`` (``pause_bot`` / ``stop_all_bots``) and ``reason``. The bots app carries it out
    (``apps.bots.risk_actions``); risk sits below bots and cannot call them.
"""

from __future__ import annotations

from django.dispatch import Signal

risk_alert_raised = Signal()
risk_action_required = Signal()
