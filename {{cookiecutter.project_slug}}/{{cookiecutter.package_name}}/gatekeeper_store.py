"""Persisted flag overrides (forced variants, per-user overrides) and their audit log.

Flag checks never query the database: the engine reads `store.snapshot()`, an immutable in-process copy
that is checked against the database at most every `GATEKEEPER_STORE_TTL` seconds, and reloaded only when a
one-row version counter says something changed. A write in this process refreshes the snapshot at once.
On PostgreSQL every write also NOTIFYs, and each process's listener (gatekeeper_notify.py) reloads within
milliseconds; elsewhere, or while the listener reconnects, other processes converge within the TTL.

On a request the database is never waited for: a stale snapshot is served while a background thread
refreshes it (only a process's very first load waits, at most `FIRST_LOAD_WAIT` seconds). Outside requests
(CLI, jobs, tests) and with an explicit `max_age` the refresh happens in the caller. When the database is
unreachable the last snapshot keeps serving, `store.available` turns False and `store.error` says why;
nothing raises into a flag check.

Drop-in: imports only the standard library, Flask, SQLAlchemy, the gatekeeper engine and gatekeeper_notify,
and keeps its tables (`gatekeeper_*`) in its own metadata, so it works beside any app's models.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import click
from flask import Flask, current_app, has_request_context
from sqlalchemy import URL, DateTime, Engine, Index, String, create_engine, func, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from . import gatekeeper
from .gatekeeper_notify import ChangeFeed, feed_for

log = logging.getLogger(__name__)

CLI_ACTOR = "cli"
_EXTENSION_KEY = "gatekeeper_store"
# What a broken or unreachable database raises (OSError: e.g. an SQLite file in a missing folder).
_DATABASE_ERRORS = (SQLAlchemyError, OSError)
# Column sizes: flag and variant names, user ids, and labels (emails, actors).
_NAME_LENGTH, _USER_ID_LENGTH, _LABEL_LENGTH = 100, 64, 254
REASON_LENGTH = 500  # an optional note on a change, shown in the audit log
# Seconds a process's first request may wait for its first snapshot (a kill switch holds from the start).
FIRST_LOAD_WAIT = 2.0


# --- What the store hands out -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRef:
    """A user an override can name: the id the engine matches on, and a label people recognise."""

    id: str
    label: str


UserLookup = Callable[[str], UserRef | None]


def _nothing() -> Any:
    return field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Snapshot:
    """Every stored override at one moment; the engine reads it on every request, so it is never mutated."""

    forced: Mapping[str, str]  # flag -> variant served to everyone
    user_overrides: Mapping[str, Mapping[str, str]]  # flag -> {user id -> variant}
    user_labels: Mapping[str, str]  # user id -> label when the override was set (for the dashboard)
    version: int  # the store's change counter when loaded; -1 before the first load
    loaded_at: datetime | None  # UTC; None before the first successful load
    # Runtime targeting (gatekeeper_targeting.py); every lookup a flag check makes is a dict or set lookup.
    weights: Mapping[str, Mapping[str, float]] = _nothing()  # flag -> {variant: percent}, in range order
    weights_set: Mapping[str, tuple[str, datetime]] = _nothing()  # flag -> (who, when UTC)
    groups: Mapping[str, str] = _nothing()  # stored group -> description
    group_members: Mapping[str, Mapping[str, str]] = _nothing()  # group -> {user id -> label}
    memberships: Mapping[str, frozenset[str]] = _nothing()  # user id -> its stored groups
    group_targets: Mapping[str, tuple[tuple[str, str], ...]] = _nothing()  # flag -> (group, var)
    next_due: datetime | None = None  # when the first pending scheduled change is due (UTC)


_EMPTY = MappingProxyType({})
EMPTY_SNAPSHOT = Snapshot(
    forced=_EMPTY, user_overrides=_EMPTY, user_labels=_EMPTY, version=-1, loaded_at=None
)


@dataclass(frozen=True)
class AuditEntry:
    """One change: who made it, when (UTC), to which flag, what it was before and after."""

    id: int
    at: datetime
    actor: str
    flag: str
    action: str  # "force", "unforce", "user_override", "clear_user_override", or one of _TARGETING_WHAT
    target: str  # "everyone", or the user's label
    before: str | None
    after: str | None
    reason: str | None = None  # why, in the words of whoever made the change (optional)
    user_id: str | None = None  # for a user override: the id it was stored under (None in older entries)

    @property
    def what(self) -> str:
        """The change in a few words, for the audit tables."""
        return {
            "force": "forced for everyone",
            "unforce": "stopped forcing",
            "user_override": f"override for {self.target}",
            "clear_user_override": f"override removed for {self.target}",
            **{action: what.format(target=self.target) for action, what in _TARGETING_WHAT.items()},
        }.get(self.action, f"{self.action} for {self.target}")

    @property
    def summary(self) -> str:
        """The change as a sentence, for flash messages and the CLI."""
        was = f" (was {self.before})" if self.before else ""
        if self.action == "force":
            return f"{self.flag}: everyone now gets {self.after}{was}."
        if self.action == "unforce":
            return f"{self.flag}: no longer forced{was}; everyone gets their own variant again."
        if self.action == "user_override":
            return f"{self.flag}: {self.target} now gets {self.after}{was}."
        if self.action in _TARGETING_SUMMARY:
            return _TARGETING_SUMMARY[self.action].format(entry=self, was=was)
        return f"{self.flag}: override for {self.target} removed{was}."


# Runtime targeting's audit actions (gatekeeper_targeting.py): the audit table's words, then the sentence.
_TARGETING_WHAT = {
    "rollout": "rollout weights set",
    "clear_rollout": "rollout weights back to code",
    "target": "{target} targeted",
    "untarget": "{target} no longer targeted",
    "create_group": "group {target} created",
    "describe_group": "group {target} described",
    "add_members": "added to group {target}",
    "remove_members": "removed from group {target}",
    "schedule": "change scheduled {target}",
    "cancel_schedule": "scheduled change {target} cancelled",
    "schedule_failed": "scheduled change {target} could not be made",
}
_TARGETING_SUMMARY = {
    "rollout": "{entry.flag}: rolls out {entry.after} now{was}.",
    "clear_rollout": "{entry.flag}: back to the weights in code{was}.",
    "target": "{entry.flag}: {entry.target} now gets {entry.after}{was}.",
    "untarget": "{entry.flag}: {entry.target} no longer targeted{was}.",
    "create_group": "Group {entry.target} created.",
    "describe_group": "Group {entry.target} described.",
    "add_members": "Group {entry.target}: added {entry.after}.",
    "remove_members": "Group {entry.target}: removed {entry.before}.",
    "schedule": "{entry.flag}: {entry.after} scheduled {entry.target}.",
    "cancel_schedule": "{entry.flag}: scheduled change {entry.target} ({entry.before}) cancelled.",
    "schedule_failed": "{entry.flag}: scheduled change {entry.target} ({entry.after}) could not be made.",
}


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit log, newest first."""

    entries: list[AuditEntry]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


