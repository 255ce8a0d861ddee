"""Log records with context and without secrets, as JSON lines or readable text.

Both filters sit on the handlers (``LOGGING`` in config/settings.py), so they see every
record that is written, whichever logger it came from:

- ``ContextFilter`` adds ``request_id``, ``user_id``, ``task_id`` and ``task_name``;
- ``RedactFilter`` removes secrets: the values of fields named like a secret (api_key,
  secret, password, token, authorization, passphrase, ...), in extra fields, dict
  arguments and ``key=value`` / ``"key": "value"`` text; values that look like secrets
  whatever their name (Fernet blobs of the encrypted exchange keys, JWTs, bearer
  tokens); and the secret parts of the request's URL (the signal webhook's token).

``JsonFormatter`` writes one JSON object per line (``LOG_FORMAT=json``, the production
default), ``PlainFormatter`` a readable line (``LOG_FORMAT=plain``, the default elsewhere).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from apps.core.observability import context

REDACTED = "[redacted]"

# Field names whose values are secrets. Matched anywhere in the name: "api_key",
# "exchange_secret", "X-Api-Key", "refresh_token", "HTTP_AUTHORIZATION".
SECRET_NAME = re.compile(
    r"api[_-]?key|secret|passw(or)?d|passphrase|token|authori[sz]ation|private[_-]?key|signature"
    r"|cookie|session[_-]?(?:id|key)|credentials",
    re.IGNORECASE,
)
# Values that are secrets whatever they are called.
_SECRET_VALUES = [
    # A Fernet token (the encrypted exchange keys, apps/exchanges/crypto.py): version byte
    # 0x80 in URL-safe base64 is "gAAAAA".
    re.compile(r"gAAAAA[A-Za-z0-9_\-]{20,}={0,2}"),
    # A JWT (access/refresh tokens): three base64url parts, the header starting {"
    re.compile(r"eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),
]
# "Bearer <x>" / "Token <x>" in text (an Authorization header written out).
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|token|basic)(\s+)[A-Za-z0-9._~+/=\-]{8,}")
# key=value, key: value, "key": "value", 'key': 'value' in text, for secret-like keys.
_KEY_VALUE = re.compile(
    r"""(?P<key>["']?[A-Za-z0-9_\-]*(?:"""
    + SECRET_NAME.pattern
    + r""")[A-Za-z0-9_\-]*["']?)(?P<sep>\s*[:=]\s*)(?!\[redacted\])(?P<value>"[^"]*"|'[^']*'|[^\s,;&}\]\)]+)""",
    re.IGNORECASE,
)


# Text with none of these cannot hold anything the patterns above mask: most lines, skipped
# after one scan.
_TRIGGER = re.compile(SECRET_NAME.pattern + r"|gAAAAA|eyJ|bearer|basic", re.IGNORECASE)


def redact_text(text: str, *, extra_secrets: tuple[str, ...] = ()) -> str:
    if not extra_secrets and not _TRIGGER.search(text):
        return text
    for secret in extra_secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_VALUES:
        text = pattern.sub(REDACTED, text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)

    def _mask(match: re.Match) -> str:
        value = match.group("value")
        quote = value[0] if value[:1] in {'"', "'"} else ""
        return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"

    return _KEY_VALUE.sub(_mask, text)


def redact_value(value: Any, *, extra_secrets: tuple[str, ...] = (), depth: int = 0) -> Any:
    """A copy of ``value`` with secret-named keys and secret-looking strings masked."""
    if depth > 8:
        return REDACTED  # deeper than any log field we write: do not walk it
    if isinstance(value, str):
        return redact_text(value, extra_secrets=extra_secrets)
    if isinstance(value, dict):
        return {
            key: REDACTED
            if isinstance(key, str) and SECRET_NAME.search(key) and val not in (None, "")
            else redact_value(val, extra_secrets=extra_secrets, depth=depth + 1)
            for key, val in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, extra_secrets=extra_secrets, depth=depth + 1) for v in value)
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact_text(str(value), extra_secrets=extra_secrets)


def request_url_secrets(request: Any) -> tuple[str, ...]:
    """URL parts of ``request`` that are secrets: arguments of its route named like one
    (``/api/v1/signals/<token>/``)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return ()
    return tuple(
        str(value)
        for name, value in match.kwargs.items()
        if SECRET_NAME.search(name) and value not in (None, "")
    )


# Attributes of a record that are not extra fields: the standard ones, ours, and Django's
# ``request`` (its repr holds the raw path; the access log writes what is useful of it).
_NOT_EXTRA = frozenset(RESERVED_ATTRS) | {
    "request",
    "request_id",
    "user_id",
    "task_id",
    "task_name",
    "message",
    "asctime",
    "color_message",
    "_trading_redacted",
    "where",
}


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``user_id``, ``task_id``, ``task_name`` (``None`` when unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = context.current()
        # Django's "Not Found: ..." lines are logged after the middleware has returned
        # (under ASGI outside its context); they carry the request instead.
        request = getattr(record, "request", None) or ctx.request
        if getattr(record, "request_id", None) is None:
            record.request_id = getattr(request, "request_id", None) or ctx.request_id
        if getattr(record, "user_id", None) is None:
            record.user_id = context.user_id_of_request(request) or ctx.user_id
        for name in ("task_id", "task_name"):
            if getattr(record, name, None) is None:
                setattr(record, name, getattr(ctx, name))
        return True


class RedactFilter(logging.Filter):
    """Masks secrets in the message, its arguments, the traceback and every extra field.

    It rewrites the record in place (message formatted once, arguments dropped), so
    every handler after it writes the redacted text only.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_trading_redacted", False):
            return True
        request = getattr(record, "request", None) or context.current().request
        secrets = request_url_secrets(request)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is, redacted
            message = f"{record.msg} {record.args}"
        record.msg = redact_text(message, extra_secrets=secrets)
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = redact_text(text, extra_secrets=secrets)
            # The formatted (redacted) text is what is written: no handler formats the
            # exception (and its message) again.
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact_text(record.exc_text, extra_secrets=secrets)
        if record.stack_info:
            record.stack_info = redact_text(record.stack_info, extra_secrets=secrets)
        for key in list(record.__dict__):
            if key in _NOT_EXTRA or key.startswith("_"):
                continue
            value = record.__dict__[key]
            if SECRET_NAME.search(key) and value not in (None, ""):
                record.__dict__[key] = REDACTED
            else:
                record.__dict__[key] = redact_value(value, extra_secrets=secrets)
        record._trading_redacted = True
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time, level, logger, message, request_id, user_id, task_id,
    task_name, then the record's extra fields (and ``exc_info``: the traceback)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reserved_attrs", sorted(_NOT_EXTRA))
        kwargs.setdefault("json_ensure_ascii", False)
        super().__init__(*args, **kwargs)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.getMessage() if not record.__dict__.get("message") else record.message
        for name in ("request_id", "user_id", "task_id", "task_name"):
            log_data[name] = getattr(record, name, None)
        super().add_fields(log_data, record, message_dict)


class PlainFormatter(logging.Formatter):
    """``time LEVEL logger [request or task] message`` for a person reading a console."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(where)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        if getattr(record, "request_id", None):
            parts.append(f"req={record.request_id}")
        if getattr(record, "task_name", None):
            parts.append(f"task={record.task_name}[{record.task_id}]")
        if getattr(record, "user_id", None):
            parts.append(f"user={record.user_id}")
        record.where = f" [{' '.join(parts)}]" if parts else ""
        return super().format(record)
