"""gunicorn.conf.py (`make serve`) takes workers and bind address from the environment, with safe defaults."""

from __future__ import annotations

import runpy
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from {{ cookiecutter.package_name }}.gatekeeper_control import timer

CONF = Path(__file__).resolve().parent.parent / "gunicorn.conf.py"
SETTINGS = ("GUNICORN_BIND", "WEB_CONCURRENCY", "GUNICORN_THREADS", "GUNICORN_TIMEOUT", "FORWARDED_ALLOW_IPS")


def settings(monkeypatch: pytest.MonkeyPatch, **environ: str) -> dict:
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_defaults_serve_two_threaded_workers_on_loopback_only(monkeypatch):
    """Without settings, gunicorn listens on 127.0.0.1:8000 (not the network) with two workers of four
    threads each (gthread: an idle connection never holds a worker; see test_security_served.py)."""
    conf = settings(monkeypatch)
    assert (conf["bind"], conf["workers"], conf["threads"]) == ("127.0.0.1:8000", 2, 4)
    assert conf["worker_class"] == "gthread"
    assert conf["wsgi_app"] == "{{ cookiecutter.package_name }}:create_app()"
    assert conf["forwarded_allow_ips"] == "127.0.0.1"


def test_bind_and_workers_come_from_the_environment(monkeypatch):
    """GUNICORN_BIND and WEB_CONCURRENCY set the address and the number of worker processes."""
    conf = settings(monkeypatch, GUNICORN_BIND="0.0.0.0:9000", WEB_CONCURRENCY="5")
    assert (conf["bind"], conf["workers"]) == ("0.0.0.0:9000", 5)


@pytest.mark.parametrize("value", ["zero", "0", "-2", "1.5"])
def test_a_bad_worker_count_stops_with_a_message_naming_the_setting(monkeypatch, value):
    """gunicorn refuses to start, and says which variable to fix and what it should look like."""
    with pytest.raises(SystemExit, match=r"WEB_CONCURRENCY=.* must be a whole number of at least 1"):
        settings(monkeypatch, WEB_CONCURRENCY=value)


def test_each_worker_starts_gatekeepers_timer_as_it_boots(monkeypatch, make_app):
    """No request needed: the worker's app runs its timer jobs from boot (post_worker_init)."""
    app = make_app(GATEKEEPER_TIMER=True)
    ran = threading.Event()
    timer.every("test-worker-boot", 0.05, ran.set)
    try:
        settings(monkeypatch)["post_worker_init"](SimpleNamespace(wsgi=app))
        assert ran.wait(timeout=15)
    finally:
        timer.remove("test-worker-boot")
        timer.stop(app)
