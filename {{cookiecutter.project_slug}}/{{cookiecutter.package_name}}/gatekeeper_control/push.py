"""Push store changes to every process: PostgreSQL LISTEN/NOTIFY or Redis pub/sub, behind one `ChangeFeed`.

PostgreSQL (`PostgresFeed`, the default there): every store write runs `NOTIFY gatekeeper_changes` inside its
own transaction, so the notification leaves only if the change commits. Each process keeps one listening
connection, in a daemon thread, and calls the store back on every notification; the store then reloads its
snapshot off the request path. That is one server connection per process: a default server
(max_connections 100) runs out at about 45 processes, and PgBouncer in transaction mode carries no LISTEN.

Redis (`RedisFeed`, `GATEKEEPER_CHANGE_FEED=redis://...`): the writer PUBLISHes after its commit, and each
process SUBSCRIBEs in a daemon thread; Redis fans a message out to thousands of subscribers. A publish has
short socket timeouts and never fails a write: if Redis is away the change is committed all the same, the
failure is logged, and the other processes pick it up within the TTL (or when their subscriber reconnects).

The TTL check stays as the fallback of both: with SQLite, while a listener reconnects, or if a message is
lost. `feed_for` turns the `GATEKEEPER_CHANGE_FEED` setting into a feed.

Processes and fork: threads and connections are made lazily, in the process that first asks for a
snapshot (or publishes), never at import or in `create_app`. Under gunicorn (with or without `--preload`)
that is each worker after the fork. A feed that was already listening before a fork is reset in the child
(forks.py: a new lock, no thread, no publisher), so `start()` there opens a connection of the child's own,
and a Redis publisher made before a fork is never used after it: no connection is shared between processes.

A lost connection (server restart, network) is retried with exponential backoff (0.1 s doubling to 10 s,
with jitter); once it is back the store reloads, so nothing missed while it was down stays missed.

A feed implements four methods: `start(on_change)`, `notify_statement()` (None for a broker),
`published()` (a broker publishes here) and `stop()`.

Drop-in: imports only the standard library; psycopg 3 (>= 3.2) is imported in the listening thread, and
redis-py (>= 5) in the listening thread and the first publish.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

from . import forks

log = logging.getLogger(__name__)

CHANNEL = "gatekeeper_changes"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
REDIS_SCHEMES = ("redis://", "rediss://")


class ChangeFeed(Protocol):
    """How one process hears that another changed the store."""

    connected: bool

    def start(self, on_change: Callable[[], None]) -> None:
        """Listen in this process (idempotent; afresh in a forked child); call `on_change` per change."""

    def notify_statement(self) -> str | None:
        """SQL the store runs inside each write's transaction, or None."""

    def published(self) -> None:
        """Called after each write commits (a broker publishes here)."""

    def stop(self, wait: float = 0.0) -> None:
        """Stop listening and close the connection (tests, shutdown), waiting up to `wait` seconds."""


