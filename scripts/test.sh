#!/usr/bin/env bash
# Run the whole test suite: lint, format check, then pytest.
# Uses DATABASE_URL / REDIS_URL when set (real PostgreSQL, Redis, Celery worker,
# ASGI server); without them the tests that need those services are skipped.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/accounts -x
source "$(dirname "$0")/bootstrap.sh"
export DJANGO_ENV=test
echo "==> ruff check"
ruff check .
echo "==> ruff format --check"
ruff format --check .
echo "==> pytest"
exec python -m pytest "$@"
