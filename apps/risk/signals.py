"""Signals of the risk app, for the apps that react to it (or feed it) without importing upward.

``risk_alert_raised``
    Sent after the commit, once per new ``RiskAlert`` (a repeat of an active one is not new):
    ``send_robust(sender=RiskAlert, user_id=..., payload={...}, alert=...)``; ``payload`` is the
    alert as pushed live (``risk.alert``, with its ``severity``). The notifications receiver
    forwards warning and critical alerts to the user's channels (event ``risk_alert``); info
    alerts (a limit nearly used) stay on the page and the live feed.

``risk_action_required``
    Sent after the commit when a breached limit's action is to pause a bot or stop all bots,
    with ``user_id``, ``bot_id`` (``None``: every bot in scope), ``symbol`` (``""``: any),
    ``action`` (``pause_bot`` / ``stop_all_bots``) and ``reason``. The bots app carries it out
    (``apps.bots.risk_actions``); risk sits below bots and cannot call them.

``kill_switch_engaged``
    Sent by ``kill_switch_engage`` after the switch is on (committed):
    ``send_robust(sender=KillSwitchActivation, user=..., activation=...)``. The bots app
    stops every bot of ``user`` and returns the ids it stopped; the kill switch
    records them (and any receiver's exception as a failure) in the activation.
"""

from __future__ import annotations

from django.dispatch import Signal

risk_alert_raised = Signal()
risk_action_required = Signal()
kill_switch_engaged = Signal()
