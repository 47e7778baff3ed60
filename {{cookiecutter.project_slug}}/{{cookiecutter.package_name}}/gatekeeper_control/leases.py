"""Leases: a named right to run a job in one process at a time, held until it expires or is released.

A lease is one row of `gatekeeper_leases` (name, holder, expires_at in UTC). Taking it is one conditional
UPDATE (free, expired or already ours) or, when there is no row yet, one INSERT; the database picks one
winner: on PostgreSQL the second UPDATE waits for the first's row lock and then no longer matches, and a
second INSERT fails on the primary key; on SQLite writers take turns. A holder that dies simply stops
renewing, and another process takes the lease once it has expired. Clocks are the processes' own (UTC), so
processes on different hosts need synchronised clocks, as they do for scheduled changes anyway.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError

from .tables import LeaseRow

log = logging.getLogger(__name__)
_leases = LeaseRow.__table__
# (engine url, name, holder) -> until when this process knows it holds the lease (without asking again).
_held: dict[tuple[str, str, str], datetime] = {}
_held_lock = threading.Lock()
_holder: tuple[int, str] | None = None


def _after_fork_in_child() -> None:
    """A forked child holds no lease of its parent's, and its lock is new (a parent's thread may have held
    the old one at the fork, and would never release it here)."""
    global _held_lock
    _held_lock = threading.Lock()
    _held.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def process_holder() -> str:
    """A name unique to this process (host, pid and a random part), made afresh in a forked child."""
    global _holder
    pid = os.getpid()
    if _holder is None or _holder[0] != pid:
        _holder = (pid, f"{socket.gethostname()[:120]}:{pid}:{secrets.token_hex(6)}")
    return _holder[1]


def try_acquire(engine: Engine, name: str, holder: str, seconds: float) -> bool:
    """Whether `holder` holds lease `name` now: True when it was free, expired or already its own (then it
    runs `seconds` from now). A holder asking again in the first half of its lease is answered without the
    database; one winner under concurrency on SQLite and PostgreSQL."""
    now = datetime.now(UTC)
    key = (str(engine.url), name, holder)
    with _held_lock:
        until = _held.get(key)
    if until is not None and now < until - timedelta(seconds=seconds / 2):
        return True
    expires = now + timedelta(seconds=seconds)
    try:
        won = _take(engine, name, holder, now, expires)
    except OperationalError as exc:  # e.g. SQLite's "database is locked": another writer got in first
        log.debug("gatekeeper: lease %s not taken: %s", name, exc)
        won = False
    with _held_lock:
        if won:
            _held[key] = expires
        else:
            _held.pop(key, None)
    return won


def _take(engine: Engine, name: str, holder: str, now: datetime, expires: datetime) -> bool:
    with engine.begin() as connection:
        row = connection.execute(
            select(_leases.c.holder, _leases.c.expires_at).where(_leases.c.name == name)
        ).first()
        if row is not None and row.holder != holder and _as_utc(row.expires_at) > now:
            return False  # someone else's, and alive: no write at all
        if row is not None:
            taken = connection.execute(
                update(_leases)
                .where(
                    _leases.c.name == name,
                    or_(_leases.c.holder == holder, _leases.c.expires_at <= now),
                )
                .values(holder=holder, expires_at=expires)
            )
            return taken.rowcount == 1
    try:
        with engine.begin() as connection:
            connection.execute(insert(_leases).values(name=name, holder=holder, expires_at=expires))
    except IntegrityError:  # another process inserted it first
        return False
    return True


def release(engine: Engine, name: str, holder: str) -> None:
    """Give lease `name` up now, if `holder` holds it (another holder's lease is left alone)."""
    _forget((str(engine.url), name, holder))
    with engine.begin() as connection:
        connection.execute(delete(_leases).where(_leases.c.name == name, _leases.c.holder == holder))


def _forget(key: tuple[str, str, str]) -> None:
    with _held_lock:
        _held.pop(key, None)


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
