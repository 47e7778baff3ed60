"""Trying guarded releases: `DEMO_BROKEN_CHECKOUT` makes NEW_CHECKOUT's ON fail that share of home pages,
and `scripts/traffic.py` (`make traffic`) sends new visitors to the running app, to this machine only."""

import contextlib
import importlib.util
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.config import ConfigError, Settings

SCRIPT = Path(__file__).parents[1] / "scripts" / "traffic.py"


def traffic_script():
    spec = importlib.util.spec_from_file_location("traffic", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def serving(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()


def test_a_broken_checkout_fails_the_home_pages_that_get_on(make_app):
    app = make_app(DEMO_BROKEN_CHECKOUT=1.0, PROPAGATE_EXCEPTIONS=False)
    with gatekeeper.forced_variant("NEW_CHECKOUT", "ON", app):
        assert app.test_client().get("/").status_code == 500
    with gatekeeper.forced_variant("NEW_CHECKOUT", "OFF", app):
        assert app.test_client().get("/").status_code == 200


def test_the_checkout_is_not_broken_unless_asked(app, force_flag):
    force_flag("NEW_CHECKOUT", "ON")
    assert app.test_client().get("/").status_code == 200


@pytest.mark.parametrize("value", ["1.5", "-0.1", "often"])
def test_a_broken_share_outside_0_to_1_is_a_clear_error(value):
    with pytest.raises(ConfigError, match=r"DEMO_BROKEN_CHECKOUT=.* is not a share from 0 to 1"):
        Settings.from_env("/srv/instance", {"DEMO_BROKEN_CHECKOUT": value})


def test_the_traffic_script_sends_new_visitors_and_counts_their_variants(app, capsys):
    with serving(app) as url:
        assert traffic_script().main(["--url", url, "--requests", "20", "--concurrency", "2"]) == 0
    printed = capsys.readouterr().out
    counted = sum(int(line.split()[-1].replace(",", "")) for line in printed.splitlines())
    assert counted == 20
    assert "HTTP 200" in printed


def test_the_traffic_script_refuses_another_machine_without_allow_remote(capsys):
    with pytest.raises(SystemExit):
        traffic_script().main(["--url", "http://example.com/"])
    assert "is not this machine: add --allow-remote" in capsys.readouterr().err
