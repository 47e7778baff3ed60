"""After a fork: what the folder's objects re-create in the child, with no hook the app must remember.

gunicorn `--preload`, `multiprocessing` with fork, uWSGI without lazy-apps and Celery's prefork pool all
fork a process that may already hold gatekeeper's threads, locks and database connections. In the child
those threads are not running, a lock one of them held stays held for ever, and a pooled connection is a
socket the parent still uses: two processes talking on one socket garble each other's answers. So each
object that owns such things registers a method here (`in_child(obj.method)`), and `os.register_at_fork`
calls it in every child right after the fork: new locks, no threads (they start again on first use),
connections forgotten without being closed (closing would end the parent's session too).

Registrations are weak (a test app's store can die with its app); a callback that raises is logged and the
others still run. The parent is never touched.

A server that forks in C without telling Python (uWSGI without `py-call-osafterfork`) runs no such hook:
`ensure_this_process()`, which the store calls each time it goes to the database, notices the new pid and
runs the callbacks then, so such a child is set right at its first database check (within the TTL).

Drop-in: imports only the standard library.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_callbacks: list[weakref.WeakMethod[Callable[[], Any]]] = []
_registering = threading.Lock()
_pid = os.getpid()  # the process the registered objects were last prepared for


def in_child(method: Callable[[], Any]) -> None:
    """Call `method` (a bound method, held weakly) in every child forked from now on."""
    with _registering:
        _callbacks[:] = [ref for ref in _callbacks if ref() is not None]
        _callbacks.append(weakref.WeakMethod(method))


def ensure_this_process() -> None:
    """Run the after-fork callbacks if this is a forked child that has not run them yet (a fork that
    bypassed `os.register_at_fork`); a pid comparison otherwise."""
    if os.getpid() != _pid:
        _after_fork_in_child()


def _after_fork_in_child() -> None:
    global _registering, _pid
    if os.getpid() == _pid:  # already prepared (the hook ran, and now a pid check)
        return
    _pid = os.getpid()
    _registering = threading.Lock()  # the parent may have held it, in another thread, at the fork
    for ref in list(_callbacks):
        callback = ref()
        if callback is None:
            continue
        try:
            callback()
        except Exception:  # one object's trouble must not leave the others unprepared
            log.exception("gatekeeper: preparing %r after a fork failed", callback)


os.register_at_fork(after_in_child=_after_fork_in_child)
