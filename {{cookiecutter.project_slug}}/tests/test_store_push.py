"""Changes reach other processes without waiting for the TTL (LISTEN/NOTIFY on PostgreSQL), and a request
never waits for the database to refresh the snapshot: it is served the current one while a thread refreshes.

The push tests need PostgreSQL: they run when TEST_DATABASE_URL names a server, and are skipped otherwise.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import event

from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from tests.databases import TEST_DATABASE_URL
from tests.store_helpers import BOUND, FakeClock, Process, another_process, drop_store_tables, eventually

needs_postgresql = pytest.mark.skipif(
    not TEST_DATABASE_URL.startswith("postgresql"),
    reason="LISTEN/NOTIFY needs TEST_DATABASE_URL=postgresql...",
)


@pytest.fixture
def listening(app):
    """Another process on the same database, listening, with a TTL far too long to explain any update."""
    other = another_process(app, ttl=3600, push=True)
    with other.app.app_context():
        other.store.snapshot()
    state = other.app.extensions["gatekeeper_store"]
    yield other
    state.close()
    other.engine.dispose()


def forced_in(process: Process) -> dict[str, str]:
    with process.app.app_context():
        return dict(process.store.snapshot().forced)


def listener_connected(process: Process) -> bool:
    feed = process.app.extensions["gatekeeper_store"].feed
    return feed is not None and feed.connected


@needs_postgresql
def test_a_change_reaches_a_listening_process_long_before_its_ttl(app, listening):
    """A forced variant written by one process is in the other's snapshot at once, not after an hour."""
    assert eventually(lambda: listener_connected(listening))
    with app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    assert eventually(lambda: forced_in(listening) == {"MY_NEW_FEATURE": "VISIBLE"})


@needs_postgresql
def test_user_overrides_and_their_removal_are_pushed_too(app, listening, user):
    """Every kind of write notifies: a user override arrives, and so does clearing it."""
    assert eventually(lambda: listener_connected(listening))

    def overrides() -> dict:
        with listening.app.app_context():
            return {flag: dict(users) for flag, users in listening.store.snapshot().user_overrides.items()}

    with app.app_context():
        store.set_user_override("MY_NEW_FEATURE", user.email, "VISIBLE", actor="test")
    assert eventually(lambda: overrides() == {"MY_NEW_FEATURE": {str(user.id): "VISIBLE"}})
    with app.app_context():
        store.clear_user_override("MY_NEW_FEATURE", str(user.id), actor="test")
    assert eventually(lambda: overrides() == {})


@needs_postgresql
def test_a_write_that_changes_nothing_is_not_announced(app, listening):
    """Forcing what is already forced writes nothing, so listeners reload nothing."""
    assert eventually(lambda: listener_connected(listening))
    with app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    assert eventually(lambda: forced_in(listening) == {"MY_NEW_FEATURE": "VISIBLE"})
    with listening.app.app_context():
        before = listening.store.snapshot()
    with app.app_context():
        assert store.force("MY_NEW_FEATURE", "VISIBLE", actor="test") is None
    time.sleep(0.3)
    with listening.app.app_context():
        assert listening.store.snapshot() is before


@needs_postgresql
def test_the_listener_connects_where_gatekeeper_store_listen_url_says(make_app):
    """Behind PgBouncer in transaction mode the app's URL cannot LISTEN: the listener uses its own URL."""
    direct = "postgresql://listener@db.internal:5432/app"
    app = make_app(GATEKEEPER_STORE_LISTEN_URL=direct)
    with app.app_context():
        assert app.extensions["gatekeeper_store"].change_feed().conninfo == direct


def test_on_a_request_a_slow_database_adds_no_wait(app):
    """Past the TTL, with the database stuck, a request gets the snapshot it had at once; the refreshing
    thread brings the new one when the database answers."""
    clock = FakeClock()
    other = another_process(app, clock=clock, ttl=5)
    with other.app.test_request_context("/"):
        first = other.store.snapshot()
    with app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    clock.advance(6)
    database_answers = threading.Event()

    def stuck(*args: object) -> None:
        database_answers.wait(BOUND)

    event.listen(other.engine, "before_cursor_execute", stuck)
    try:
        with other.app.test_request_context("/"):
            assert other.store.snapshot() is first  # while the refresh waits on the database
            database_answers.set()
            assert eventually(lambda: other.store.snapshot().forced == {"MY_NEW_FEATURE": "VISIBLE"})
    finally:
        database_answers.set()
        event.remove(other.engine, "before_cursor_execute", stuck)


def test_a_request_keeps_the_last_snapshot_when_the_store_breaks(app):
    """With the store's tables gone after a load, requests keep the last snapshot; the thread reports why."""
    clock = FakeClock()
    other = another_process(app, clock=clock, ttl=5)
    with other.app.test_request_context("/"):
        other.store.snapshot()
    with app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    with other.app.app_context():
        assert other.store.snapshot(max_age=0).forced == {"MY_NEW_FEATURE": "VISIBLE"}
    drop_store_tables(app)
    clock.advance(6)
    with other.app.test_request_context("/"):
        assert other.store.snapshot().forced == {"MY_NEW_FEATURE": "VISIBLE"}
        assert eventually(lambda: not other.store.available)
        assert other.store.snapshot().forced == {"MY_NEW_FEATURE": "VISIBLE"}
