"""Scheduled changes: any change (force, unforce, off, on, value, clear-value, rollout, clear-rollout,
target, untarget) at a set time.

Scheduled changes are rows with a due time. The timer (timer.py) looks for due ones every
`DUE_CHECK_SECONDS` in every process, traffic or not; the process holding the `schedules` lease (leases.py)
claims each due row with a conditional UPDATE and applies it in the same transaction, so it happens once
however many processes race, on SQLite (one writer at a time) and on PostgreSQL (the row lock makes the
second UPDATE match nothing). With `GATEKEEPER_TIMER` off, the snapshot carries the first due time and
whichever process first notices it has passed (on a snapshot refresh, never inside a flag check) applies
them: the store reaches `apply_due_changes` through the `AppStore.apply_due` hook that `init_app` sets here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from . import leases, timer
from .audit import SCHEDULE_ACTOR, AuditEntry, clean_reason, record
from .checks import check_flag, check_variant, current_config_map, quote
from .errors import OverrideError, ScheduleError
from .parsing import moment, row_id
from .snapshot import DATABASE_ERRORS, EXTENSION_KEY, AppStore, as_utc
from .store import current_state, force_in, store, switch_off_in, switch_on_in, unforce_in
from .tables import LABEL_LENGTH, ScheduleRow, VersionRow
from .targeting import (
    as_percentages,
    check_group_exists,
    clear_weights_in,
    format_weights,
    parse_weights,
    set_weights_in,
    target_in,
    untarget_in,
    utc_now,
)
from .values import clear_value_in, parse_value, set_value_in, to_json

SCHEDULE_ACTIONS = (
    "force",
    "unforce",
    "off",
    "on",
    "value",
    "clear-value",
    "rollout",
    "clear-rollout",
    "target",
    "untarget",
)


@dataclass(frozen=True)
class ScheduledChange:
    """A change waiting for its time (or done: applied, failed, cancelled)."""

    id: int
    flag: str
    due_at: datetime
    action: str
    argument: str
    created_by: str
    state: str
    outcome: str | None

    @property
    def description(self) -> str:
        return f"{self.action} {self.argument}".strip()


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or an offset like +30m, +2h, +1d; must be future (and
    within parsing.MAX_SCHEDULE_DAYS)."""
    return moment(text, now)


class Scheduler:
    """Scheduled changes for the current app (`scheduler`, below); writes go through the store."""

    def schedule(
        self,
        flag: str,
        when: str,
        action: str,
        arguments: list[str],
        actor: str,
        *,
        reason: str | None = None,
    ) -> AuditEntry:
        """Make a change at a future time (see `parse_when`): force V, unforce, rollout V=P..., clear-rollout,
        target GROUP V, untarget GROUP. Validated now; applied once when due by whichever process is first."""
        reason = clean_reason(reason)
        due = parse_when(when, current_state().now())
        argument = _check_scheduled_action(flag, action, arguments)

        def change(session: Session) -> AuditEntry:
            return _add_schedule(session, flag, due, action, argument, actor, reason)

        entry = store._write(change)
        assert entry is not None
        return entry

    def ramp(
        self,
        flag: str,
        steps: list[tuple[str, Mapping[str, str]]],
        actor: str,
        *,
        reason: str | None = None,
    ) -> list[AuditEntry]:
        """A rollout ramp in one go, e.g. 5% now, 25% tomorrow, 100% on Friday: `steps` are (WHEN, weights
        {variant: percent}); the first step's WHEN may be empty for "now". Every step is checked first, then
        all are written in one transaction (the weights of a "now" step set, the others scheduled)."""
        reason = clean_reason(reason)
        config = check_flag(flag)
        now = current_state().now()
        if not steps:
            raise ScheduleError("A ramp needs at least one step with a share; nothing was scheduled.")
        planned: list[tuple[datetime | None, dict[str, int]]] = []
        for number, (when, weights) in enumerate(steps, start=1):
            if not when.strip() and number > 1:
                raise ScheduleError(f"Step {number} has no time: only the first step can be made now.")
            due = parse_when(when, now) if when.strip() else None
            if planned and due is not None and planned[-1][0] is not None and due <= planned[-1][0]:
                raise ScheduleError(f"Step {number} is not after step {number - 1}; nothing was scheduled.")
            planned.append((due, parse_weights(config, weights)))
        entries: list[AuditEntry] = []

        def change(session: Session) -> AuditEntry | None:
            for due, points in planned:
                if due is None:
                    entry = set_weights_in(session, flag, points, actor, reason=reason)
                else:
                    argument = format_weights(as_percentages(points))
                    entry = _add_schedule(session, flag, due, "rollout", argument, actor, reason)
                if entry is not None:
                    entries.append(entry)
            return entries[-1] if entries else None

        store._write(change)
        return entries

    def cancel(
        self, schedule_id: int, actor: str, *, flag: str | None = None, reason: str | None = None
    ) -> AuditEntry | None:
        """Cancel a pending change (of `flag`, when given). None if it is not pending (already applied,
        cancelled or unknown) or belongs to another flag than `flag`."""
        reason = clean_reason(reason)
        if row_id(schedule_id) is None:
            return None

        def change(session: Session) -> AuditEntry | None:
            row = session.get(ScheduleRow, schedule_id)
            if row is None or row.state != "pending" or (flag is not None and row.flag != flag):
                return None
            row.state, row.done_at, row.outcome = (
                "cancelled",
                utc_now(),
                f"cancelled by {actor}"[:LABEL_LENGTH],
            )
            what = f"{row.action} {row.argument}".strip()[:100]
            return record(
                session, actor, row.flag, "cancel_schedule", f"#{row.id}", what, None, reason=reason
            )

        return store._write(change)

    def schedules(
        self,
        flag: str | None = None,
        pending_only: bool = False,
        *,
        pending_page: tuple[int, int] | None = None,
    ) -> list[ScheduledChange]:
        """Scheduled changes, pending first by due time (all of them, or page N of `pending_page=(N, size)`),
        then the 50 most recently done. Raises StoreError."""
        query = select(ScheduleRow)
        if flag is not None:
            query = query.where(ScheduleRow.flag == flag)
        pending_query = query.where(ScheduleRow.state == "pending").order_by(
            ScheduleRow.due_at, ScheduleRow.id
        )
        if pending_page is not None:
            page, size = pending_page
            pending_query = pending_query.limit(size).offset((page - 1) * size)
        with store._reading() as session:
            pending = session.scalars(pending_query).all()
            done = (
                []
                if pending_only
                else session.scalars(
                    query.where(ScheduleRow.state != "pending").order_by(ScheduleRow.id.desc()).limit(50)
                ).all()
            )
            return [_scheduled(row) for row in [*pending, *done]]

    def pending_count(self, flag: str | None = None) -> int:
        """How many changes of `flag` (of every flag, without one) are pending. Raises StoreError."""
        with store._reading() as session:
            query = select(func.count()).where(ScheduleRow.state == "pending")
            if flag is not None:
                query = query.where(ScheduleRow.flag == flag)
            return session.scalar(query) or 0


