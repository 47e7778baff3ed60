"""Same answers everywhere Python runs: in a process that never serves a request (a job, a worker, a script),
in a child forked from a process that already used gatekeeper (gunicorn --preload, multiprocessing with
fork), and in an `async def` view.

These run on SQLite (the TTL carries changes); tests/test_workers_and_forks.py in the template runs them on
PostgreSQL with real gunicorn workers, a multiprocessing child and a worker script.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify, request

from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.gatekeeper import flag_required
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from tests.fork_helpers import (
    CHILD_BOUND,
    TTL,
    eventually,
    force_elsewhere,
    in_a_forked_child,
    lock_held_by_another_thread,
    variant_in_a_job,
)
from tests.store_helpers import another_process

PROJECT = Path(__file__).resolve().parents[1]


def test_a_job_outside_requests_sees_a_change_made_elsewhere_within_the_ttl(app):
    """A worker process that serves no request reloads its snapshot within the TTL, as a web worker does."""
    worker = another_process(app, ttl=TTL)
    assert variant_in_a_job(worker.app) == "NOT_VISIBLE"
    force_elsewhere(app, "VISIBLE")
    assert eventually(lambda: variant_in_a_job(worker.app) == "VISIBLE")


class RecordingFeed:
    """A change feed that records which processes started listening, and lets the test announce a change."""

    connected = False

    def __init__(self) -> None:
        self.started_in: list[int] = []
        self.on_change: Callable[[], None] = lambda: None

    def start(self, on_change: Callable[[], None]) -> None:
        if os.getpid() not in self.started_in:
            self.started_in.append(os.getpid())
        self.on_change = on_change

    def notify_statement(self) -> None:
        return None

    def published(self) -> None:
        pass

    def stop(self, wait: float = 0.0) -> None:
        pass


@pytest.fixture
def job_with_a_feed(app) -> Iterator[tuple[Flask, RecordingFeed]]:
    """A worker process on `app`'s database whose store hears changes through a feed, with a TTL too long to
    explain anything it sees sooner."""
    feed = RecordingFeed()
    worker = another_process(app, ttl=3600, push=True)
    worker.app.extensions["gatekeeper_store"].feed = feed
    yield worker.app, feed
    worker.engine.dispose()


def test_a_job_starts_listening_on_its_first_flag_check(job_with_a_feed):
    """Outside requests the first flag check starts the change feed, as a web worker's first request does."""
    worker, feed = job_with_a_feed
    assert feed.started_in == []
    variant_in_a_job(worker)
    assert feed.started_in == [os.getpid()]


def test_a_job_hears_a_pushed_change_long_before_its_ttl(app, job_with_a_feed):
    """A change announced on the feed is what the job's next Gatekeeper sees, with an hour's TTL."""
    worker, feed = job_with_a_feed
    assert variant_in_a_job(worker) == "NOT_VISIBLE"
    force_elsewhere(app, "VISIBLE")
    feed.on_change()  # what the feed's thread calls when another process's write reaches it
    assert variant_in_a_job(worker) == "VISIBLE"


def test_a_forked_child_listens_again_in_its_own_process(job_with_a_feed):
    """A child forked after the parent started listening starts a listener of its own on its first check."""
    worker, feed = job_with_a_feed
    variant_in_a_job(worker)
    parent = os.getpid()

    def child() -> bool:
        answered = variant_in_a_job(worker) == "NOT_VISIBLE"
        return answered and feed.started_in[-1] == os.getpid() != parent

    assert in_a_forked_child(child)


def test_a_forked_child_sees_a_change_made_after_the_fork_within_the_ttl(app):
    """A child forked from a process that had loaded its snapshot (gunicorn --preload) keeps it fresh."""
    parent = another_process(app, ttl=TTL)
    assert variant_in_a_job(parent.app) == "NOT_VISIBLE"

    def child() -> bool:
        force_elsewhere(app, "VISIBLE")  # through the child's own connections to the database
        return eventually(lambda: variant_in_a_job(parent.app) == "VISIBLE")

    assert in_a_forked_child(child)
    assert eventually(lambda: variant_in_a_job(parent.app) == "VISIBLE")  # the parent's pool still works


