"""The import rules of docs/architecture.md hold: the contracts in .importlinter, checked with lint-imports."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# Loops the one-job-model work removes (backtests services <-> optimization <-> tasks,
# marketdata services <-> download <-> tasks). Once one of these passes (strict xfail
# reports XPASS as a failure), fold its ancestor into no-loops-in-apps and drop it here.
PENDING = {
    "no-loops-in-backtests": "backtests services <-> optimization <-> tasks loop until the job-model merge",
    "no-loops-in-marketdata": "marketdata services <-> download <-> tasks loop until the job-model merge",
}


def contract_ids() -> list[str]:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    prefix = "importlinter:contract:"
    return [section.removeprefix(prefix) for section in parser.sections() if section.startswith(prefix)]


def lint_imports(*contracts: str) -> subprocess.CompletedProcess:
    args = [str(LINT_IMPORTS), "--config", str(CONFIG), "--no-cache"]
    for contract in contracts:
        args += ["--contract", contract]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_every_pending_contract_is_in_the_config():
    assert set(PENDING) <= set(contract_ids())


def test_the_import_contracts_are_kept():
    kept = [contract for contract in contract_ids() if contract not in PENDING]
    assert {"app-layers", "engine-pure", "exchange-adapter", "no-loops-in-apps"} <= set(kept)
    result = lint_imports(*kept)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "contract",
    [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=why)) for name, why in PENDING.items()],
)
def test_pending_contract_is_kept(contract):
    result = lint_imports(contract)
    assert result.returncode == 0, result.stdout + result.stderr
