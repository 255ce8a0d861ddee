"""``events_muted``: simulated work (a bot replay) publishes nothing, in its own context only."""

from __future__ import annotations

from apps.core import events


def test_publish_inside_events_muted_sends_nothing_and_outside_sends(monkeypatch):
    sent = []
    monkeypatch.setattr(events, "_send", lambda group, user_id, kind, payload: sent.append(kind))
    with events.events_muted():
        events.publish_event(1, "order.created", {"id": 1})
        with events.events_muted():
            events.publish_event(1, "fill.created", {})
        events.publish_event(1, "order.updated", {})
    events.publish_event(1, "bot.replay", {"id": 1})
    assert sent == ["bot.replay"]
