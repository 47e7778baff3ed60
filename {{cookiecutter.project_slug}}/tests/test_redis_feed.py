"""GATEKEEPER_CHANGE_FEED picks how changes reach other processes; a Redis URL sends them through Redis.

The tests that talk to Redis start a throwaway `redis-server` (from PATH, on a free port of 127.0.0.1, saving
nothing) and are skipped, saying so, where there is none.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.gatekeeper_control.push import PostgresFeed, RedisFeed, feed_for
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from tests.databases import TEST_DATABASE_URL
from tests.store_helpers import BOUND, Process, another_process, eventually

REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A redis-server of our own on 127.0.0.1, in a temporary folder, saving nothing; stop and start it."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(
            [REDIS_SERVER, *options, "--dir", str(self.folder)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not eventually(self._answers):
            self.stop()
            raise AssertionError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # as a crash would: every connection drops at once
            self.process.wait(timeout=BOUND)
            self.process = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip("needs redis-server on PATH (Debian: apt-get install redis-server)")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def writer(make_app, redis_server):
    """The app, publishing its writes on the test's Redis."""
    return make_app(GATEKEEPER_CHANGE_FEED=redis_server.url)


@pytest.fixture
def subscriber(writer, redis_server) -> Iterator[Process]:
    """Another process on the same database, subscribed, with a TTL far too long to explain any update."""
    other = another_process(writer, ttl=3600, push=True, change_feed=redis_server.url)
    with other.app.app_context():
        other.store.snapshot()
    state = other.app.extensions["gatekeeper_store"]
    assert eventually(lambda: state.feed is not None and state.feed.connected)
    yield other
    state.feed.stop(wait=BOUND)
    other.engine.dispose()


def forced_in(process: Process) -> dict[str, str]:
    with process.app.app_context():
        return dict(process.store.snapshot().forced)


# --- Which feed ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "database", "expected"),
    [
        ("", "sqlite", None),
        ("", "postgresql", PostgresFeed),
        ("postgresql", "postgresql", PostgresFeed),
        ("none", "postgresql", None),
        ("redis://127.0.0.1:6379/0", "sqlite", RedisFeed),
        ("rediss://cache.internal:6380/1", "postgresql", RedisFeed),
    ],
)
def test_the_setting_picks_the_feed(setting, database, expected):
    """Empty is automatic (LISTEN/NOTIFY on PostgreSQL only), none is the TTL alone, a Redis URL is Redis."""
    feed = feed_for(setting, database, "postgresql://db.internal/app")
    assert (feed is None) if expected is None else isinstance(feed, expected)
    if isinstance(feed, RedisFeed):
        assert feed.url == setting


@pytest.mark.parametrize(("setting", "database"), [("kafka://broker", "sqlite"), ("postgresql", "sqlite")])
def test_a_setting_the_store_cannot_use_says_what_to_type(setting, database):
    """A store copied into another app (no config.py to check it) still refuses a setting it cannot use."""
    with pytest.raises(ValueError, match=r"GATEKEEPER_CHANGE_FEED=.*redis://127\.0\.0\.1:6379/0"):
        feed_for(setting, database, "")


def test_the_store_publishes_on_redis_when_the_setting_names_it(make_app):
    """GATEKEEPER_CHANGE_FEED=redis://... gives the store a Redis feed; unset, the automatic one
    (LISTEN/NOTIFY on PostgreSQL, none on SQLite)."""
    url = "redis://127.0.0.1:6379/3"
    redis_app, automatic_app = make_app(GATEKEEPER_CHANGE_FEED=url), make_app()
    with redis_app.app_context():
        feed = redis_app.extensions["gatekeeper_store"].change_feed()
    assert isinstance(feed, RedisFeed) and feed.url == url
    with automatic_app.app_context():
        feed = automatic_app.extensions["gatekeeper_store"].change_feed()
    if TEST_DATABASE_URL.startswith("postgresql"):
        assert isinstance(feed, PostgresFeed)
    else:
        assert feed is None


def test_a_publish_that_fails_leaves_the_write_standing_and_says_so(make_app, caplog):
    """With nothing listening at the Redis URL the change is still committed, and the log says the other
    processes will see it within the TTL."""
    app = make_app(GATEKEEPER_CHANGE_FEED=f"redis://127.0.0.1:{free_port()}/0")
    with app.app_context(), caplog.at_level(logging.WARNING):
        entry = store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
        assert entry is not None
        assert store.snapshot(max_age=0).forced == {"MY_NEW_FEATURE": "VISIBLE"}
    assert "could not publish a store change to Redis" in caplog.text
    assert "GATEKEEPER_STORE_TTL" in caplog.text


# --- Through a real Redis -----------------------------------------------------------------------------------


def test_a_change_reaches_a_subscribed_process_long_before_its_ttl(writer, subscriber):
    """A forced variant written by one process is in the other's snapshot at once, not after an hour."""
    with writer.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    assert eventually(lambda: forced_in(subscriber) == {"MY_NEW_FEATURE": "VISIBLE"})
    with writer.app_context():
        store.unforce("MY_NEW_FEATURE", actor="test")
    assert eventually(lambda: forced_in(subscriber) == {})


def test_when_redis_comes_back_the_subscriber_reloads_what_it_missed(writer, subscriber, redis_server):
    """A change made while Redis is down is committed; the subscriber, once reconnected, reloads it at once
    (its TTL is an hour)."""
    redis_server.stop()
    state = subscriber.app.extensions["gatekeeper_store"]
    assert eventually(lambda: not state.feed.connected)
    with writer.app_context():
        assert store.force("MY_NEW_FEATURE", "VISIBLE", actor="test") is not None
    assert forced_in(subscriber) == {}  # nothing could have told it yet
    redis_server.start()
    assert eventually(lambda: forced_in(subscriber) == {"MY_NEW_FEATURE": "VISIBLE"}, timeout=BOUND + 10)
    assert state.feed.connected


def test_a_forked_child_subscribes_and_publishes_on_connections_of_its_own(redis_server):
    """After a fork the child does not reuse the parent's publisher or thread: it opens its own, and both
    processes hear the child's publish."""
    heard = threading.Event()
    feed = RedisFeed(redis_server.url, heartbeat=0.5)
    feed.published()
    parent_publisher = feed._publisher
    feed.start(heard.set)
    assert eventually(lambda: feed.connected)
    heard.clear()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return into pytest
        status = b"?"
        try:
            child_heard = threading.Event()
            feed.start(child_heard.set)
            connected = eventually(lambda: feed.connected) and child_heard.wait(BOUND)
            child_heard.clear()
            feed.published()
            own_publisher = feed._publisher is not parent_publisher
            status = b"ok" if connected and own_publisher and child_heard.wait(BOUND) else b"no"
        finally:
            os.write(write_end, status)
            os._exit(0)
    os.close(write_end)
    try:
        assert os.read(read_end, 16) == b"ok"
        assert heard.wait(BOUND)  # the parent's own subscriber heard the child's publish
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
        feed.stop(wait=BOUND)
