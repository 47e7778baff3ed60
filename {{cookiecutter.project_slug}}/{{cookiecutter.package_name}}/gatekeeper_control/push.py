"""Push store changes to every process: PostgreSQL LISTEN/NOTIFY behind a small `ChangeFeed` interface.

Every store write runs `NOTIFY gatekeeper_changes` inside its own transaction, so the notification leaves
only if the change commits. Each process keeps one listening connection, in a daemon thread, and calls the
store back on every notification; the store then reloads its snapshot off the request path. The TTL check
stays as the fallback: with SQLite, while the listener reconnects, or if a notification is lost.

Processes and fork: the thread and its connection are made lazily, in the process that first asks for a
snapshot, never at import or in `create_app`. Under gunicorn (with or without `--preload`) that is each
worker after the fork; `start()` in a forked child sees the parent's thread is gone (threads do not survive
fork) and opens a connection of its own, so no connection is ever shared between processes.

A lost connection (server restart, network) is retried with exponential backoff (0.1 s doubling to 10 s,
with jitter); once it is back the store reloads, so nothing missed while it was down stays missed.

Another transport (e.g. Redis pub/sub, past PostgreSQL's connection limit) implements the same three
methods: `start(on_change)`, `notify_statement()` (None for a broker) and `published()` (publish there).

Drop-in: imports only the standard library; psycopg 3 (>= 3.2) is imported in the listening thread.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

CHANNEL = "gatekeeper_changes"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


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


class PostgresFeed:
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
        self.conninfo, self.channel = conninfo, channel
        self.heartbeat, self.min_delay, self.max_delay = heartbeat, min_delay, max_delay
        self.connected = False
        self._on_change: Callable[[], None] = lambda: None
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def notify_statement(self) -> str:
        return f"NOTIFY {self.channel}"

    def published(self) -> None:
        """Nothing to do: the NOTIFY went out with the commit."""

    def start(self, on_change: Callable[[], None]) -> None:
        with self._lock:
            alive = self._thread is not None and self._thread.is_alive()
            if alive and self._pid == os.getpid():
                return
            # In a forked child the parent's thread is not running here: listen on a connection of our own.
            self._pid, self._on_change, self.connected = os.getpid(), on_change, False
            self._stopped.clear()
            self._thread = threading.Thread(target=self._listen, name="gatekeeper-listen", daemon=True)
            self._thread.start()

    def stop(self, wait: float = 0.0) -> None:
        """Ask the thread to stop; it closes its connection within `heartbeat` seconds (or `wait` for it)."""
        self._stopped.set()
        thread = self._thread
        if wait and thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=wait)

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

    def _changed(self) -> None:
        try:
            self._on_change()
        except Exception:  # the store never raises here; if it does, keep listening
            log.exception("gatekeeper: reloading after a store change failed")
