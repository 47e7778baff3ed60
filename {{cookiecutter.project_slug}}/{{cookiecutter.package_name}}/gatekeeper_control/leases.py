"""Leases in the database: one process at a time does a job (whoever holds the lease until it expires).

Stand-in of the shared interface in INTERFACES.md (owner: panel-ops); the merge keeps the owner's file.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, insert, update
from sqlalchemy.exc import IntegrityError

from .tables import LeaseRow

_holder: tuple[int, str] | None = None


def process_holder() -> str:
    """A string unique to this process (host, pid, random), made afresh in a forked child."""
    global _holder
    pid = os.getpid()
    if _holder is None or _holder[0] != pid:
        _holder = (pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}"[:200])
    return _holder[1]


def try_acquire(engine: Engine, name: str, holder: str, seconds: float) -> bool:
    """True when `holder` now holds lease `name` for `seconds` more (free, expired or already its own)."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=seconds)
    with engine.begin() as connection:
        taken = connection.execute(
            update(LeaseRow)
            .where(LeaseRow.name == name, (LeaseRow.holder == holder) | (LeaseRow.expires_at < now))
            .values(holder=holder, expires_at=expires)
        )
        if taken.rowcount == 1:
            return True
    try:
        with engine.begin() as connection:
            connection.execute(insert(LeaseRow).values(name=name, holder=holder, expires_at=expires))
    except IntegrityError:
        return False  # someone else holds it
    return True


def release(engine: Engine, name: str, holder: str) -> None:
    """Give lease `name` up, if `holder` holds it."""
    with engine.begin() as connection:
        connection.execute(delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder))