scheduler = Scheduler()


# How often each process looks for due changes, and how long the process that applies them keeps the right
# to (another takes over once a holder has stopped renewing it for that long).
DUE_CHECK_SECONDS = 1.0
LEASE_SECONDS = 15.0
LEASE_NAME = "schedules"


def init_app(app_store: AppStore) -> None:
    """Apply due changes on time (`gatekeeper_control.init_app`): the timer's job, or, with `GATEKEEPER_TIMER`
    off, whenever `app_store` refreshes its snapshot after one has come due."""
    timed = app_store.app is not None and timer.enabled(app_store.app)
    app_store.apply_due = None if timed else apply_due_changes


def apply_due_now() -> int:
    """The timer's job, in an app context: if this process holds the schedules lease, apply every due
    change and refresh this process's snapshot; return how many were applied."""
    app_store = current_app.extensions.get(EXTENSION_KEY)
    if app_store is None:
        return 0
    try:
        if not leases.try_acquire(app_store.engine, LEASE_NAME, leases.process_holder(), LEASE_SECONDS):
            return 0
        applied = apply_due_changes(app_store.engine, app_store.now(), current_config_map())
    except DATABASE_ERRORS as exc:  # said once, on the dashboard's banner and in the log; tried again
        app_store.mark_unavailable(exc)
        return 0
    if applied:
        with app_store.lock:
            app_store.refresh()
    return applied


timer.every("schedules", DUE_CHECK_SECONDS, apply_due_now)


def _add_schedule(
    session: Session,
    flag: str,
    due: datetime,
    action: str,
    argument: str,
    actor: str,
    reason: str | None,
) -> AuditEntry:
    row = ScheduleRow(
        flag=flag,
        due_at=due,
        action=action,
        argument=argument,
        created_by=actor[:LABEL_LENGTH],
        created_at=utc_now(),
        state="pending",
    )
    session.add(row)
    session.flush()
    target = f"#{row.id} at {due:%Y-%m-%d %H:%M:%S} UTC"
    after = f"{action} {argument}".strip()[:100]
    return record(session, actor, flag, "schedule", target, None, after, reason=reason)


