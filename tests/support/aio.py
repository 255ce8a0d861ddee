"""Run a coroutine from a synchronous test, whatever loop the thread already has.

Playwright's sync API (browser tests) leaves an asyncio loop on the main thread
for the whole session, so ``asyncio.run`` there would fail; a fresh thread has
none.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any


def run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    result: dict[str, Any] = {}

    def target():
        try:
            result["value"] = asyncio.run(coroutine)
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result.get("value")
