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
# PYTEST_WORKERS=N runs the suite in N pytest-xdist processes (each with its own test
# database and Redis database; the tests that start a Celery worker, the web server or
# Chromium share one of them). Serial is the default: on the 2-core machine it
# measured faster (docs/architecture.md, "Tests").
exec python -m pytest -n "${PYTEST_WORKERS:-0}" --dist loadgroup --durations=30 "$@"
