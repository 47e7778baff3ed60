"""The store: forced variants and per-user overrides, written and audited in one transaction each.

`store` (an `OverrideStore`) is the Flask-style extension: `init_app(app, db)` gives the app an `AppStore`
(snapshot.py) whose snapshot the engine reads on every flag check. Every write validates first, then bumps
the version counter, changes and audits (audit.py) in one transaction, announces itself on the change feed
(push.py) and refreshes this process's snapshot. Runtime targeting (targeting.py) and schedules
(schedules.py) write through the same `OverrideStore._write`, so there is one write path.

Drop-in: imports only the standard library, Flask, SQLAlchemy and the engine.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from flask import Flask, current_app
from sqlalchemy import URL, create_engine, func, inspect, or_, select, text, update
from sqlalchemy.orm import Session

from . import user_lookup
from .audit import AuditEntry, AuditPage, clean_reason, entry_from_row, record
from .checks import (
    check_flag,
    check_variant,
    current_config_map,
    find_stale,
    quote,
    storable,
)
from .errors import (
    OverrideError,
    StoreError,
    StoreUnavailableError,
    UnknownUserError,
)
from .parsing import row_id
from .push import ChangeFeed
from .snapshot import (
    DATABASE_ERRORS,
    EXTENSION_KEY,
    REFUSED_INPUT_ERRORS,
    AppStore,
    Snapshot,
    StaleOverride,
    UserLookup,
    UsersLookup,
    describe_error,
    missing_table,
    read_snapshot,
)
from .tables import (
    LABEL_LENGTH,
    NAME_LENGTH,
    REASON_LENGTH,
    USER_ID_LENGTH,
    AuditRow,
    Base,
    DisabledRow,
    ForcedRow,
    UserOverrideRow,
    VersionRow,
)
from .undo_rules import UNDO_KINDS, undo_problem, undo_user_id

# Who `flask gk ...` changes are audited as.
CLI_ACTOR = "cli"


# The session of the `OverrideStore.batch()` in progress in this context, if any: writes join it.
_BATCH: ContextVar[Session | None] = ContextVar("gatekeeper_batch", default=None)


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
        users_lookup: UsersLookup | None = None,
        feed: ChangeFeed | None = None,
    ) -> AppStore:
        """Attach to `app`. `db` is a database URL (``"sqlite:///path"``), a SQLAlchemy Engine, or the
        Flask-SQLAlchemy object.

        `user_lookup(text)` turns an email or id typed by an admin into a `UserRef`, or None when no such user
        exists; without one, any text is taken as the user id, unchecked (and the dashboard says so).
        `users_lookup(texts)` (optional) finds many at once, {text: UserRef}, for pasted lists of members.
        `feed` carries changes between processes (default: LISTEN/NOTIFY on PostgreSQL, none elsewhere);
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
            users_lookup=users_lookup,
        )
        app.extensions[EXTENSION_KEY] = app_store
        app_store.app = app  # scheduled changes are checked against its flags, from any thread
        return app_store

    def create_tables(self) -> None:
        """Create gatekeeper's tables on the current app's database (idempotent), for an app without Alembic.

        In a database Alembic manages (it has an `alembic_version` table) a missing gatekeeper table is an
        error saying how to add a migration instead: creating it here would leave `flask db migrate` nothing
        to write, and a fresh `flask db upgrade` would then fail on a table that already exists. Once the
        migration has made them, this only seeds the version row.
        """
        state = current_state()
        existing = set(inspect(state.engine).get_table_names())
        missing = sorted(name for name in Base.metadata.tables if name not in existing)
        if missing and "alembic_version" in existing:
            raise StoreError(
                f"This database's schema is managed by Alembic and lacks {', '.join(missing)}: add "
                "gatekeeper_control.metadata to target_metadata in migrations/env.py, run "
                '`flask db migrate -m "gatekeeper tables"` and `flask db upgrade`, and call '
                "create_tables() only after the upgrade (or not at all)."
            )
        Base.metadata.create_all(state.engine)
        with Session(state.engine) as session, session.begin():
            if session.get(VersionRow, 1) is None:
                session.add(VersionRow(id=1, version=0))
        state.checked_at = -math.inf

    # Reading ------------------------------------------------------------------------------------------------

    def snapshot(self, max_age: float | None = None) -> Snapshot:
        """The current app's overrides; see `AppStore.snapshot`. Never raises. Inside `batch()`: what its
        transaction holds so far, so that each write's checks see the writes before it."""
        batch = _BATCH.get()
        if batch is not None:
            batch.flush()
            return read_snapshot(batch, -1)
        return current_state().snapshot(max_age)

    @property
    def available(self) -> bool:
        """Whether the last database access for the current app worked."""
        return current_state().available

    @property
    def error(self) -> str | None:
        """Why the store is unavailable, in the database's words; None when it is available."""
        return current_state().error

    @property
    def missing_table(self) -> str | None:
        """The gatekeeper table the database lacks, when that is why the store is unavailable."""
        state = current_state()
        return None if state.available else missing_table(state.error)

    @property
    def checks_users(self) -> bool:
        """Whether the current app gave a `user_lookup`, so that an override can only name a real user."""
        return current_state().user_lookup is not None

    def stale_overrides(
        self, snapshot: Snapshot | None = None, config_map: Mapping[str, Any] | None = None
    ) -> list[StaleOverride]:
        """Stored overrides naming a flag or variant the code no longer has (the engine ignores them).

        Worked out once per snapshot: every dashboard page asks, and with many overrides stored the walk
        is the slow part of the page.
        """
        snapshot = snapshot or self.snapshot()
        config_map = current_config_map() if config_map is None else config_map
        state = current_state()
        cached = state.stale
        if cached is None or cached[0] is not snapshot or cached[1] is not config_map:
            cached = state.stale = (snapshot, config_map, find_stale(snapshot, config_map))
        return list(cached[2])

    def audit_entries(
        self,
        page: int = 1,
        per_page: int = 50,
        flag: str | None = None,
        *,
        actor: str | None = None,
        action: str | None = None,
        since: datetime | None = None,
        before: datetime | None = None,
        search: str | None = None,
    ) -> AuditPage:
        """One page of the audit log, newest first, optionally for one flag, actor and/or action, changes
        made at `since` or later and before `before`, and `search` anywhere in the entry (flag, who, what it
        changed, before, after, reason; any case). Raises StoreUnavailableError.

        A page past the end gives the last page, so a stale or hand-typed link still shows something.
        """
        per_page = max(1, per_page)
        filters = [(AuditRow.flag, flag, NAME_LENGTH), (AuditRow.actor, actor, LABEL_LENGTH)]
        filters.append((AuditRow.action, action, 32))
        if any(value is not None and not storable(value, limit) for _column, value, limit in filters):
            return AuditPage(entries=[], page=1, per_page=per_page, total=0)
        conditions = [column == value for column, value, _limit in filters if value is not None]
        conditions += [AuditRow.at >= since] if since is not None else []
        conditions += [AuditRow.at < before] if before is not None else []
        if search:
            if not storable(search, LABEL_LENGTH):
                return AuditPage(entries=[], page=1, per_page=per_page, total=0)
            needle = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            columns = (AuditRow.flag, AuditRow.actor, AuditRow.target, AuditRow.before, AuditRow.after)
            conditions.append(
                or_(*(func.lower(column).like(needle, escape="\\") for column in (*columns, AuditRow.reason)))
            )
        query = select(AuditRow).where(*conditions).order_by(AuditRow.id.desc())
        count = select(func.count()).select_from(AuditRow).where(*conditions)
        with self._reading() as session:
            total = session.scalar(count) or 0
            page = min(max(1, page), max(1, math.ceil(total / per_page)))
            rows = session.scalars(query.limit(per_page).offset((page - 1) * per_page))
            entries = [entry_from_row(row) for row in rows]
        return AuditPage(entries=entries, page=page, per_page=per_page, total=total)

    def audit_entry(self, entry_id: int) -> AuditEntry | None:
        """One audit entry by its id, or None. Raises StoreUnavailableError."""
        if row_id(entry_id) is None:
            return None
        with self._reading() as session:
            row = session.get(AuditRow, entry_id)
            return entry_from_row(row) if row is not None else None

    def audit_actors(self, limit: int | None = None) -> list[str]:
        """Everyone who has changed something (the `limit` most recently active, with a limit), sorted: the
        audit log's actor filter. Raises StoreUnavailableError."""
        query = select(AuditRow.actor).group_by(AuditRow.actor).order_by(func.max(AuditRow.id).desc())
        with self._reading() as session:
            return sorted(session.scalars(query.limit(limit) if limit is not None else query))

    def newest_of_their_kind(self, entries: list[AuditEntry]) -> set[int]:
        """The ids among `entries` that are the newest change to what they changed (a flag's forced variant,
        or one user's override): the only ones an undo may restore. Raises StoreUnavailableError."""
        newest = set()
        with self._reading() as session:
            for entry in entries:
                later = select(AuditRow.id).where(AuditRow.flag == entry.flag, AuditRow.id > entry.id)
                if entry.action in UNDO_KINDS:
                    kind = UNDO_KINDS[entry.action]
                    later = later.where(AuditRow.action.in_(kind.actions), kind.same_thing(entry))
                elif entry.action in ("force", "unforce"):
                    later = later.where(AuditRow.action.in_(("force", "unforce")))
                elif entry.action in ("off", "on"):
                    later = later.where(AuditRow.action.in_(("off", "on")))
                else:
                    later = later.where(
                        AuditRow.action.in_(("user_override", "clear_user_override")),
                        (AuditRow.user_id == undo_user_id(entry)) | (AuditRow.target == entry.target),
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
        if entry.action in UNDO_KINDS:
            return UNDO_KINDS[entry.action].restore(entry, actor, why)
        if entry.action in ("off", "on"):
            operation = self.switch_off if entry.action == "on" else self.switch_on
            return operation(entry.flag, actor, reason=why)
        if entry.action in ("force", "unforce"):
            if entry.before is None:
                return self.unforce(entry.flag, actor, reason=why)
            return self.force(entry.flag, entry.before, actor, reason=why)
        user_id = undo_user_id(entry)
        if entry.before is None:
            return self.clear_user_override(entry.flag, user_id, actor, reason=why)
        return self.set_user_override(entry.flag, user_id, entry.before, actor, reason=why)

    def last_changes(self, flags: Sequence[str] | None = None) -> dict[str, AuditEntry]:
        """The newest audit entry of every flag that has one (of `flags` only, when given: a page of the flag
        list). Raises StoreUnavailableError."""
        newest = select(func.max(AuditRow.id)).group_by(AuditRow.flag)
        if flags is not None:
            newest = newest.where(AuditRow.flag.in_(flags))
        with self._reading() as session:
            return {
                row.flag: entry_from_row(row)
                for row in session.scalars(select(AuditRow).where(AuditRow.id.in_(newest)))
            }

    def last_change_ids(self) -> dict[str, int]:
        """Each flag's newest audit entry id: the flag list's sort by last change, without reading the
        entries. Raises StoreUnavailableError."""
        with self._reading() as session:
            return dict(
                session.execute(select(AuditRow.flag, func.max(AuditRow.id)).group_by(AuditRow.flag)).all()
            )

    # Writing: each write validates first, then changes and audits in one transaction ------------------------

    def force(self, flag: str, variant: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Serve `variant` of `flag` to everyone (the kill switch, or a full launch). None if already so."""
        reason = clean_reason(reason)
        check_variant(check_flag(flag), flag, variant)
        return self._write(lambda session: force_in(session, flag, variant, actor, reason=reason))

    def switch_off(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Switch `flag` off: everyone gets its DEFAULT_VARIANT (reason `disabled`). None if already off."""
        reason = clean_reason(reason)
        check_flag(flag)
        return self._write(lambda session: switch_off_in(session, flag, actor, reason=reason))

    def switch_on(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Switch `flag` back on (works for flags the code no longer has). None if it was not off."""
        reason = clean_reason(reason)
        if not storable(flag, NAME_LENGTH):
            return None
        return self._write(lambda session: switch_on_in(session, flag, actor, reason=reason))

    def unforce(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Stop forcing `flag` (works for flags the code no longer has). None if it was not forced."""
        reason = clean_reason(reason)
        if not storable(flag, NAME_LENGTH):
            return None
        return self._write(lambda session: unforce_in(session, flag, actor, reason=reason))

    def set_user_override(
        self, flag: str, user_text: str, variant: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Serve `variant` of `flag` to the user named by `user_text` (email or id). None if already so."""
        reason = clean_reason(reason)
        check_variant(check_flag(flag), flag, variant)
        user = user_lookup.find_user(user_text)
        if user is None:
            raise UnknownUserError(
                f"No user matches {quote(user_text.strip())}: enter the email or id of an existing user."
            )
        user_id, label = str(user.id)[:USER_ID_LENGTH], str(user.label)[:LABEL_LENGTH]

        def change(session: Session) -> AuditEntry | None:
            row = session.get(UserOverrideRow, (flag, user_id))
            before = row.variant if row else None
            if before == variant:
                return None
            if row is None:
                row = UserOverrideRow(flag=flag, user_id=user_id)
                session.add(row)
            row.user_label, row.variant, row.set_by, row.set_at = (
                label,
                variant,
                actor[:LABEL_LENGTH],
                datetime.now(UTC),
            )
            return record(
                session, actor, flag, "user_override", label, before, variant, reason=reason, user_id=user_id
            )

        return self._write(change)

    def clear_user_override(
        self, flag: str, user_id: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Remove the override of `flag` for `user_id` (stale ones too). None if there was none."""
        reason = clean_reason(reason)
        user_id = str(user_id)
        if not (storable(flag, NAME_LENGTH) and storable(user_id, USER_ID_LENGTH)):
            return None

        def change(session: Session) -> AuditEntry | None:
            row = session.get(UserOverrideRow, (flag, user_id))
            if row is None:
                return None
            session.delete(row)
            label, before = row.user_label, row.variant
            action = "clear_user_override"
            return record(session, actor, flag, action, label, before, None, reason=reason, user_id=user_id)

        return self._write(change)

    @contextmanager
    def batch(self, *, commit: bool = True) -> Iterator[None]:
        """Make every write inside the block in one transaction: all of them, or none if anything raises
        (an import). With `commit=False` they are all rolled back at the end: a dry run that made each write
        exactly as it would, audit entries included, and kept nothing. Raises as `_write` does."""
        state, feed = current_state(), None
        with self._errors_translated(state), Session(state.engine) as session:
            _bump_version(session)
            token = _BATCH.set(session)
            try:
                yield
            finally:
                _BATCH.reset(token)
            if not commit:
                session.rollback()
                return
            feed = state.change_feed()
            if feed is not None and (statement := feed.notify_statement()):
                session.execute(text(statement))
            session.commit()
        if feed is not None:
            feed.published()
        with state.lock:
            state.refresh()

    @contextmanager
    def _errors_translated(self, state: AppStore) -> Iterator[None]:
        """A write's database errors as the store's: refused input, or an unavailable database."""
        try:
            yield
        except REFUSED_INPUT_ERRORS as exc:
            raise OverrideError(
                f"The database refused this change ({describe_error(exc)}): check what was typed. "
                "Nothing was changed."
            ) from exc
        except DATABASE_ERRORS as exc:
            state.mark_unavailable(exc)
            raise StoreUnavailableError(
                f"The override store is unavailable ({state.error}); nothing was changed."
            ) from exc

    def _write(self, change: Callable[[Session], AuditEntry | None]) -> AuditEntry | None:
        batch = _BATCH.get()
        if batch is not None:  # inside `batch()`: its transaction commits (or not) at the end
            return change(batch)
        state = current_state()
        with self._errors_translated(state), Session(state.engine) as session:
            _bump_version(session)
            entry = change(session)
            if entry is None:
                session.rollback()
                return None
            feed = state.change_feed()
            if feed is not None and (statement := feed.notify_statement()):
                session.execute(text(statement))  # sent by the server only if this commits
            session.commit()
        if feed is not None:
            feed.published()
        with state.lock:  # after the commit, so this process sees its own write at once
            state.refresh()
        return entry

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        """A session for dashboard and CLI reads; database errors become StoreUnavailableError."""
        state = current_state()
        try:
            with Session(state.engine) as session:
                yield session
        except REFUSED_INPUT_ERRORS as exc:
            raise OverrideError(f"The database refused this query ({describe_error(exc)}).") from exc
        except DATABASE_ERRORS as exc:
            state.mark_unavailable(exc)
            raise StoreUnavailableError(f"The override store is unavailable ({state.error}).") from exc


def _bump_version(session: Session) -> None:
    # Bumping the counter first also serialises concurrent writers on databases with row locks.
    bumped = session.execute(
        update(VersionRow).where(VersionRow.id == 1).values(version=VersionRow.version + 1)
    )
    if bumped.rowcount == 0:
        session.add(VersionRow(id=1, version=1))


def current_state() -> AppStore:
    try:
        return current_app.extensions[EXTENSION_KEY]
    except KeyError:
        raise RuntimeError(
            "The gatekeeper store is not set up for this app: call store.init_app(app, db)."
        ) from None


def force_in(
    session: Session, flag: str, variant: str, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    """Force `variant` of `flag` for everyone and audit it, in `session` (also a due scheduled change)."""
    row = session.get(ForcedRow, flag)
    before = row.variant if row else None
    if before == variant:
        return None
    if row is None:
        row = ForcedRow(flag=flag)
        session.add(row)
    row.variant, row.set_by, row.set_at = variant, actor[:LABEL_LENGTH], datetime.now(UTC)
    return record(session, actor, flag, "force", "everyone", before, variant, reason=reason)


def switch_off_in(session: Session, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
    """Switch `flag` off and audit it, in `session` (also a due scheduled change); None if already off."""
    if session.get(DisabledRow, flag) is not None:
        return None
    session.add(DisabledRow(flag=flag, set_by=actor[:LABEL_LENGTH], set_at=datetime.now(UTC)))
    return record(session, actor, flag, "off", "everyone", None, "off", reason=reason)


def switch_on_in(session: Session, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
    """Switch `flag` back on and audit it, in `session`; None if it was not off."""
    row = session.get(DisabledRow, flag)
    if row is None:
        return None
    session.delete(row)
    return record(session, actor, flag, "on", "everyone", "off", None, reason=reason)


def unforce_in(session: Session, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
    """Stop forcing `flag` and audit it, in `session`; None if it was not forced."""
    row = session.get(ForcedRow, flag)
    if row is None:
        return None
    session.delete(row)
    return record(session, actor, flag, "unforce", "everyone", row.variant, None, reason=reason)


store = OverrideStore()
