"""Signals of the risk app, for the apps that react to it (or feed it) without importing upward.

``risk_alert_raised``
    Sent by the risk monitor when it raises a ``RiskAlert``:
    ``risk_alert_raised.send(sender=..., user_id=..., payload={...})``. The
    notifications receiver forwards it to the user's channels (event ``risk_alert``).

``kill_switch_engaged``
    Sent by ``kill_switch_engage`` after the switch is on (committed):
    ``send_robust(sender=KillSwitchActivation, user=..., activation=...)``. The bots app
    stops every bot of ``user`` and returns the ids it stopped; the kill switch
    records them (and any receiver's exception as a failure) in the activation.
"""

from __future__ import annotations

from django.dispatch import Signal

risk_alert_raised = Signal()
kill_switch_engaged = Signal()
