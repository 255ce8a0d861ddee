"""User strategies: validate code (static policy, then the sandbox), create, update (new version), delete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from apps.backtests.engine.errors import BacktestError
from apps.backtests.models import Strategy, StrategyVersion
from apps.backtests.specs import code_hash
from apps.core.errors import ValidationFailed

MAX_SOURCE_CHARS = 200_000
MAX_DESCRIPTION_CHARS = 10_000


class InvalidCode(ValidationFailed):
    code = "invalid_code"


@dataclass
class CodeCheck:
    valid: bool
    issues: list[dict[str, Any]] = field(default_factory=list)
    strategy: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "issues": self.issues, "strategy": self.strategy}


def strategy_validate(*, source: str) -> CodeCheck:
    """Check user strategy code: static policy first, then describe it in the sandbox.

    Returns every problem with its line number; never raises for bad code.
    """
    from apps.backtests.strategies.sandbox import describe_user_strategy, validate_code

    if not source.strip():
        return CodeCheck(False, [{"line": 0, "col": 0, "message": "the code is empty"}])
    issues = validate_code(source)
    if issues:
        return CodeCheck(False, [issue.to_dict() for issue in issues])
    try:
        described = describe_user_strategy(source)
    except BacktestError as exc:
        line = getattr(exc, "line", None) or 0
        message = getattr(exc, "message", None) or str(exc)
        return CodeCheck(False, [{"line": line, "col": 0, "message": message}])
    return CodeCheck(True, [], described)


def _checked_or_raise(source: Any) -> CodeCheck:
    if not isinstance(source, str):
        raise ValidationFailed("source must be a string.", fields={"source": ["must be a string"]})
    if len(source) > MAX_SOURCE_CHARS:
        raise ValidationFailed("source is too long.", fields={"source": ["at most 200,000 characters"]})
    check = strategy_validate(source=source)
    if not check.valid:
        messages = [f"line {i['line']}: {i['message']}" if i["line"] else i["message"] for i in check.issues]
        raise InvalidCode(
            f"The strategy code is invalid: {messages[0]}",
            fields={"source": messages, "issues": check.issues},
        )
    return check


def _add_version(strategy: Strategy, source: str, described: dict[str, Any]) -> StrategyVersion:
    return StrategyVersion.objects.create(
        strategy=strategy,
        version=strategy.version,
        name=strategy.name,
        description=strategy.description,
        style=described["style"],
        params_schema=described["params"],
        source=source,
        code_hash=code_hash(source),
    )


def _check_name(user, name: Any, *, exclude: int | None = None) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise ValidationFailed("name must be 1 to 100 characters.", fields={"name": ["1 to 100 characters"]})
    name = name.strip()
    clash = Strategy.objects.filter(owner=user, name=name)
    if exclude:
        clash = clash.exclude(id=exclude)
    if clash.exists():
        raise ValidationFailed(
            f"You already have a strategy named {name!r}.",
            fields={"name": ["already used by another strategy"]},
        )
    return name


def _check_description(description: Any) -> str:
    if not isinstance(description, str):
        raise ValidationFailed("description must be a string.", fields={"description": ["must be a string"]})
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise ValidationFailed(
            f"description must be at most {MAX_DESCRIPTION_CHARS:,} characters.",
            fields={"description": [f"at most {MAX_DESCRIPTION_CHARS:,} characters"]},
        )
    return description


@transaction.atomic
def strategy_create(
    *, user, source: str, name: str | None = None, description: str | None = None
) -> Strategy:
    """Save a new user strategy (version 1) after validating its code.

    ``name`` and ``description`` default to what the code declares.
    """
    check = _checked_or_raise(source)
    described = check.strategy or {}
    name = _check_name(user, name if name not in (None, "") else described.get("name") or "strategy")
    description = _check_description(
        description if description is not None else described.get("description", "")
    )
    strategy = Strategy.objects.create(
        owner=user,
        name=name,
        description=description,
        style=described["style"],
        params_schema=described["params"],
        source=source,
        version=1,
    )
    _add_version(strategy, source, described)
    return strategy


@transaction.atomic
def strategy_update(
    *, strategy: Strategy, name: str | None = None, description: str | None = None, source: str | None = None
) -> Strategy:
    """Rename/describe a strategy (``None``: unchanged); a changed ``source`` is validated and
    becomes a new version."""
    strategy = Strategy.objects.select_for_update().get(id=strategy.id)
    if name is not None:
        strategy.name = _check_name(strategy.owner, name, exclude=strategy.id)
    if description is not None:
        strategy.description = _check_description(description)
    if source is not None and source != strategy.source:
        check = _checked_or_raise(source)
        strategy.source = source
        strategy.style = check.strategy["style"]
        strategy.params_schema = check.strategy["params"]
        strategy.version += 1
        strategy.save()
        _add_version(strategy, strategy.source, check.strategy)
    else:
        strategy.save()
    return strategy


def strategy_delete(*, strategy: Strategy) -> None:
    """Delete a strategy; its runs keep their name, code version and hash."""
    strategy.delete()
