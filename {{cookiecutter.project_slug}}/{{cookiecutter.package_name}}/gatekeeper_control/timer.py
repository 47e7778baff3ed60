"""The timer: jobs that run every few seconds in every process, with or without traffic.

`every(name, seconds, job)` registers a job (at import time, like a blueprint's routes). One daemon thread
per process runs each job when it is due, inside the app context of every app the timer was started for:
lazily on an app's first request, or by `start(app)`. After a fork the child starts its own thread on its
first request (the parent's thread does not survive a fork); at exit the thread is told to stop. A job's
exception is logged and the job runs again at its next time. A job that must run in one process at a time
takes a lease itself (leases.py).

`GATEKEEPER_TIMER` (default on) turns the thread off for an app: tests then call `run_due(app)` to run every
job once, in their own thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask

log = logging.getLogger(__name__)

# The longest the thread sleeps, so a job registered or an app started later is picked up soon.
MAX_SLEEP = 1.0


@dataclass
class _Job:
    seconds: float
    run: Callable[[], None]
    next_at: dict[int, float] = field(default_factory=dict)  # id(app) -> monotonic time it is due next


_jobs: dict[str, _Job] = {}
_apps: weakref.WeakSet[Flask] = weakref.WeakSet()
_lock = threading.Lock()
_stop = threading.Event()
_thread: threading.Thread | None = None
_thread_pid = 0


def every(name: str, seconds: float, job: Callable[[], None]) -> None:
    """Run `job()` every `seconds` in each process, in the app context of each started app. Registering a
    name again replaces that job."""
    if seconds <= 0:
        raise ValueError(f"timer job {name!r}: seconds must be positive, not {seconds}")
    with _lock:
        _jobs[name] = _Job(float(seconds), job)


EXTENSION_KEY = "gatekeeper_timer"


def remove(name: str) -> None:
    """Stop running job `name` (nothing happens if there is none)."""
    with _lock:
        _jobs.pop(name, None)


def init_app(app: Flask) -> None:
    """Start the timer for `app` on its first request (unless `GATEKEEPER_TIMER` is off). The hook leaves
    the app once the thread runs (later requests pay nothing) and comes back in a forked child."""
    app.config.setdefault("GATEKEEPER_TIMER", True)
    if not app.config["GATEKEEPER_TIMER"]:
        return

    def start_on_first_request() -> None:
        start(app)

    app.extensions[EXTENSION_KEY] = start_on_first_request
    app.before_request(start_on_first_request)


def _set_hook(app: Flask, armed: bool) -> None:
    """Put the app's first-request hook in its `before_request` list, or take it out. Always a new list:
    Flask goes on looping over the one it took for the request under way."""
    hook = app.extensions.get(EXTENSION_KEY)
    hooks = app.before_request_funcs.get(None, [])
    if hook is None or (hook in hooks) == armed:
        return
    app.before_request_funcs[None] = [hook, *hooks] if armed else [f for f in hooks if f is not hook]


def enabled(app: Flask) -> bool:
    """Whether the timer thread runs `app`'s jobs: `init_app(app)` was called with `GATEKEEPER_TIMER` on."""
    return EXTENSION_KEY in app.extensions


def start(app: Flask) -> None:
    """Run the jobs for `app` in this process's timer thread, starting the thread if it is not running
    (again after a fork: threads do not survive one). Does nothing unless `enabled(app)`."""
    global _thread, _thread_pid
    if not enabled(app):
        return
    with _lock:
        _apps.add(app)
        _set_hook(app, armed=False)
        if _thread is not None and _thread_pid == os.getpid() and _thread.is_alive():
            return
        _stop.clear()
        _thread = threading.Thread(target=_loop, name="gatekeeper-timer", daemon=True)
        _thread_pid = os.getpid()
        _thread.start()


def stop(app: Flask | None = None) -> None:
    """Stop running `app`'s jobs; without an app, stop the thread (at exit)."""
    global _thread
    with _lock:
        if app is not None:
            _apps.discard(app)
            if _apps:
                return
        thread, _thread = _thread, None
        _stop.set()
    if thread is not None and thread is not threading.current_thread() and thread.is_alive():
        thread.join(timeout=5)


def run_due(app: Flask) -> None:
    """Run every registered job once for `app`, now, in this thread (tests with `GATEKEEPER_TIMER` off)."""
    with _lock:
        jobs = list(_jobs.items())
    for name, job in jobs:
        _run(app, name, job)


def _loop() -> None:
    while not _stop.is_set():
        now = time.monotonic()
        with _lock:
            apps, jobs = list(_apps), list(_jobs.items())
        soonest = now + MAX_SLEEP
        for app in apps:
            for name, job in jobs:
                if _stop.is_set():
                    return
                due = job.next_at.get(id(app), now)
                if due <= now:
                    _run(app, name, job)
                    due = job.next_at[id(app)] = time.monotonic() + job.seconds
                soonest = min(soonest, due)
        _stop.wait(max(0.0, soonest - time.monotonic()))


def _run(app: Flask, name: str, job: _Job) -> None:
    try:
        with app.app_context():
            job.run()
    except Exception:  # a job's failure must never stop the timer
        log.exception("gatekeeper timer job %s failed", name)


def _after_fork_in_child() -> None:
    global _lock, _stop, _thread
    _lock, _stop, _thread = threading.Lock(), threading.Event(), None
    for app in list(_apps):  # the parent's thread did not come along: the child's first request starts one
        _set_hook(app, armed=True)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(stop)
