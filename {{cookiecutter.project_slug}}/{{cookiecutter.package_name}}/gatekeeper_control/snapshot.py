"""The store's snapshot: every stored override and targeting rule at one moment, kept in each process.

Flag checks never query the database: the engine reads `AppStore.snapshot()`, an immutable in-process copy
that is checked against the database at most every `GATEKEEPER_STORE_TTL` seconds, and reloaded only when a
one-row version counter says something changed. A write in this process refreshes the snapshot at once.
With a change feed (push.py: LISTEN/NOTIFY on PostgreSQL) each process reloads within milliseconds of a
write elsewhere; without one, or while it reconnects, other processes converge within the TTL.

On a request the database is never waited for: a stale snapshot is served while a background thread
refreshes it (only a process's very first load waits, at most `FIRST_LOAD_WAIT` seconds). Outside requests
(CLI, jobs, tests) and with an explicit `max_age` the refresh happens in the caller. When the database is
unreachable the last snapshot keeps serving, `available` turns False and `error` says why; nothing raises
into a flag check. Due scheduled changes are applied on a refresh, through the `apply_due` hook that
`gatekeeper_control.init_app` sets (schedules.py), so this module knows nothing of schedules.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from flask import Flask, has_request_context
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from . import forks
from .conditions import CompiledSegment, Condition, compile_segment
from .engine import gatekeeper
from .push import ChangeFeed, feed_for
from .tables import (
    ACTIVE_RELEASE,
    ConditionRow,
    DisabledRow,
    ForcedRow,
    GroupRow,
    MemberRow,
    PrerequisiteRow,
    ReleaseRow,
    ScheduleRow,
    SegmentRow,
    TargetRow,
    UserOverrideRow,
    ValueRow,
    VersionRow,
    WeightRow,
)

log = logging.getLogger(__name__)

# Where an app keeps its AppStore: `app.extensions[EXTENSION_KEY]`.
EXTENSION_KEY = "gatekeeper_store"
# What a broken or unreachable database raises (OSError: e.g. an SQLite file in a missing folder).
DATABASE_ERRORS = (SQLAlchemyError, OSError)
# What the database raises when it refuses the data of one statement (a value too long or out of range, a
# NUL in text, a broken constraint): the input is at fault, not the database, which stays available.
REFUSED_INPUT_ERRORS = (DataError, IntegrityError, OverflowError)
# Seconds a process's first request may wait for its first snapshot (a kill switch holds from the start).

FIRST_LOAD_WAIT = 2.0


# --- What the store hands out -------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRef:
    """A user an override can name: the id the engine matches on, and a label people recognise."""

    id: str
    label: str


# The user a text names (an email, name or id), or None; or, for a text that names nobody exactly, the users
# whose email or name it is part of (a list: the users page offers them; a change needs one in full).
UserLookup = Callable[[str], UserRef | Sequence[UserRef] | None]
# Many at once (a pasted list of group members): {text: UserRef} for the texts that name a user.
UsersLookup = Callable[[Sequence[str]], Mapping[str, UserRef]]


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
    # Runtime targeting (targeting.py); every lookup a flag check makes is a dict or set lookup.
    weights: Mapping[str, Mapping[str, float]] = _nothing()  # flag -> {variant: percent}, in range order
    weights_set: Mapping[str, tuple[str, datetime]] = _nothing()  # flag -> (who, when UTC)
    groups: Mapping[str, str] = _nothing()  # stored group -> description
    group_members: Mapping[str, Mapping[str, str]] = _nothing()  # group -> {user id -> label}
    memberships: Mapping[str, frozenset[str]] = _nothing()  # user id -> its stored groups
    group_targets: Mapping[str, tuple[tuple[str, str], ...]] = _nothing()  # flag -> (group, var)
    # (flag, group) -> {variant: percent}, for the targets that split their group ("ON=50 OFF=50")
    target_splits: Mapping[tuple[str, str], Mapping[str, float]] = _nothing()
    next_due: datetime | None = None  # when the first pending scheduled change is due (UTC)
    disabled: frozenset[str] = frozenset()  # flags switched off: everyone gets DEFAULT_VARIANT
    values: Mapping[str, Mapping[str, Any]] = _nothing()  # flag -> {variant: value set at runtime}
    segments: Mapping[str, CompiledSegment] = _nothing()  # segment -> its conditions, compiled to match
    prerequisites: Mapping[str, tuple[tuple[str, str], ...]] = _nothing()  # flag -> ((flag, variant), ...)
    # The flags a release is under way on: the engine hands outcomes.py the response of a request that asked
    # one of them (its `on_response`), and no other request pays for outcome recording.
    watched: frozenset[str] = frozenset()


@dataclass(frozen=True)
class StaleOverride:
    """A stored override the engine ignores because its flag or variant is no longer in the code."""

    flag: str
    variant: str
    user_id: str | None  # None: forced for everyone
    reason: str


_EMPTY = MappingProxyType({})
EMPTY_SNAPSHOT = Snapshot(
    forced=_EMPTY, user_overrides=_EMPTY, user_labels=_EMPTY, version=-1, loaded_at=None
)


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
        users_lookup: UsersLookup | None = None,
    ) -> None:
        self.db = db
        self.ttl = ttl
        self.user_lookup = user_lookup
        self.users_lookup = users_lookup
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
        # Applies due scheduled changes: (engine, now, config map) -> how many (set by schedules.py's wiring).
        self.apply_due: Callable[[Engine, datetime, Mapping[str, Any]], int] | None = None
        self.first_load = threading.Event()
        self._engine: Engine | None = None
        # (snapshot, config map, its stale overrides): see OverrideStore.stale_overrides.
        self.stale: tuple[Snapshot, Mapping[str, Any], list[StaleOverride]] | None = None
        forks.in_child(self.after_fork)

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
        forks.ensure_this_process()  # a fork Python's hooks did not see (uWSGI): prepare this child now
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

    @property
    def checks_users(self) -> bool:
        """Whether the app gave a `user_lookup`, so that a typed email or id names a real user."""
        return self.user_lookup is not None

    def lookup_user(self, text: str) -> UserRef | None:
        """The user an email or id names, through `user_lookup` (the engine's `flask gk explain --user`); of
        the users a partial text matches, the one whose id or label it is in full, else None."""
        if self.user_lookup is None:
            return UserRef(id=text, label=text)
        found = self.user_lookup(text)
        if isinstance(found, list | tuple):
            exact = [ref for ref in found if str(ref.id) == text or str(ref.label).lower() == text.lower()]
            return exact[0] if len(exact) == 1 else None
        return found

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
        """In a forked child (forks.py calls it): new locks, no inherited pool connections, and on first use
        a fresh snapshot and a listener of its own (the feed starts afresh in a new process)."""
        self.lock, self.first_load = threading.Lock(), threading.Event()
        if self.current.loaded_at is not None:
            self.first_load.set()
        self.checked_at = -math.inf
        # The parent's pooled connections are forgotten, not closed: closing would end the parent's sessions
        # too (SQLAlchemy's advice for multiprocessing). The child opens its own on first use.
        try:
            for engine in self._engines_in_parent():
                engine.dispose(close=False)
        except Exception:  # e.g. a Flask-SQLAlchemy `db` this app was never given: nothing pooled to drop
            log.warning("gatekeeper: could not drop the parent's pooled connections", exc_info=True)

    def _engines_in_parent(self) -> list[Engine]:
        """The engines whose pools may hold the parent's connections: the store's, and with Flask-SQLAlchemy
        every engine of the app (the app's own models share its pool, so they would share its sockets)."""
        if isinstance(self.db, Engine):
            return [self.db]
        if hasattr(type(self.db), "engines") and self.app is not None:  # (a property: needs the app)
            with self.app.app_context():
                return list(self.db.engines.values())
        return [self._engine] if self._engine is not None else []

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
                if self.apply_due is not None and self.apply_due(self.engine, self.now(), config_map):
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
            version = session.scalar(select(VersionRow.version).where(VersionRow.id == 1))
            if version is None or version != self.current.version:
                self.current = read_snapshot(session, -1 if version is None else version)

    def mark_unavailable(self, exc: BaseException) -> None:
        error = describe_error(exc)
        if self.available:
            log.error("Gatekeeper override store unavailable, serving the last snapshot: %s", error)
        else:
            log.debug("Gatekeeper override store still unavailable: %s", error)
        self.available, self.error = False, error


def describe_error(exc: BaseException) -> str:
    """The driver's own message ("no such table: ...") rather than SQLAlchemy's page of context."""
    return str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__


# How SQLite and PostgreSQL say a table is missing: for gatekeeper's own, the database is up but was never
# given them (an app's tests building tables with `db.create_all()`, a migration not written yet).
_MISSING_TABLE = re.compile(r'no such table: (gatekeeper_\w+)|relation "(gatekeeper_\w+)" does not exist')


def missing_table(error: str | None) -> str | None:
    """The gatekeeper table an error says is missing, or None."""
    match = _MISSING_TABLE.search(error or "")
    return (match.group(1) or match.group(2)) if match else None


def read_snapshot(session: Session, version: int) -> Snapshot:
    # Plain column tuples, not ORM objects: a reload of ten thousand overrides stays in the milliseconds.
    forced = dict(session.execute(select(ForcedRow.flag, ForcedRow.variant)).all())
    by_flag: dict[str, dict[str, str]] = {}
    labels: dict[str, str] = {}
    rows = select(
        UserOverrideRow.flag, UserOverrideRow.user_id, UserOverrideRow.variant, UserOverrideRow.user_label
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
        watched=frozenset(
            session.scalars(select(ReleaseRow.flag).where(ReleaseRow.state.in_(ACTIVE_RELEASE)))
        ),
        **_read_targeting(session),
    )


def as_utc(moment: datetime) -> datetime:
    """SQLite hands datetimes back without a zone; they were written in UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _read_targeting(session: Session) -> dict[str, Any]:
    """The Snapshot fields for runtime targeting, with per-user membership sets precomputed."""
    weights: dict[str, dict[str, float]] = {}
    weights_set: dict[str, tuple[str, datetime]] = {}
    rows = select(WeightRow).order_by(WeightRow.flag, WeightRow.position)
    for row in session.scalars(rows):
        points = row.basis_points
        weights.setdefault(row.flag, {})[row.variant] = points // 100 if points % 100 == 0 else points / 100
        weights_set[row.flag] = (row.set_by, as_utc(row.set_at))
    groups = dict(session.execute(select(GroupRow.name, GroupRow.description)).all())
    members: dict[str, dict[str, str]] = {name: {} for name in groups}
    by_user: dict[str, set[str]] = {}
    for group, user_id, label in session.execute(
        select(MemberRow.group, MemberRow.user_id, MemberRow.user_label)
    ):
        members.setdefault(group, {})[user_id] = label
        by_user.setdefault(user_id, set()).add(group)
    targets: dict[str, list[tuple[str, str]]] = {}
    rows = select(TargetRow.flag, TargetRow.group, TargetRow.variant).order_by(
        TargetRow.set_at, TargetRow.group
    )
    splits: dict[tuple[str, str], Mapping[str, float]] = {}
    for flag, group, variant in session.execute(rows):
        targets.setdefault(flag, []).append((group, variant))
        if "=" in variant:  # a sticky split: "ON=50 OFF=50" (targeting.py wrote it, in range order)
            pairs = (item.partition("=") for item in variant.split())
            splits[(flag, group)] = MappingProxyType({name: float(percent) for name, _, percent in pairs})
    next_due = session.scalar(select(func.min(ScheduleRow.due_at)).where(ScheduleRow.state == "pending"))
    values: dict[str, dict[str, Any]] = {}
    for flag, variant, value in session.execute(select(ValueRow.flag, ValueRow.variant, ValueRow.value)):
        try:
            values.setdefault(flag, {})[variant] = json.loads(value)
        except ValueError:  # written by hand: ignored (the dashboard lists it as stale)
            log.warning("gatekeeper: the stored value of %s %s is not JSON; ignored", flag, variant)
    conditions: dict[str, list[Condition]] = {}
    rows = select(ConditionRow.segment, ConditionRow.attribute, ConditionRow.operator, ConditionRow.value)
    for segment, attribute, operator, value in session.execute(rows.order_by(ConditionRow.id)):
        conditions.setdefault(segment, []).append(
            Condition(attribute, operator, json.loads(value) if value is not None else None)
        )
    segments = {
        name: compile_segment(name, conditions.get(name, []), description)
        for name, description in session.execute(select(SegmentRow.name, SegmentRow.description))
    }
    prerequisites: dict[str, list[tuple[str, str]]] = {}
    rows = select(PrerequisiteRow.flag, PrerequisiteRow.required, PrerequisiteRow.variant)
    for flag, required, variant in session.execute(rows.order_by(PrerequisiteRow.set_at)):
        prerequisites.setdefault(flag, []).append((required, variant))
    return {
        "prerequisites": MappingProxyType({flag: tuple(p) for flag, p in prerequisites.items()}),
        "segments": MappingProxyType(segments),
        "disabled": frozenset(session.scalars(select(DisabledRow.flag))),
        "values": MappingProxyType({flag: MappingProxyType(v) for flag, v in values.items()}),
        "weights": MappingProxyType({flag: MappingProxyType(w) for flag, w in weights.items()}),
        "weights_set": MappingProxyType(weights_set),
        "groups": MappingProxyType(groups),
        "group_members": MappingProxyType({g: MappingProxyType(m) for g, m in members.items()}),
        "memberships": MappingProxyType({user: frozenset(gs) for user, gs in by_user.items()}),
        "group_targets": MappingProxyType({flag: tuple(t) for flag, t in targets.items()}),
        "target_splits": MappingProxyType(splits),
        "next_due": as_utc(next_due) if next_due is not None else None,
    }
