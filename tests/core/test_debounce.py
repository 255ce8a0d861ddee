"""Debounce windows (apps.core.cache.first_in_window): one opener per window across processes, and
no round trip for a window this process opened."""

from __future__ import annotations

import time
import uuid

from django.core.cache import cache

from apps.core.cache import first_in_window


def test_one_call_opens_each_window_and_this_process_asks_the_cache_only_when_it_must(monkeypatch):
    asked = []
    add = cache.add
    monkeypatch.setattr(
        cache, "add", lambda key, *args, **kwargs: asked.append(key) or add(key, *args, **kwargs)
    )
    mine, theirs = f"test-window-{uuid.uuid4().hex}", f"test-window-{uuid.uuid4().hex}"
    assert first_in_window(mine, 1) is True
    assert [first_in_window(mine, 1) for _ in range(5)] == [False] * 5
    assert asked == [mine]  # the window this process opened is known: no round trip
    add(theirs, 1, timeout=1)  # another process's window: the cache says so
    assert first_in_window(theirs, 1) is False and first_in_window(theirs, 1) is False
    assert asked == [mine, theirs, theirs]
    time.sleep(1.1)
    assert first_in_window(mine, 1) is True and first_in_window(theirs, 1) is True  # both over
