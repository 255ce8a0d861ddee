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


def test_each_server_process_builds_the_app_then_freezes_what_it_loaded():
    """uvicorn calls ``config.asgi.served_application`` in each process (a factory): by then every
    view is imported and the startup's objects are out of the garbage collector's full
    collections. Run in a child process: freezing the test process itself would pin its objects."""
    import json
    import os
    import subprocess
    import sys

    from apps.core.management.commands.serve import APPLICATION

    assert APPLICATION == "config.asgi:served_application"
    assert server_options(host="h", port=1)["factory"] is True
    probe = (
        "import gc, json, sys\n"
        "from config.asgi import application, served_application\n"
        "before = gc.get_freeze_count()\n"
        "views_before = 'apps.orders.api.views' in sys.modules\n"
        "served = served_application()\n"
        "print(json.dumps([before, gc.get_freeze_count(), views_before,\n"
        "                  'apps.orders.api.views' in sys.modules, served is application]))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    before, frozen, views_before, views_after, same = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == 0 and frozen > 100_000  # Django and the apps: hundreds of thousands of objects
    assert not views_before and views_after and same
