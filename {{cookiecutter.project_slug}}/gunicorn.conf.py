"""gunicorn's settings for `make serve` (or `gunicorn -c gunicorn.conf.py`), each from the environment.

Safe defaults: two workers of four threads each on 127.0.0.1:8000, reachable only from this machine (put a
reverse proxy in front, or set GUNICORN_BIND=0.0.0.0:8000 in a container). The app is built in each worker
after the fork (no `preload_app`), and each worker opens its own database connections, its PostgreSQL change
listener included.

Threaded workers (gthread), not gunicorn's default sync ones: a sync worker holds one connection at a time
until its request has arrived, so a client that connects and sends nothing (a browser's speculative
connection, or anyone on purpose) holds a whole worker for `timeout` seconds, and two such connections stopped
a two-worker site. A gthread worker waits for a request's first bytes a few seconds at most, then parks the
connection in its event loop, off the threads that serve requests; idle keep-alive connections are closed
after `keepalive` seconds. A buffering proxy in front (nginx) protects against slow clients too.
"""

import os
from typing import Any


def _positive_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"{name}={value!r} must be a whole number of at least 1, e.g. {name}={default}")
    return int(value)


wsgi_app = "{{ cookiecutter.package_name }}:create_app()"
bind = os.environ.get("GUNICORN_BIND") or "127.0.0.1:8000"
workers = _positive_int("WEB_CONCURRENCY", 2)  # the name Heroku, Render and others set
worker_class = "gthread"  # idle connections cost a socket, not a worker (see above)
threads = _positive_int("GUNICORN_THREADS", 4)
keepalive = 5  # seconds an idle keep-alive connection is kept open
timeout = _positive_int("GUNICORN_TIMEOUT", 30)
graceful_timeout = timeout
# The proxy addresses allowed to set X-Forwarded-* (the app trusts them only through ProxyFix, if enabled).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS") or "127.0.0.1"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or "-"
errorlog = "-"


def post_worker_init(worker: Any) -> None:  # gunicorn's Worker, its app loaded
    """Start gatekeeper's timer as each worker boots, so due scheduled changes are made on time even before
    the worker's first request (without this hook the first request starts it)."""
    from {{ cookiecutter.package_name }}.gatekeeper_control import timer

    timer.start(worker.wsgi)