class _ListeningThread:
    """What both feeds share: one daemon thread per process that listens and calls `on_change`, started
    lazily and afresh in a forked child (the parent's thread does not run there), stopped on request."""

    _thread_name = "gatekeeper-listen"

    def __init__(self, channel: str, heartbeat: float, min_delay: float, max_delay: float) -> None:
        self.channel = channel
        self.heartbeat, self.min_delay, self.max_delay = heartbeat, min_delay, max_delay
        self.connected = False
        self._on_change: Callable[[], None] = lambda: None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        forks.in_child(self._after_fork)

    def _after_fork(self) -> None:
        """In a forked child: the parent's thread is not running here, and its lock may have been held by
        another thread at the fork; the next `start()` listens on a connection of the child's own."""
        self._lock, self._stopped = threading.Lock(), threading.Event()
        self._thread, self.connected = None, False

    def start(self, on_change: Callable[[], None]) -> None:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if alive and self._pid == os.getpid():
                return
            # In a forked child the parent's thread is not running here: listen on a connection of our own.
            self._pid, self._on_change, self.connected = os.getpid(), on_change, False
            self._stopped.clear()
            self._thread = threading.Thread(target=self._listen, name=self._thread_name, daemon=True)
            self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Ask the thread to stop; it closes its connection within its heartbeat (or `wait` for it)."""
        self._stopped.set()
        thread = self._thread
        if wait and thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=wait)

    def _listen(self) -> None:
        raise NotImplementedError

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:  # the store never raises here; if it does, keep listening
            log.exception("gatekeeper: reloading after a store change failed")


class PostgresFeed(_ListeningThread):
    """LISTEN/NOTIFY on one PostgreSQL connection per process. `conninfo` is a libpq URL or DSN."""

    def __init__(
        self,
        conninfo: str,
        channel: str = CHANNEL,
        *,
        heartbeat: float = 5.0,
        min_delay: float = 0.1,
        max_delay: float = 10.0,
    ) -> None:
        if not _IDENTIFIER.fullmatch(channel):
            raise ValueError(f"channel {channel!r} must be a lowercase SQL identifier, e.g. {CHANNEL}")
        super().__init__(channel, heartbeat, min_delay, max_delay)
        self.conninfo = conninfo

    def notify_statement(self) -> str:
        return f"NOTIFY {self.channel}"

    def published(self) -> None:
        """Nothing to do: the NOTIFY went out with the commit."""

    def _listen(self) -> None:
        import psycopg  # here, not at import: the module stays importable without the driver

        delay = self.min_delay
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {self.channel}")
                    if not self.connected:
                        log.info("gatekeeper: listening for store changes on %s", self.channel)
                    self.connected, delay = True, self.min_delay
                    self._changed()  # catch up on whatever changed while nobody listened
                    while not self._stopped.is_set():
                        if any(True for _ in connection.notifies(timeout=self.heartbeat, stop_after=1)):
                            self._changed()
                        else:
                            connection.execute("SELECT 1")  # a heartbeat: a dead server shows up here
            except Exception as exc:  # any failure: drop the connection, wait, try again
                if self.connected:
                    log.warning("gatekeeper: store change listener lost (%s); reconnecting", exc)
                self.connected = False
                self._stopped.wait(delay * random.uniform(0.5, 1.0))
                delay = min(self.max_delay, delay * 2)
        self.connected = False


class RedisFeed(_ListeningThread):
    """Redis pub/sub: PUBLISH after each write commits, SUBSCRIBE in one daemon thread per process.

    `url` is a redis:// or rediss:// URL (e.g. ``redis://127.0.0.1:6379/0``). A publish waits at most
    `publish_timeout` seconds to connect and as long for the answer, and is never retried in the write: when
    it fails the write still stands, and the other processes catch up within the TTL, or at once when their
    subscriber reconnects. The subscriber PINGs after `heartbeat` quiet seconds and reconnects when nothing
    at all came back for three of them (a server that went away without closing the connection).
    """

    def __init__(
        self,
        url: str,
        channel: str = CHANNEL,
        *,
        heartbeat: float = 5.0,
        min_delay: float = 0.1,
        max_delay: float = 10.0,
        publish_timeout: float = 0.5,
    ) -> None:
        if not url.startswith(REDIS_SCHEMES):
            raise ValueError(f"{url!r} is not a Redis URL: use e.g. redis://127.0.0.1:6379/0")
        super().__init__(channel, heartbeat, min_delay, max_delay)
        self.url, self.publish_timeout = url, publish_timeout
        self._publisher: Any = None  # a redis.Redis of this process (`_publisher_pid`), made on first publish
        self._publisher_pid = 0

    def notify_statement(self) -> None:
        """Nothing in the transaction: the message goes out once the write has committed."""

    def published(self) -> None:
        """PUBLISH that something changed; on any failure log it and carry on (the TTL covers it)."""
        try:
            self._client().publish(self.channel, str(os.getpid()))
        except Exception as exc:
            log.warning(
                "gatekeeper: could not publish a store change to Redis (%s); other processes pick it up "
                "within GATEKEEPER_STORE_TTL",
                exc,
            )

    _thread_name = "gatekeeper-subscribe"

    def stop(self, wait: float = 0.0) -> None:
        """Close this process's publisher, then stop the subscriber (within a second, or `wait` for it)."""
        with self._lock:
            publisher, self._publisher = self._publisher, None
        if publisher is not None and self._publisher_pid == os.getpid():
            publisher.close()
        super().stop(wait)

    def _redis(self, timeout: float, **options: Any) -> Any:
        import redis  # here, not at import: the module stays importable without the client
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # No retries inside redis-py: a publish must not hold a write up, and the subscriber has its backoff.
        return redis.Redis.from_url(
            self.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            **options,
        )

    def _after_fork(self) -> None:
        super()._after_fork()
        self._publisher = None  # the parent's: never used, nor closed, here (`_client` makes the child's)

    def _client(self) -> Any:
        publisher, pid = self._publisher, os.getpid()
        if publisher is None or self._publisher_pid != pid:
            # Made before a fork, it belongs to the parent: this process gets its own (and lets that be). Made
            # outside the lock (redis-py's first import is slow), so a fork meanwhile never inherits it held.
            publisher = self._redis(self.publish_timeout)
            with self._lock:
                self._publisher, self._publisher_pid = publisher, pid
        return publisher

    def _listen(self) -> None:
        delay = self.min_delay
        while not self._stopped.is_set():
            client = pubsub = None
            try:
                client = self._redis(max(5.0, self.heartbeat))
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                if not self.connected:
                    log.info("gatekeeper: subscribed to store changes on Redis channel %s", self.channel)
                self.connected, delay = True, self.min_delay
                self._changed()  # catch up on whatever changed while nobody listened
                self._receive(pubsub)
            except Exception as exc:  # any failure: drop the connection, wait, try again
                if self.connected:
                    log.warning("gatekeeper: store change subscriber lost (%s); reconnecting", exc)
                self.connected = False
                self._stopped.wait(delay * random.uniform(0.5, 1.0))
                delay = min(self.max_delay, delay * 2)
            finally:
                for closable in (pubsub, client):
                    if closable is not None:
                        with contextlib.suppress(Exception):  # already broken: nothing left to close
                            closable.close()
        self.connected = False

    def _receive(self, pubsub: Any) -> None:
        """Reload once per burst of messages; PING when quiet; give up on a server that stopped answering."""
        heard = pinged = time.monotonic()
        while not self._stopped.is_set():
            message = pubsub.get_message(timeout=min(1.0, self.heartbeat))  # stop() is seen within a second
            now = time.monotonic()
            if message is None:
                if now - heard > 3 * self.heartbeat:
                    raise ConnectionError(f"no answer from Redis in {now - heard:.0f} s")
                if now - max(heard, pinged) >= self.heartbeat:
                    pubsub.ping()  # its answer arrives as a message of its own
                    pinged = now
                continue
            heard = now
            if message.get("type") == "message":
                while pubsub.get_message(timeout=0) is not None:
                    pass  # changes that came together: one reload covers them all
                self._changed()


