"""The import rules of docs/architecture.md hold: the contracts in .importlinter, checked with lint-imports."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


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


def test_the_import_contracts_are_kept():
    contracts = contract_ids()
    assert {"app-layers", "engine-pure", "exchange-adapter", "no-loops-in-apps", "order-vocabulary"} <= set(
        contracts
    )
    result = lint_imports(*contracts)
    assert result.returncode == 0, result.stdout + result.stderr
