"""``manage.py serve``: the one web server command (uvicorn), its fixed options and refusals."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from apps.core.management.commands.serve import server_options


def test_the_server_trusts_no_forwarded_header_and_leaves_logging_to_django():
    options = server_options(host="0.0.0.0", port=8000, workers=3)
    assert options["proxy_headers"] is False  # NUM_PROXIES decides (docs/security.md)
    assert options["log_config"] is None and options["access_log"] is False
    assert options["ws_per_message_deflate"] is False
    assert options["lifespan"] == "off"
    assert (options["host"], options["port"], options["workers"]) == ("0.0.0.0", 8000, 3)
    assert options["timeout_graceful_shutdown"] == 10  # production's grace for running requests
    assert server_options(host="h", port=1, graceful_timeout=1)["timeout_graceful_shutdown"] == 1


def test_the_embedded_default_refuses_several_processes(settings):
    settings.EMBEDDED = True
    with pytest.raises(CommandError, match="one server process"):
        call_command("serve", workers=2)
    with pytest.raises(CommandError, match="at least 1"):
        call_command("serve", workers=0)