def feed_for(setting: str, database: str, conninfo: str) -> ChangeFeed | None:
    """The feed `GATEKEEPER_CHANGE_FEED` names, for a database whose SQLAlchemy backend is `database`.

    Empty: automatic, LISTEN/NOTIFY on PostgreSQL (connecting to `conninfo`) and none elsewhere;
    ``postgresql``: LISTEN/NOTIFY (PostgreSQL only); ``none``: the TTL check alone; a ``redis://`` or
    ``rediss://`` URL: Redis pub/sub. Anything else raises ValueError saying what to set.
    """
    choice = setting.strip()
    if choice.startswith(REDIS_SCHEMES) and urlsplit(choice).hostname:
        return RedisFeed(choice)
    if choice == "none" or (choice == "" and database != "postgresql"):
        return None
    if choice in ("", "postgresql") and database == "postgresql":
        return PostgresFeed(conninfo)
    if choice == "postgresql":
        raise ValueError(
            f"GATEKEEPER_CHANGE_FEED=postgresql needs a PostgreSQL database, not {database}: leave it empty, "
            "or set GATEKEEPER_CHANGE_FEED=redis://127.0.0.1:6379/0"
        )
    raise ValueError(
        f"GATEKEEPER_CHANGE_FEED={setting!r} is not a change feed: leave it empty (automatic), or set it to "
        "redis://127.0.0.1:6379/0 (your Redis), postgresql or none"
    )