def test_a_forked_child_opens_database_connections_of_its_own(app):
    """Connections the parent pooled before the fork, for the app's own queries or gatekeeper's, are never
    handed out in the child (two processes on one socket garble each other's answers); the parent keeps its
    own."""
    with app.app_context():
        db.session.execute(db.text("SELECT 1"))  # the app's own query, before any flag was checked
        db.session.remove()
        pool = db.engine.pool
        assert pool.checkedin() >= 1  # the parent pooled a connection

    def child() -> bool:
        with app.app_context():
            return db.engine.pool.checkedin() == 0 and variant_in_a_job(app) == "NOT_VISIBLE"

    assert in_a_forked_child(child)
    with app.app_context():
        assert db.engine.pool is pool and pool.checkedin() >= 1


def test_a_snapshot_lock_held_at_the_fork_does_not_stop_the_child_refreshing(app):
    """A fork while another thread reloads the snapshot (its lock held) leaves the child a lock of its own,
    so the child still refreshes within the TTL."""
    worker = another_process(app, ttl=TTL)
    assert variant_in_a_job(worker.app) == "NOT_VISIBLE"
    with lock_held_by_another_thread(worker.app):
        force_elsewhere(app, "VISIBLE")
        assert in_a_forked_child(lambda: eventually(lambda: variant_in_a_job(worker.app) == "VISIBLE"))


def test_a_child_forked_without_pythons_hooks_is_set_right_at_its_first_database_check(app):
    """A fork Python's hooks never see (uWSGI without py-call-osafterfork) is noticed by its new pid when
    the store next goes to the database: the child then gets locks of its own, so even with the snapshot
    lock held by another thread at the fork it sees a change made elsewhere within the TTL. The fork is
    made in a process of its own, whose only threads are the scenario's (tests/fork_helpers.py says why)."""
    scenario = [sys.executable, "-m", "tests.fork_helpers", app.config["SQLALCHEMY_DATABASE_URI"]]
    ran = subprocess.run(scenario, cwd=PROJECT, capture_output=True, text=True, timeout=CHILD_BOUND * 2)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "ok"


def every_answer() -> dict[str, object]:
    """Every flag's variant, `ff()` answers and value for the request's user, as a view would ask."""
    gk = request.gk
    return {
        flag: {
            "variant": gk.ff_variant(flag),
            "ff": {variant: gk.ff(flag, variant) for variant in config.get_variants()},
            "value": gk.value(flag),
            "explained": list(gk.explain(flag)),
        }
        for flag, config in FF_CONFIG_MAP.items()
    }


def test_an_async_view_answers_as_a_sync_view_does(app, client, admin, login, force_flag):
    """`request.gk` in an `async def` view (Flask's async support) gives the same answers, reasons and
    values as in a sync view, for the logged-in user, with forced variants and overrides in play."""

    @app.get("/_answers/sync")
    def sync_answers():
        return jsonify(every_answer())

    @app.get("/_answers/async")
    async def async_answers():
        return jsonify(every_answer())

    login(client, admin)
    force_flag("NEW_CHECKOUT", "ON")
    with app.app_context():
        store.set_user_override("HOMEPAGE_EXPERIMENT", str(admin.id), "VARIANT_B", actor="test")
    sync, asynchronous = client.get("/_answers/sync"), client.get("/_answers/async")
    assert sync.status_code == asynchronous.status_code == 200
    assert asynchronous.json == sync.json
    assert sync.json["NEW_CHECKOUT"]["variant"] == "ON"
    assert sync.json["HOMEPAGE_EXPERIMENT"]["explained"][2] == "user_override"


def test_flag_required_guards_an_async_view_as_it_guards_a_sync_one(app, client, force_flag):
    """`@flag_required` on an `async def` view serves it to those who get the variant and 404s the rest."""

    @app.get("/_guarded")
    @flag_required("NEW_CHECKOUT", "ON")
    async def guarded():
        return "the new checkout"

    force_flag("NEW_CHECKOUT", "OFF")
    assert client.get("/_guarded").status_code == 404
    force_flag("NEW_CHECKOUT", "ON")
    response = client.get("/_guarded")
    assert response.status_code == 200 and response.text == "the new checkout"