@dataclass(frozen=True)
class StaleOverride:
    """A stored override the engine ignores because its flag or variant is no longer in the code."""

    flag: str
    variant: str
    user_id: str | None  # None: forced for everyone
    reason: str


class StoreError(Exception):
    """A change or read the store could not make; the message says what happened and what to do."""


class OverrideError(StoreError, ValueError):
    """The change names something that does not exist; nothing was written."""


class UnknownFlagError(OverrideError):
    pass


class UnknownVariantError(OverrideError):
    pass


class UnknownUserError(OverrideError):
    pass


class StoreUnavailableError(StoreError):
    """The database could not be reached; nothing was written."""


# --- Tables -------------------------------------------------------------------------------------------------


class _Base(DeclarativeBase):
    """The store's own metadata, so its tables never mix with the app's models."""


class _ForcedRow(_Base):
    __tablename__ = "gatekeeper_forced_variants"

    flag: Mapped[str] = mapped_column(String(_NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(_NAME_LENGTH))
    set_by: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _UserOverrideRow(_Base):
    __tablename__ = "gatekeeper_user_overrides"

    flag: Mapped[str] = mapped_column(String(_NAME_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(_USER_ID_LENGTH), primary_key=True)
    user_label: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    variant: Mapped[str] = mapped_column(String(_NAME_LENGTH))
    set_by: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _AuditRow(_Base):
    __tablename__ = "gatekeeper_audit_log"
    __table_args__ = (Index("ix_gatekeeper_audit_log_flag_id", "flag", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    flag: Mapped[str] = mapped_column(String(_NAME_LENGTH))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    before: Mapped[str | None] = mapped_column(String(_NAME_LENGTH))
    after: Mapped[str | None] = mapped_column(String(_NAME_LENGTH))
    reason: Mapped[str | None] = mapped_column(String(REASON_LENGTH))
    user_id: Mapped[str | None] = mapped_column(String(_USER_ID_LENGTH))


class _VersionRow(_Base):
    """One row whose counter every write bumps, so a refresh can tell in one query that nothing changed."""

    __tablename__ = "gatekeeper_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int]


# The store's tables, for an Alembic env.py: `target_metadata = [db.metadata, gatekeeper_store.metadata]`.
metadata = _Base.metadata


# --- Per-app state ------------------------------------------------------------------------------------------


class AppStore:
    """One app's view of the store: its engine, its current snapshot, and whether the database answered.

    `store.init_app(app, db)` returns it; give it to `gatekeeper.init_app(app, ..., store=...)` so flag checks
    reach the snapshot directly instead of finding the current app on every request.
    """

    def __init__(
        self,
        db: Any,
        ttl: float,
        user_lookup: UserLookup | None,
        clock: Callable[[], float],
        *,
        push: bool = True,
        feed: ChangeFeed | None = None,
        listen_url: str | None = None,
        feed_setting: str = "",
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.user_lookup = user_lookup
        self.clock = clock
        self.push = push  # listen for other processes' changes (when the feed can: PostgreSQL, or `feed`)
        self.feed = feed
        self.listen_url = listen_url  # where the listener connects, if not the app's URL (e.g. PgBouncer's)
        self.feed_setting = feed_setting  # GATEKEEPER_CHANGE_FEED: "" (automatic), a Redis URL, ...
        self.current = EMPTY_SNAPSHOT
        self.checked_at = -math.inf
        self.available = True
        self.error: str | None = None
        self.lock = threading.Lock()
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)  # for scheduled changes
        self.due_tried: datetime | None = None  # the next_due whose changes this process last tried
        self.app: Flask | None = None
        self.first_load = threading.Event()
        self._engine: Engine | None = None
        # (snapshot, config map, its stale overrides): see OverrideStore.stale_overrides.
        self.stale: tuple[Snapshot, Mapping[str, Any], list[StaleOverride]] | None = None
        _ALL_STORES.add(self)

    @property
    def engine(self) -> Engine:
        # Kept once found, so background threads (which have no app context) reach it too.
        if self._engine is None:
            self._engine = self.db if isinstance(self.db, Engine) else self.db.engine
        return self._engine

    def snapshot(self, max_age: float | None = None) -> Snapshot:
        """The current overrides, at most `GATEKEEPER_STORE_TTL` seconds old (or `max_age`, when given).

        Fresh: a clock read and nothing else. Stale, on a request: the current snapshot, while one
        background thread runs the version query (and a reload if it moved). Stale elsewhere, or with an
        explicit `max_age`: that refresh in this thread. Never raises.
        """
        current = self.current
        fresh = self.clock() - self.checked_at < (self.ttl if max_age is None else max_age)
        if fresh and (current.next_due is None or not self.due()):  # (due() spelled out for the usual case)
            return current
        self.listen()
        if max_age is None and has_request_context():
            self.refresh_in_background()
            if not self.first_load.is_set():
                self.first_load.wait(FIRST_LOAD_WAIT)
            return self.current
        # blocking=False: while one thread asks the database, the others serve what they have.
        if self.lock.acquire(blocking=False):
            try:
                self.refresh()
            finally:
                self.lock.release()
        return self.current

    def due(self) -> bool:
        """Whether a scheduled change has come due that this process has not yet tried to apply."""
        due = self.current.next_due
        return due is not None and due != self.due_tried and self.now() >= due

    def lookup_user(self, text: str) -> UserRef | None:
        """The user an email or id names, through `user_lookup` (the engine's `flask gk explain --user`)."""
        return self.user_lookup(text) if self.user_lookup is not None else UserRef(id=text, label=text)

    def refresh_in_background(self) -> None:
        """Start one thread that refreshes the snapshot, unless a refresh is already running."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            self.engine  # noqa: B018 -- resolved here, in the app context, for the thread
        except Exception as exc:
            self.lock.release()
            self.mark_unavailable(exc)
            return

        def run() -> None:
            try:
                self.refresh()
            finally:
                self.lock.release()

        threading.Thread(target=run, name="gatekeeper-refresh", daemon=True).start()

    def changed_elsewhere(self) -> None:
        """The feed's callback: another process wrote; reload now (in the feed's thread)."""
        with self.lock:
            self.refresh()

    def change_feed(self) -> ChangeFeed | None:
        """The feed writes announce themselves on: the one given, else GATEKEEPER_CHANGE_FEED's (automatic:
        LISTEN/NOTIFY on PostgreSQL, none elsewhere)."""
        if self.feed is None:
            url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self.feed = feed_for(self.feed_setting, self.engine.dialect.name, self.listen_url or url)
        return self.feed

    def listen(self) -> None:
        """Make sure this process listens for changes (cheap once it does; restarts after a fork)."""
        if not self.push:
            return
        try:
            feed = self.change_feed()
        except Exception as exc:  # no engine yet (e.g. a bad URL): the TTL check reports it
            log.debug("gatekeeper: no change feed: %s", exc)
            return
        if feed is None:
            self.push = False  # SQLite and friends: the TTL check is all there is
            return
        feed.start(self.changed_elsewhere)

    def close(self) -> None:
        """Stop listening (the feed's thread and connection); the snapshot keeps serving."""
        if self.feed is not None:
            self.feed.stop()

    def after_fork(self) -> None:
        """In a forked child: new locks, no inherited pool connections, listen again on first use."""
        self.lock, self.first_load = threading.Lock(), threading.Event()
        if self.current.loaded_at is not None:
            self.first_load.set()
        if self._engine is not None:
            self._engine.dispose(close=False)  # the parent's connections stay the parent's
        self.checked_at = -math.inf

    def refresh(self) -> None:
        """Reload the snapshot if the version counter moved; on failure keep the old one and say why.

        Scheduled changes that are due are applied here first, by whichever process gets here first.
        """
        checked_at = self.clock()
        try:
            try:
                self._reload_if_changed()
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                self._reload_if_changed()  # the server dropped a pooled connection (a restart): again, anew
            if self.due():
                self.due_tried = self.current.next_due
                config_map = gatekeeper.get_state(self.app).config_map
                if gatekeeper_targeting.apply_due_changes(self.engine, self.now(), config_map):
                    self._reload_if_changed()
        except Exception as exc:  # never raise into a flag check; the dashboard shows the error
            self.mark_unavailable(exc)
        else:
            if not self.available:
                log.info("Gatekeeper override store is reachable again.")
            self.available, self.error = True, None
        self.checked_at = checked_at
        self.first_load.set()

    def _reload_if_changed(self) -> None:
        with Session(self.engine) as session:
            version = session.scalar(select(_VersionRow.version).where(_VersionRow.id == 1))
            if version is None or version != self.current.version:
                self.current = _read_snapshot(session, -1 if version is None else version)

    def mark_unavailable(self, exc: BaseException) -> None:
        error = _describe(exc)
        if self.available:
            log.error("Gatekeeper override store unavailable, serving the last snapshot: %s", error)
        else:
            log.debug("Gatekeeper override store still unavailable: %s", error)
        self.available, self.error = False, error


_ALL_STORES: weakref.WeakSet[AppStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for app_store in list(_ALL_STORES):
        app_store.after_fork()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _describe(exc: BaseException) -> str:
    """The driver's own message ("no such table: ...") rather than SQLAlchemy's page of context."""
    return str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__


def _read_snapshot(session: Session, version: int) -> Snapshot:
    # Plain column tuples, not ORM objects: a reload of ten thousand overrides stays in the milliseconds.
    forced = dict(session.execute(select(_ForcedRow.flag, _ForcedRow.variant)).all())
    by_flag: dict[str, dict[str, str]] = {}
    labels: dict[str, str] = {}
    rows = select(
        _UserOverrideRow.flag, _UserOverrideRow.user_id, _UserOverrideRow.variant, _UserOverrideRow.user_label
    )
    for flag, user_id, variant, label in session.execute(rows):
        by_flag.setdefault(flag, {})[user_id] = variant
        labels[user_id] = label
    return Snapshot(
        forced=MappingProxyType(forced),
        user_overrides=MappingProxyType({flag: MappingProxyType(users) for flag, users in by_flag.items()}),
        user_labels=MappingProxyType(labels),
        version=version,
        loaded_at=datetime.now(UTC),
        **gatekeeper_targeting.read_targeting(session),
    )


def _as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _entry(row: _AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=_as_utc(row.at),
        actor=row.actor,
        flag=row.flag,
        action=row.action,
        target=row.target,
        before=row.before,
        after=row.after,
        reason=row.reason,
        user_id=row.user_id,
    )


# --- The store ----------------------------------------------------------------------------------------------


class OverrideStore:
    """Forced variants, per-user overrides and the audit log, for whichever app is current.

    Created unbound and attached with `init_app`, like Flask's own extensions; each app has its own snapshot.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock

    def init_app(
        self,
        app: Flask,
        db: Any,
        *,
        user_lookup: UserLookup | None = None,
        feed: ChangeFeed | None = None,
    ) -> AppStore:
        """Attach to `app`. `db` is a database URL (``"sqlite:///path"``), a SQLAlchemy Engine, or the
        Flask-SQLAlchemy object.

        `user_lookup(text)` turns an email or id typed by an admin into a `UserRef`, or None when no such user
        exists; without one, any text is taken as the user id, unchecked (and the dashboard says so). `feed`
        carries changes between processes (default: LISTEN/NOTIFY on PostgreSQL, none elsewhere);
        `GATEKEEPER_STORE_PUSH = False` stops this process listening (it still announces its own writes);
        `GATEKEEPER_STORE_LISTEN_URL` (a libpq URL) is where the listener connects when the app's URL goes
        through a pooler that cannot LISTEN. `GATEKEEPER_CHANGE_FEED` picks the feed: empty (automatic), a
        ``redis://`` URL (Redis pub/sub, past one PostgreSQL's connections), ``postgresql`` or ``none``.
        """
        if isinstance(db, str | URL):
            db = create_engine(db)
        app.config.setdefault("GATEKEEPER_STORE_TTL", 5.0)
        app.config.setdefault("GATEKEEPER_STORE_PUSH", True)
        ttl = float(app.config["GATEKEEPER_STORE_TTL"])
        push = bool(app.config["GATEKEEPER_STORE_PUSH"])
        listen_url = app.config.get("GATEKEEPER_STORE_LISTEN_URL") or None
        feed_setting = app.config.get("GATEKEEPER_CHANGE_FEED") or ""
        app_store = AppStore(
            db,
            ttl,
            user_lookup,
            self._clock,
            push=push,
            feed=feed,
            listen_url=listen_url,
            feed_setting=feed_setting,
        )
        app.extensions[_EXTENSION_KEY] = app_store
        app_store.app = app  # scheduled changes are checked against its flags, from any thread
        return app_store

    def create_tables(self) -> None:
        """Create the store's tables on the current app's database (idempotent)."""
        state = _state()
        _Base.metadata.create_all(state.engine)
        with Session(state.engine) as session, session.begin():
            if session.get(_VersionRow, 1) is None:
                session.add(_VersionRow(id=1, version=0))
        state.checked_at = -math.inf

    # Reading ------------------------------------------------------------------------------------------------

    def snapshot(self, max_age: float | None = None) -> Snapshot:
        """The current app's overrides; see `AppStore.snapshot`. Never raises."""
        return _state().snapshot(max_age)

    @property
    def available(self) -> bool:
        """Whether the last database access for the current app worked."""
        return _state().available

    @property
    def error(self) -> str | None:
        """Why the store is unavailable, in the database's words; None when it is available."""
        return _state().error

    @property
    def checks_users(self) -> bool:
        """Whether the current app gave a `user_lookup`, so that an override can only name a real user."""
        return _state().user_lookup is not None

    def stale_overrides(
        self, snapshot: Snapshot | None = None, config_map: Mapping[str, Any] | None = None
    ) -> list[StaleOverride]:
        """Stored overrides naming a flag or variant the code no longer has (the engine ignores them).

        Worked out once per snapshot: every dashboard page asks, and with many overrides stored the walk
        is the slow part of the page.
        """
        snapshot = snapshot or self.snapshot()
        config_map = _config_map() if config_map is None else config_map
        state = _state()
        cached = state.stale
        if cached is None or cached[0] is not snapshot or cached[1] is not config_map:
            cached = state.stale = (snapshot, config_map, _find_stale(snapshot, config_map))
        return list(cached[2])

    def audit_entries(
        self,
        page: int = 1,
        per_page: int = 50,
        flag: str | None = None,
        *,
        actor: str | None = None,
        action: str | None = None,
    ) -> AuditPage:
        """One page of the audit log, newest first, optionally for one flag, actor and/or action. Raises
        StoreUnavailableError.

        A page past the end gives the last page, so a stale or hand-typed link still shows something.
        """
        per_page = max(1, per_page)
        filters = [(_AuditRow.flag, flag, _NAME_LENGTH), (_AuditRow.actor, actor, _LABEL_LENGTH)]
        filters.append((_AuditRow.action, action, 32))
        if any(value is not None and not _storable(value, limit) for _column, value, limit in filters):
            return AuditPage(entries=[], page=1, per_page=per_page, total=0)
        query = select(_AuditRow).order_by(_AuditRow.id.desc())
        count = select(func.count()).select_from(_AuditRow)
        for column, value, _limit in filters:
            if value is not None:
                query, count = query.where(column == value), count.where(column == value)
        with self._reading() as session:
            total = session.scalar(count) or 0
            page = min(max(1, page), max(1, math.ceil(total / per_page)))
            rows = session.scalars(query.limit(per_page).offset((page - 1) * per_page))
            entries = [_entry(row) for row in rows]
        return AuditPage(entries=entries, page=page, per_page=per_page, total=total)

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        """One audit entry by its id, or None. Raises StoreUnavailableError."""
        with self._reading() as session:
            row = session.get(_AuditRow, entry_id)
            return _entry(row) if row is not None else None

    def audit_actors(self) -> list[str]:
        """Everyone who has changed something, sorted (the audit log's actor filter). Raises
        StoreUnavailableError."""
        with self._reading() as session:
            return list(session.scalars(select(_AuditRow.actor).distinct().order_by(_AuditRow.actor)))

    def newest_of_their_kind(self, entries: list[AuditEntry]) -> set[int]:
        """The ids among `entries` that are the newest change to what they changed (a flag's forced variant,
        or one user's override): the only ones an undo may restore. Raises StoreUnavailableError."""
        newest = set()
        with self._reading() as session:
            for entry in entries:
                later = select(_AuditRow.id).where(_AuditRow.flag == entry.flag, _AuditRow.id > entry.id)
                if entry.action in ("force", "unforce"):
                    later = later.where(_AuditRow.action.in_(("force", "unforce")))
                else:
                    later = later.where(
                        _AuditRow.action.in_(("user_override", "clear_user_override")),
                        (_AuditRow.user_id == _undo_user_id(entry)) | (_AuditRow.target == entry.target),
                    )
                if session.scalar(later.limit(1)) is None:
                    newest.add(entry.id)
        return newest

    def undo(self, entry_id: int, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Undo one change with a new, audited change (history is never edited): restore what it replaced.

        Raises OverrideError when the entry does not exist or cannot be undone now (see `undo_problem`).
        """
        reason = clean_reason(reason)
        entry = self.audit_entry(entry_id)
        if entry is None:
            raise OverrideError(f"There is no change #{entry_id}; nothing was changed.")
        problem = undo_problem(entry, self.snapshot(max_age=0))
        if problem is None and entry.id not in self.newest_of_their_kind([entry]):
            problem = "a later change was made to the same thing; undo that one"
        if problem is not None:
            raise OverrideError(f"Change #{entry_id} cannot be undone: {problem}. Nothing was changed.")
        why = f"undo of change #{entry_id}" + (f": {reason}" if reason else "")
        why = why[:REASON_LENGTH]
        if entry.action in ("force", "unforce"):
            if entry.before is None:
                return self.unforce(entry.flag, actor, reason=why)
            return self.force(entry.flag, entry.before, actor, reason=why)
        user_id = _undo_user_id(entry)
        if entry.before is None:
            return self.clear_user_override(entry.flag, user_id, actor, reason=why)
        return self.set_user_override(entry.flag, user_id, entry.before, actor, reason=why)

    def last_changes(self) -> dict[str, AuditEntry]:
        """The newest audit entry of every flag that has one. Raises StoreUnavailableError."""
        newest = select(func.max(_AuditRow.id)).group_by(_AuditRow.flag)
        with self._reading() as session:
            return {
                row.flag: _entry(row)
                for row in session.scalars(select(_AuditRow).where(_AuditRow.id.in_(newest)))
            }

    # Writing: each write validates first, then changes and audits in one transaction ------------------------

    def force(self, flag: str, variant: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Serve `variant` of `flag` to everyone (the kill switch, or a full launch). None if already so."""
        reason = clean_reason(reason)
        _check_variant(_check_flag(flag), flag, variant)
        return self._write(lambda session: _force(session, flag, variant, actor, reason=reason))

    def unforce(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Stop forcing `flag` (works for flags the code no longer has). None if it was not forced."""
        reason = clean_reason(reason)
        if not _storable(flag, _NAME_LENGTH):
            return None
        return self._write(lambda session: _unforce(session, flag, actor, reason=reason))

    def set_user_override(
        self, flag: str, user_text: str, variant: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Serve `variant` of `flag` to the user named by `user_text` (email or id). None if already so."""
        reason = clean_reason(reason)
        _check_variant(_check_flag(flag), flag, variant)
        user = self.find_user(user_text)
        if user is None:
            raise UnknownUserError(
                f"No user matches {_quote(user_text.strip())}: enter the email or id of an existing user."
            )
        user_id, label = str(user.id)[:_USER_ID_LENGTH], str(user.label)[:_LABEL_LENGTH]

        def change(session: Session) -> AuditEntry | None:
            row = session.get(_UserOverrideRow, (flag, user_id))
            before = row.variant if row else None
            if before == variant:
                return None
            if row is None:
                row = _UserOverrideRow(flag=flag, user_id=user_id)
                session.add(row)
            row.user_label, row.variant, row.set_by, row.set_at = (
                label,
                variant,
                actor[:_LABEL_LENGTH],
                datetime.now(UTC),
            )
            return _audit(
                session, actor, flag, "user_override", label, before, variant, reason=reason, user_id=user_id
            )

        return self._write(change)

    def clear_user_override(
        self, flag: str, user_id: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Remove the override of `flag` for `user_id` (stale ones too). None if there was none."""
        reason = clean_reason(reason)
        user_id = str(user_id)
        if not (_storable(flag, _NAME_LENGTH) and _storable(user_id, _USER_ID_LENGTH)):
            return None

        def change(session: Session) -> AuditEntry | None:
            row = session.get(_UserOverrideRow, (flag, user_id))
            if row is None:
                return None
            session.delete(row)
            label, before = row.user_label, row.variant
            action = "clear_user_override"
            return _audit(session, actor, flag, action, label, before, None, reason=reason, user_id=user_id)

        return self._write(change)

    def find_user(self, text: str) -> UserRef | None:
        """The user an admin means by `text` (email or id), through the app's `user_lookup`."""
        text = (text or "").strip()
        if not _storable(text, _LABEL_LENGTH):
            return None
        lookup = _state().user_lookup
        if lookup is None:
            return UserRef(id=text, label=text)
        try:
            return lookup(text)
        except _DATABASE_ERRORS as exc:
            raise StoreUnavailableError(
                f"Could not look up {text!r}: {_describe(exc)}. Nothing was changed."
            ) from exc

    def _write(self, change: Callable[[Session], AuditEntry | None]) -> AuditEntry | None:
        state = _state()
        try:
            with Session(state.engine) as session:
                # Bumping the counter first also serialises concurrent writers on databases with row locks.
                bumped = session.execute(
                    update(_VersionRow).where(_VersionRow.id == 1).values(version=_VersionRow.version + 1)
                )
                if bumped.rowcount == 0:
                    session.add(_VersionRow(id=1, version=1))
                entry = change(session)
                if entry is None:
                    session.rollback()
                    return None
                feed = state.change_feed()
                if feed is not None and (statement := feed.notify_statement()):
                    session.execute(text(statement))  # sent by the server only if this commits
                session.commit()
        except _DATABASE_ERRORS as exc:
            state.mark_unavailable(exc)
            raise StoreUnavailableError(
                f"The override store is unavailable ({state.error}); nothing was changed."
            ) from exc
        if feed is not None:
            feed.published()
        with state.lock:  # after the commit, so this process sees its own write at once
            state.refresh()
        return entry

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        """A session for dashboard and CLI reads; database errors become StoreUnavailableError."""
        state = _state()
        try:
            with Session(state.engine) as session:
                yield session
        except _DATABASE_ERRORS as exc:
            state.mark_unavailable(exc)
            raise StoreUnavailableError(f"The override store is unavailable ({state.error}).") from exc


def _state() -> AppStore:
    try:
        return current_app.extensions[_EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "The gatekeeper store is not set up for this app: call store.init_app(app, db)."
        ) from None


def _config_map() -> Mapping[str, Any]:
    return gatekeeper.get_state(current_app).config_map


def _check_flag(flag: str) -> Any:
    config_map = _config_map()
    config = config_map.get(flag)
    if config is None:
        close = difflib.get_close_matches(flag, list(config_map), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else " Run `flask gk list` to see the flags."
        raise UnknownFlagError(f"Unknown flag {_quote(flag)}.{hint}")
    return config


def _check_variant(config: Any, flag: str, variant: str) -> None:
    variants = config.get_variants()
    if variant not in variants:
        raise UnknownVariantError(
            f"{flag} has no variant {_quote(variant)}: use one of {', '.join(variants)}."
        )


def _storable(text: str, limit: int) -> bool:
    """Whether `text` could be in a column: short enough, and no NUL (which PostgreSQL refuses outright)."""
    return 0 < len(text) <= limit and "\x00" not in text


def shorten(text: str, limit: int = 60) -> str:
    """User input cut short for a message, so a pasted novel cannot overflow the session cookie."""
    return text if len(text) <= limit else text[:limit] + "..."


def _quote(text: str) -> str:
    return repr(shorten(text))


def unchecked_user_note(user_text: str) -> str:
    """What to say after storing an override for `user_text` in an app that gave no `user_lookup`."""
    return (
        f"The id {_quote(user_text.strip())} was not checked: this app gives the store no user_lookup, "
        "so any text is taken as an id."
    )


def _find_stale(snapshot: Snapshot, config_map: Mapping[str, Any]) -> list[StaleOverride]:
    variants = {flag: config.get_variants() for flag, config in config_map.items()}

    def reason(flag: str, variant: str) -> str | None:
        if flag not in variants:
            return f"flag {flag} is no longer in the code"
        if variant not in variants[flag]:
            return f"variant {variant} is no longer one of {', '.join(variants[flag])}"
        return None

    stale = []
    for flag, variant in sorted(snapshot.forced.items()):
        if why := reason(flag, variant):
            stale.append(StaleOverride(flag, variant, None, why))
    for flag, users in sorted(snapshot.user_overrides.items()):
        for user_id, variant in sorted(users.items()):
            if why := reason(flag, variant):
                stale.append(StaleOverride(flag, variant, user_id, why))
    return stale


def clean_reason(reason: str | None) -> str | None:
    """A change's optional reason, ready to store: trimmed, None when blank. Every write calls it before it
    changes anything, so a reason that cannot be stored is refused with nothing written (OverrideError)."""
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise OverrideError(f"A reason must be text, not {type(reason).__name__}; nothing was changed.")
    reason = " ".join(reason.split())
    if not reason:
        return None
    if len(reason) > REASON_LENGTH:
        raise OverrideError(
            f"The reason is {len(reason)} characters long; keep it under {REASON_LENGTH + 1}. "
            "Nothing was changed."
        )
    if "\x00" in reason:
        raise OverrideError("The reason contains a NUL character; nothing was changed.")
    return reason


def _audit(
    session: Session,
    actor: str,
    flag: str,
    action: str,
    target: str,
    before: str | None,
    after: str | None,
    *,
    reason: str | None = None,
    user_id: str | None = None,
) -> AuditEntry:
    """Record one change; `reason` must have been through `clean_reason` (each write does that first), and
    `user_id` is the id a user override is stored under (so that it can be undone)."""
    row = _AuditRow(
        at=datetime.now(UTC),
        actor=actor[:_LABEL_LENGTH],
        flag=flag,
        action=action,
        target=target[:_LABEL_LENGTH],
        before=before,
        after=after,
        reason=reason,
        user_id=user_id,
    )
    session.add(row)
    session.flush()
    return _entry(row)


UNDOABLE_ACTIONS = ("force", "unforce", "user_override", "clear_user_override")


def _undo_user_id(entry: AuditEntry) -> str:
    """The id a user override was stored under (entries from before that was recorded: their label)."""
    return entry.user_id if entry.user_id is not None else entry.target


def undo_problem(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    """Why `entry` cannot be undone now, in a few words; None when it can.

    A change can be undone while what it set is still in place: a later change to the same thing would be
    silently reverted otherwise.
    """
    if entry.action not in UNDOABLE_ACTIONS:
        return f"the dashboard cannot undo {entry.action} changes"
    if entry.action in ("force", "unforce"):
        now = snapshot.forced.get(entry.flag)
        target = "the forced variant"
    else:
        now = snapshot.user_overrides.get(entry.flag, {}).get(_undo_user_id(entry))
        target = f"the override for {entry.target}"
    if now != entry.after:
        return f"{target} has changed since"
    if entry.before is not None and entry.flag not in _config_map():
        return f"flag {entry.flag} is no longer in the code"
    return None


def _force(
    session: Session, flag: str, variant: str, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    """Force `variant` of `flag` for everyone and audit it, in `session` (also a due scheduled change)."""
    row = session.get(_ForcedRow, flag)
    before = row.variant if row else None
    if before == variant:
        return None
    if row is None:
        row = _ForcedRow(flag=flag)
        session.add(row)
    row.variant, row.set_by, row.set_at = variant, actor[:_LABEL_LENGTH], datetime.now(UTC)
    return _audit(session, actor, flag, "force", "everyone", before, variant, reason=reason)


def _unforce(session: Session, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
    """Stop forcing `flag` and audit it, in `session`; None if it was not forced."""
    row = session.get(_ForcedRow, flag)
    if row is None:
        return None
    session.delete(row)
    return _audit(session, actor, flag, "unforce", "everyone", row.variant, None, reason=reason)


store = OverrideStore()


# --- `flask gk ...`: the same operations from a terminal, audited as "cli" ----------------------------------


def _run(
    operation: Callable[..., AuditEntry | None], *args: str, unchanged: str, reason: str | None = None
) -> None:
    try:
        entry = operation(*args, actor=CLI_ACTOR, reason=reason)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(entry.summary if entry else unchanged)


reason_option = click.option(
    "--reason", default=None, help=f"Why, for the audit log (optional, up to {REASON_LENGTH} characters)."
)


@gatekeeper.cli.command("force")
@click.argument("flag")
@click.argument("variant")
@reason_option
def force_command(flag: str, variant: str, reason: str | None) -> None:
    """Serve VARIANT of FLAG to everyone until `flask gk unforce FLAG`."""
    unchanged = f"{flag} is already forced to {variant}; nothing changed."
    _run(store.force, flag, variant, unchanged=unchanged, reason=reason)


@gatekeeper.cli.command("unforce")
@click.argument("flag")
@reason_option
def unforce_command(flag: str, reason: str | None) -> None:
    """Stop forcing FLAG: everyone gets their own variant again."""
    _run(store.unforce, flag, unchanged=f"{flag} is not forced; nothing changed.", reason=reason)


@gatekeeper.cli.command("override")
@click.argument("flag")
@click.argument("variant", required=False)
@click.option("--user", "user_text", required=True, help="The user's email or id.")
@click.option("--clear", is_flag=True, help="Remove the user's override instead of setting one.")
@reason_option
def override_command(flag: str, variant: str | None, user_text: str, clear: bool, reason: str | None) -> None:
    """Serve VARIANT of FLAG to one user (or remove their override with --clear)."""
    if clear:
        if variant is not None:
            raise click.UsageError("--clear takes no VARIANT.")
        _clear_override(flag, user_text, reason)
    elif variant is None:
        raise click.UsageError("Give a VARIANT, or --clear to remove the override.")
    else:
        _run(
            store.set_user_override,
            flag,
            user_text,
            variant,
            unchanged=f"{user_text} already gets {variant}.",
            reason=reason,
        )
        if not store.checks_users:
            click.echo(unchecked_user_note(user_text))


def _clear_override(flag: str, user_text: str, reason: str | None = None) -> None:
    try:
        user = store.find_user(user_text)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    # A deleted user's override can still be cleared by the id it was stored under.
    user_id = user.id if user else user_text.strip()
    if user is None and user_id not in store.snapshot(max_age=0).user_overrides.get(flag, {}):
        raise click.ClickException(
            f"No user matches {user_text!r} and {flag} has no override stored under that id."
        )
    _run(
        store.clear_user_override,
        flag,
        user_id,
        unchanged=f"{flag} has no override for {user_text}; nothing changed.",
        reason=reason,
    )


@gatekeeper.cli.command("audit")
@click.option("--flag", default=None, help="Only this flag's changes.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many entries.")
def audit_command(flag: str | None, limit: int) -> None:
    """Show the newest changes to forced variants and user overrides."""
    try:
        entries = store.audit_entries(page=1, per_page=limit, flag=flag).entries
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if not entries:
        click.echo("No changes recorded yet.")
    for entry in entries:
        when = f"{entry.at:%Y-%m-%d %H:%M:%S} UTC"
        change = f"{entry.before or '-'} -> {entry.after or '-'}"
        why = f"  ({entry.reason})" if entry.reason else ""
        click.echo(f"{when}  {entry.actor}  {entry.flag}  {entry.action}  {entry.target}  {change}{why}")


# The store's other half: rollout weights, groups, group targets and scheduled changes (their tables join
# this metadata, their commands `flask gk`). Imported last, as it builds on everything above.
from . import gatekeeper_targeting  # noqa: E402
