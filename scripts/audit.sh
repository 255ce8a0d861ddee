#!/usr/bin/env bash
# Audit the pinned requirements for known vulnerabilities (pip-audit). A vulnerability
# fails; an unreachable vulnerability service only warns (CI must not need the network).
source "$(dirname "$0")/bootstrap.sh"
echo "==> pip-audit"
python scripts/audit_dependencies.py requirements.txt
