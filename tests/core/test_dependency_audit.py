"""scripts/audit_dependencies.py: a known vulnerability fails CI, an unreachable service only warns."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def audit():
    spec = importlib.util.spec_from_file_location(
        "audit_dependencies", ROOT / "scripts" / "audit_dependencies.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def report(*dependencies) -> str:
    return json.dumps({"dependencies": list(dependencies), "fixes": []})


def test_a_known_vulnerability_fails(audit):
    vulnerable = {
        "name": "django",
        "version": "4.2.0",
        "vulns": [{"id": "PYSEC-2023-1", "fix_versions": ["4.2.1"]}],
    }
    clean = {"name": "celery", "version": "5.7.0", "vulns": []}
    code, message = audit.verdict(1, report(vulnerable, clean), "")
    assert code == 1 and "django 4.2.0: PYSEC-2023-1 (fixed in 4.2.1)" in message


def test_no_vulnerability_passes(audit):
    code, message = audit.verdict(0, report({"name": "celery", "version": "5.7.0", "vulns": []}), "")
    assert code == 0 and message.startswith("No known vulnerabilities")


def test_an_unreachable_service_warns_and_passes(audit):
    # pip-audit's PyPI service reports an unreachable PyPI as every dependency "not found".
    skipped = [{"name": n, "skip_reason": f"Dependency not found on PyPI: {n}"} for n in ("django", "celery")]
    code, message = audit.verdict(0, report(*skipped), "")
    assert code == 0 and "NOT audited" in message
    code, message = audit.verdict(1, "", "requests.exceptions.ConnectionError: Max retries exceeded")
    assert code == 0 and "NOT audited" in message


def test_pip_audit_failing_for_another_reason_fails(audit):
    code, _message = audit.verdict(1, "", "error: invalid requirement: 'django=='")
    assert code == 1


def test_every_requirement_is_pinned_exactly():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    unpinned = [line for line in lines if line and "==" not in line]
    assert unpinned == []
