"""Risk page parts: the guarded kill-switch button and the notification settings.

Each form posts here and comes back to the risk page with a message; the panels
themselves are drawn by the ``risk_safety`` template tags.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.core.errors import DomainError, NotFound
from apps.risk import killswitch, notifications
from apps.risk.models import SUBSCRIBABLE_EVENTS, NotificationChannel, NotificationEvent

CONFIRM_WORD = "STOP"


class NotificationChannelForm(forms.Form):
    """Types only; the rules per kind are the service's (shown back as messages)."""

    kind = forms.ChoiceField(choices=NotificationChannel.Kind.choices)
    name = forms.CharField(max_length=100)
    events = forms.MultipleChoiceField(
        choices=[(e, NotificationEvent(e).label) for e in SUBSCRIBABLE_EVENTS],
        widget=forms.CheckboxSelectMultiple,
    )
    email = forms.CharField(max_length=254, required=False, help_text="email channels")
    url = forms.CharField(max_length=500, required=False, label="Webhook URL", help_text="webhooks")
    secret = forms.CharField(
        max_length=500, required=False, strip=False, widget=forms.PasswordInput,
        help_text="webhook signing secret (16+ characters) or Telegram bot token",
    )  # fmt: skip
    chat_id = forms.CharField(max_length=64, required=False, label="Telegram chat id")


def _channel(request, pk: int) -> NotificationChannel:
    try:
        return notifications.notification_channel_get(user=request.user, pk=pk)
    except NotFound:
        raise Http404("Notification channel not found.") from None


def _errors(exc: DomainError) -> str:
    details = "; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in exc.fields.items())
    return f"{exc.message} {details}".strip()


@login_required
@require_POST
def kill_switch(request):
    """Engage (``engaged=on``, typed confirmation) or release (``engaged=off``, ticked confirmation)."""
    if request.POST.get("engaged") == "on":
        if request.POST.get("confirm_text", "").strip().upper() != CONFIRM_WORD:
            messages.error(request, f"Kill switch not engaged: type {CONFIRM_WORD} to confirm.")
            return redirect("risk:index")
        activation, created = killswitch.kill_switch_engage(
            user=request.user,
            actor=request.user,
            close_positions=request.POST.get("close_positions") == "on",
            source="page",
        )
        summary = (
            f"{len(activation.bots_stopped)} bot(s) stopped, {len(activation.orders_cancelled)} order(s) cancelled, "
            f"{len(activation.positions_closed)} position(s) closed"
        )
        if activation.failures:
            messages.error(
                request,
                f"Kill switch ON: {summary}; {len(activation.failures)} action(s) failed and are retried.",
            )
        else:
            messages.warning(request, f"Kill switch ON{'' if created else ' (already on)'}: {summary}.")
        return redirect("risk:index")
    if request.POST.get("confirm") != "on":
        messages.error(request, "Kill switch still on: tick the box to confirm the release.")
        return redirect("risk:index")
    try:
        killswitch.kill_switch_release(user=request.user, actor=request.user)
    except DomainError as exc:
        messages.info(request, exc.message)
    else:
        messages.success(request, "Kill switch off: trading is allowed again. Stopped bots stay stopped.")
    return redirect("risk:index")


@login_required
@require_POST
def channel_create(request):
    form = NotificationChannelForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Channel not added: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items())
        )
        return redirect("risk:index")
    try:
        channel = notifications.notification_channel_create(user=request.user, **form.cleaned_data)
    except DomainError as exc:
        messages.error(request, "Channel not added: " + _errors(exc))
    else:
        messages.success(request, f"Notification channel {channel.name!r} added.")
    return redirect("risk:index")


@login_required
@require_POST
def channel_delete(request, pk: int):
    channel = _channel(request, pk)
    notifications.notification_channel_delete(channel=channel)
    messages.success(request, f"Notification channel {channel.name!r} deleted.")
    return redirect("risk:index")


@login_required
@require_POST
def channel_test(request, pk: int):
    channel = _channel(request, pk)
    notifications.notification_channel_test(channel=channel)
    messages.info(request, f"Test message queued for {channel.name!r}; its delivery appears below.")
    return redirect("risk:index")
