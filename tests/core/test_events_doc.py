"""docs/events.md lists exactly the event types the code publishes.

The types are found in the source: ``publish_event(<user>, "<type>", ...)`` literals, and the
few indirections the code uses (a constant, a job model's ``status_event``, a ``JobMonitor``'s
``event=``, the orders' ``_publish_order``). A ``publish_event`` call whose type is none of
these fails the test, so a new indirection has to be taught here instead of slipping by.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "events.md"
TYPE = r'"([a-z_]+(?:\.[a-z_]+)*)"'

# What publish_event's second argument may be, besides a string literal.
KNOWN_INDIRECTIONS = {"event", "EQUITY_EVENT", "LOG_EVENT", "STATUS_EVENT", "job.status_event", "self.event"}
# Sent by the consumer itself (docs: "Messages from the socket itself").
SOCKET_TYPES = {"connected", "live.reset", "pong"}


def _sources() -> dict[Path, str]:
    return {path: path.read_text() for path in (ROOT / "apps").rglob("*.py")}


def published_types() -> set[str]:
    found: set[str] = set()
    for path, text in _sources().items():
        if path.name == "events.py" and path.parent.name == "core":
            continue  # the helper itself (its docstring's example)
        for call in re.finditer(r"publish_event\(\s*([^,]+),\s*([^,)]+)", text):
            argument = call.group(2).strip()
            literal = re.fullmatch(TYPE, argument)
            if literal:
                found.add(literal.group(1))
            else:
                assert argument in KNOWN_INDIRECTIONS, (
                    f"{path.relative_to(ROOT)}: publish_event with type {argument!r}; "
                    "teach tests/core/test_events_doc.py where its value comes from"
                )
        found.update(re.findall(rf"\b[A-Z_]*EVENT\s*(?::\s*str)?\s*=\s*{TYPE}", text))
        found.update(re.findall(rf"\bstatus_event\s*=\s*{TYPE}", text))
        found.update(re.findall(rf"JobMonitor\([^)]*?\bevent\s*=\s*{TYPE}", text, re.S))
        found.update(re.findall(rf"_publish_order\([^)]*?{TYPE}", text))
        found.update(re.findall(rf"def _publish_order\([^)]*?event: str = {TYPE}", text))
    return found


def documented_types() -> set[str]:
    section = DOC.read_text().split("## Event types", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([a-z_.]+)` \|", section, re.M))


def test_the_search_finds_the_indirect_types_too():
    types = published_types()
    # One of each way a type is named in the code: if a pattern breaks, this says which.
    assert {
        "price",
        "portfolio.equity",
        "bot.status",
        "backtest.status",
        "backtest.progress",
        "order.updated",
    } <= types


def test_every_published_event_type_is_documented():
    missing = published_types() - documented_types()
    assert not missing, f"add to docs/events.md (## Event types): {sorted(missing)}"


def test_every_documented_event_type_is_still_published():
    stale = documented_types() - published_types()
    assert not stale, f"docs/events.md lists types nothing publishes: {sorted(stale)}"


def test_the_socket_messages_are_documented():
    text = DOC.read_text()
    section = text.split("### Messages from the socket itself", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([a-z_.]+)` \|", section, re.M)) == SOCKET_TYPES
    consumer = (ROOT / "apps" / "core" / "consumers.py").read_text()
    assert set(re.findall(rf"envelope_text\(\s*{TYPE}", consumer)) | {"live.reset"} == SOCKET_TYPES
