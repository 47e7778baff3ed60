"""Forks for tests/test_processes.py: a check run in a forked child, and a fork Python's hooks never see.

Run as `python -m tests.fork_helpers DATABASE_URL`, this module forks without Python's hooks (as uWSGI does
without `py-call-osafterfork`) while a thread holds the store's lock, and prints "ok" when the child still
sees a change made elsewhere within the TTL. It runs in a process of its own because such a fork copies
every lock any thread holds at that moment (logging's, the import lock, a connection pool's) into a child
where that thread does not exist. In a test process those threads are pytest's and every earlier test's
(exposure writers, change-feed listeners, outcome flushers), and one of them holding such a lock at the fork
left the child waiting forever in CI. Here the only other thread is the one that holds the store's lock.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask

from {{ cookiecutter.package_name }}.gatekeeper import Gatekeeper
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from tests.store_helpers import BOUND, another_process, eventually

TTL = 0.2  # seconds: the job's staleness bound, short so the test is quick
CHILD_BOUND = 60.0  # seconds a forked child gets to answer


def variant_in_a_job(app: Flask, user_id: str = "42") -> str | None:
    """What a job sees: an app context, no request, a Gatekeeper for one user (per unit of work)."""
    with app.app_context():
        return Gatekeeper(user_id=user_id).ff_variant("MY_NEW_FEATURE")


def force_elsewhere(app: Flask, variant: str) -> None:
    """Another process (the dashboard's, say) forces `variant` of MY_NEW_FEATURE."""
    with app.app_context():
        store.force("MY_NEW_FEATURE", variant, actor="test")


@contextmanager
def lock_held_by_another_thread(app: Flask) -> Iterator[None]:
    """Inside the block another thread holds `app`'s snapshot lock, as a reload in progress does."""
    app_store = app.extensions["gatekeeper_store"]
    release, held = threading.Event(), threading.Event()

    def hold() -> None:
        with app_store.lock:
            held.set()
            release.wait(BOUND)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(BOUND)
        yield
    finally:
        release.set()
        holder.join()


def in_a_forked_child(check: Callable[[], bool], fork: Callable[[], int] = os.fork) -> bool:
    """Fork, run `check` in the child (its answer comes back through a pipe), and wait for the child."""
    read_end, write_end = os.pipe()
    pid = fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        answer = b"no"
        try:
            answer = b"ok" if check() else b"no"
        except BaseException as error:
            answer = repr(error).encode()[:200]
        finally:
            os.write(write_end, answer)
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], CHILD_BOUND)
        answer = os.read(read_end, 256) if ready else b""
    finally:
        os.close(read_end)
        if not answer:  # a child stuck (on a lock held at the fork, say) fails the test, not the suite
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert answer, f"the forked child gave no answer in {CHILD_BOUND:g} s"
    assert answer in (b"ok", b"no"), f"the child raised {answer.decode()}"
    return answer == b"ok"


def fork_without_pythons_hooks() -> int:
    """fork() called in C, as uWSGI does without `py-call-osafterfork`: no `os.register_at_fork` hook runs.

    Through `PyDLL`, which keeps the GIL across the call (`CDLL` lets it go, and a thread that took it
    then would own it in a child where that thread does not exist)."""
    return ctypes.PyDLL(None, use_errno=True).fork()


def a_hookless_child_sees_a_change_made_elsewhere(database_url: str) -> bool:
    """The scenario this module runs as a script, on the database at `database_url`."""
    worker = another_process(None, database_url=database_url, ttl=TTL)
    elsewhere = another_process(None, database_url=database_url)
    assert variant_in_a_job(worker.app) == "NOT_VISIBLE"
    with lock_held_by_another_thread(worker.app):
        force_elsewhere(elsewhere.app, "VISIBLE")
        child = lambda: eventually(lambda: variant_in_a_job(worker.app) == "VISIBLE")  # noqa: E731
        return in_a_forked_child(child, fork=fork_without_pythons_hooks)


if __name__ == "__main__":
    print("ok" if a_hookless_child_sees_a_change_made_elsewhere(sys.argv[1]) else "no")
