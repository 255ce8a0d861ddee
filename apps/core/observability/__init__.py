"""Observability: structured logs with request/user/task context, secret redaction, and the
Prometheus metrics behind ``/metrics``. docs/operations.md explains how to run them."""
