"""The risk page's kill-switch and notification panels (each reads its own data for ``request.user``)."""

from __future__ import annotations

from django import template

from apps.risk import killswitch, notifications
from apps.risk.selectors import kill_switch_is_on
from apps.risk.views_safety import CONFIRM_WORD, NotificationChannelForm

register = template.Library()
RECENT_DELIVERIES = 20


@register.inclusion_tag("risk/_kill_switch.html", takes_context=True)
def kill_switch_panel(context):
    user = context["request"].user
    return {
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
        "engaged": kill_switch_is_on(user_id=user.pk),
        "activation": killswitch.kill_switch_active(user=user),
        "confirm_word": CONFIRM_WORD,
    }


@register.inclusion_tag("risk/_notifications.html", takes_context=True)
def notification_settings(context):
    user = context["request"].user
    return {
        "request": context["request"],
        "csrf_token": context.get("csrf_token"),
        "channels": notifications.notification_channel_list(user=user),
        "deliveries": notifications.notification_delivery_list(user=user)[:RECENT_DELIVERIES],
        "form": NotificationChannelForm(),
    }
