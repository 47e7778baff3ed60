"""A timer thread per process that runs registered jobs when they are due, in the app's context.

Stand-in of the shared interface in INTERFACES.md (owner: panel-ops); the merge keeps the owner's file.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections.abc import Callable

from flask import Flask, request_started

logger = logging.getLogger(__name__)

_jobs: dict[str, tuple[float, Callable[[], None]]] = {}
_next_run: dict[str, float] = {}
_lock = threading.Lock()
_thread: tuple[int, threading.Thread] | None = None
_stop = threading.Event()


def every(name: str, seconds: float, job: Callable[[], None]) -> None:
    """Run `job` every `seconds` (registering a name again replaces its job)."""
    with _lock:
        _jobs[name] = (seconds, job)
        _next_run.setdefault(name, 0.0)


def run_due(app: Flask) -> None:
    """Run the jobs that are due, once, synchronously, in `app`'s context."""
    now = time.monotonic()
    with _lock:
        due = [(name, job) for name, (seconds, job) in _jobs.items() if _next_run.get(name, 0.0) <= now]
        for name, _job in due:
            _next_run[name] = now + _jobs[name][0]
    for name, job in due:
        try:
            with app.app_context():
                job()
        except Exception:
            logger.exception("gatekeeper timer job %s failed", name)


def start(app: Flask) -> None:
    """Start this process's timer thread for `app` (once per process; again in a forked child)."""
    global _thread
    if not app.config.get("GATEKEEPER_TIMER", True):
        return
    with _lock:
        if _thread is not None and _thread[0] == os.getpid():
            return
        thread = threading.Thread(target=_run_forever, args=(app,), name="gatekeeper-timer", daemon=True)
        _thread = (os.getpid(), thread)
    thread.start()


def _run_forever(app: Flask) -> None:
    while not _stop.wait(0.5):
        run_due(app)


def _start_on_first_request(sender: Flask, **_: object) -> None:
    if _thread is None or _thread[0] != os.getpid():
        start(sender)


request_started.connect(_start_on_first_request)
atexit.register(_stop.set)