def _check_scheduled_action(flag: str, action: str, arguments: list[str]) -> str:
    """Validate a change as if it were made now; return its arguments as stored (one string)."""
    config = check_flag(flag)
    arguments = [a.strip() for a in arguments if a and a.strip()]
    expected = {"force": 1, "unforce": 0, "off": 0, "on": 0, "clear-value": 1, "clear-rollout": 0}
    expected.update({"target": 2, "untarget": 1})
    if action not in SCHEDULE_ACTIONS:
        raise ScheduleError(f"{quote(action)} is not an action: use {', '.join(SCHEDULE_ACTIONS)}.")
    if action == "rollout":
        return format_weights(as_percentages(parse_weights(config, arguments)))
    if action == "value":
        if len(arguments) < 2:
            raise ScheduleError("Write it as `value VARIANT JSON`; nothing was scheduled.")
        check_variant(config, flag, arguments[0])
        argument = f"{arguments[0]} {to_json(parse_value(config, arguments[0], ' '.join(arguments[1:])))}"
        if len(argument) > LABEL_LENGTH:
            raise ScheduleError(
                f"A scheduled value is kept to {LABEL_LENGTH} characters; set a longer one now instead."
            )
        return argument
    if len(arguments) != expected[action]:
        usage = {"force": "force VARIANT", "target": "target GROUP VARIANT", "untarget": "untarget GROUP"}
        raise ScheduleError(f"Write it as `{usage.get(action, action)}`; nothing was scheduled.")
    if action in ("force", "clear-value"):
        check_variant(config, flag, arguments[0])
    if action == "target":
        check_group_exists(arguments[0])
        check_variant(config, flag, arguments[1])
    return " ".join(arguments)


def _apply(
    session: Session, row: ScheduleRow, actor: str, config_map: Mapping[str, Any]
) -> AuditEntry | None:
    """Make a due change inside the claiming transaction; raises OverrideError when it no longer fits."""
    flag, arguments = row.flag, row.argument.split()
    config = config_map.get(flag)
    if config is None:
        raise OverrideError(f"flag {flag} is no longer in the code")
    if row.action == "force":
        check_variant(config, flag, arguments[0])
        return force_in(session, flag, arguments[0], actor)
    if row.action == "unforce":
        return unforce_in(session, flag, actor)
    if row.action == "off":
        return switch_off_in(session, flag, actor)
    if row.action == "on":
        return switch_on_in(session, flag, actor)
    if row.action == "value":
        variant, _, text = row.argument.partition(" ")
        check_variant(config, flag, variant)
        return set_value_in(session, flag, variant, parse_value(config, variant, text), actor)
    if row.action == "clear-value":
        return clear_value_in(session, flag, arguments[0], actor)
    if row.action == "rollout":
        return set_weights_in(session, flag, parse_weights(config, arguments), actor)
    if row.action == "clear-rollout":
        return clear_weights_in(session, flag, actor)
    if row.action == "target":
        check_variant(config, flag, arguments[1])
        return target_in(session, flag, arguments[0], arguments[1], actor)
    return untarget_in(session, flag, arguments[0], actor)


def apply_due_changes(engine: Engine, now: datetime, config_map: Mapping[str, Any]) -> int:
    """Apply every pending change due by `now` that no other process has claimed; return how many.

    One transaction per change: the conditional UPDATE claims the row (only one process can move it from
    pending), the change and its audit entry are written, and the version counter moves so every process
    reloads. A change that no longer fits (its flag or variant is gone) is marked failed and audited too.
    """
    with Session(engine) as session:
        due = session.scalars(
            select(ScheduleRow.id)
            .where(ScheduleRow.state == "pending", ScheduleRow.due_at <= now)
            .order_by(ScheduleRow.due_at, ScheduleRow.id)
        ).all()
    applied = 0
    for schedule_id in due:
        with Session(engine) as session:
            session.execute(
                update(VersionRow).where(VersionRow.id == 1).values(version=VersionRow.version + 1)
            )
            claimed = session.execute(
                update(ScheduleRow)
                .where(ScheduleRow.id == schedule_id, ScheduleRow.state == "pending")
                .values(state="applied", done_at=now)
            )
            if claimed.rowcount != 1:
                session.rollback()  # another process got there first
                continue
            row = session.get(ScheduleRow, schedule_id)
            assert row is not None
            actor = f"{SCHEDULE_ACTOR}{row.id} (set by {row.created_by})"
            try:
                with session.begin_nested():
                    entry = _apply(session, row, actor, config_map)
                row.outcome = (entry.summary if entry else "nothing to change")[:LABEL_LENGTH]
            except (OverrideError, IndexError) as exc:
                row.state, row.outcome = "failed", str(exc)[:LABEL_LENGTH]
                what = f"{row.action} {row.argument}".strip()[:100]
                record(session, actor, row.flag, "schedule_failed", f"#{row.id}", what, None)
            session.commit()
            applied += 1
    return applied


def _scheduled(row: ScheduleRow) -> ScheduledChange:
    return ScheduledChange(
        id=row.id,
        flag=row.flag,
        due_at=as_utc(row.due_at),
        action=row.action,
        argument=row.argument,
        created_by=row.created_by,
        state=row.state,
        outcome=row.outcome,
    )


# --- `flask gk rollout | group | target | untarget | schedule` ----------------------------------------------
