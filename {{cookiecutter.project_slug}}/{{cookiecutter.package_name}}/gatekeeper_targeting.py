"""Runtime targeting in the store: rollout weights, groups, group targets and scheduled changes.

The other half of `gatekeeper_store.py` (copy both): its tables live in the store's metadata, every change
is validated first and then written and audited in one transaction through the store, and everything a
flag check needs is loaded into the store's `Snapshot` (`read_targeting`), so a check stays dict lookups.

Scheduled changes are rows with a due time. The snapshot carries the first due time; whichever process
first notices it has passed (on a snapshot refresh, never inside a flag check) claims each due row with a
conditional UPDATE and applies it in the same transaction, so it happens once however many processes race,
on SQLite (one writer at a time) and on PostgreSQL (the row lock makes the second UPDATE match nothing).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

import click
from flask import current_app, has_app_context
from flask.cli import AppGroup
from sqlalchemy import DateTime, Engine, Index, Integer, String, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import gatekeeper
from . import gatekeeper_store as _store
from .gatekeeper_store import (
    _LABEL_LENGTH,
    _NAME_LENGTH,
    _USER_ID_LENGTH,
    CLI_ACTOR,
    AuditEntry,
    OverrideError,
    Snapshot,
    StoreError,
    UnknownUserError,
    _as_utc,
    _audit,
    _Base,
    _check_flag,
    _check_variant,
    _force,
    _quote,
    _storable,
    _unforce,
    _VersionRow,
    clean_reason,
    store,
)

_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_OFFSET = re.compile(r"\+(\d{1,6})([smhd])")
_OFFSET_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
SCHEDULE_ACTIONS = ("force", "unforce", "rollout", "clear-rollout", "target", "untarget")


class WeightsError(OverrideError):
    """Weights that do not name the flag's variants or do not add up to 100; nothing was written."""


class UnknownGroupError(OverrideError):
    pass


class ScheduleError(OverrideError):
    """A scheduled change that cannot be made (bad time or action); nothing was written."""


# --- Tables -------------------------------------------------------------------------------------------------


class _WeightRow(_Base):
    """One variant's share of a flag's rollout, in hundredths of a percent (exact, and they add to 10,000)."""

    __tablename__ = "gatekeeper_rollout_weights"

    flag: Mapped[str] = mapped_column(String(_NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(_NAME_LENGTH), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)  # the order of the ranges (see rollout_order)
    basis_points: Mapped[int] = mapped_column(Integer)
    set_by: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _GroupRow(_Base):
    __tablename__ = "gatekeeper_groups"

    name: Mapped[str] = mapped_column(String(_NAME_LENGTH), primary_key=True)
    description: Mapped[str] = mapped_column(String(_LABEL_LENGTH), default="")
    created_by: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _MemberRow(_Base):
    __tablename__ = "gatekeeper_group_members"

    group: Mapped[str] = mapped_column(String(_NAME_LENGTH), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(_USER_ID_LENGTH), primary_key=True)
    user_label: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    added_by: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _TargetRow(_Base):
    """Flag FLAG serves VARIANT to the members of GROUP; a user in two targeted groups gets the older."""

    __tablename__ = "gatekeeper_group_targets"

    flag: Mapped[str] = mapped_column(String(_NAME_LENGTH), primary_key=True)
    group: Mapped[str] = mapped_column(String(_NAME_LENGTH), primary_key=True)
    variant: Mapped[str] = mapped_column(String(_NAME_LENGTH))
    set_by: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class _ScheduleRow(_Base):
    __tablename__ = "gatekeeper_schedules"
    __table_args__ = (Index("ix_gatekeeper_schedules_state_due_at", "state", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flag: Mapped[str] = mapped_column(String(_NAME_LENGTH))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    action: Mapped[str] = mapped_column(String(32))
    argument: Mapped[str] = mapped_column(String(_LABEL_LENGTH), default="")
    created_by: Mapped[str] = mapped_column(String(_LABEL_LENGTH))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending, applied, failed, cancelled
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(_LABEL_LENGTH))


TABLES = tuple(model.__tablename__ for model in (_WeightRow, _GroupRow, _MemberRow, _TargetRow, _ScheduleRow))


# --- What it hands out --------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class StaleTarget:
    """Stored targeting the engine ignores: its flag, variant or group is gone."""

    flag: str
    kind: str  # "weights" or "target"
    name: str  # the group, or "" for weights
    reason: str


def read_targeting(session: Session) -> dict[str, Any]:
    """The Snapshot fields for runtime targeting, with per-user membership sets precomputed."""
    weights: dict[str, dict[str, float]] = {}
    weights_set: dict[str, tuple[str, datetime]] = {}
    rows = select(_WeightRow).order_by(_WeightRow.flag, _WeightRow.position)
    for row in session.scalars(rows):
        points = row.basis_points
        weights.setdefault(row.flag, {})[row.variant] = points // 100 if points % 100 == 0 else points / 100
        weights_set[row.flag] = (row.set_by, _as_utc(row.set_at))
    groups = dict(session.execute(select(_GroupRow.name, _GroupRow.description)).all())
    members: dict[str, dict[str, str]] = {name: {} for name in groups}
    by_user: dict[str, set[str]] = {}
    for group, user_id, label in session.execute(
        select(_MemberRow.group, _MemberRow.user_id, _MemberRow.user_label)
    ):
        members.setdefault(group, {})[user_id] = label
        by_user.setdefault(user_id, set()).add(group)
    targets: dict[str, list[tuple[str, str]]] = {}
    rows = select(_TargetRow.flag, _TargetRow.group, _TargetRow.variant).order_by(
        _TargetRow.set_at, _TargetRow.group
    )
    for flag, group, variant in session.execute(rows):
        targets.setdefault(flag, []).append((group, variant))
    next_due = session.scalar(select(func.min(_ScheduleRow.due_at)).where(_ScheduleRow.state == "pending"))
    return {
        "weights": MappingProxyType({flag: MappingProxyType(w) for flag, w in weights.items()}),
        "weights_set": MappingProxyType(weights_set),
        "groups": MappingProxyType(groups),
        "group_members": MappingProxyType({g: MappingProxyType(m) for g, m in members.items()}),
        "memberships": MappingProxyType({user: frozenset(gs) for user, gs in by_user.items()}),
        "group_targets": MappingProxyType({flag: tuple(t) for flag, t in targets.items()}),
        "next_due": _as_utc(next_due) if next_due is not None else None,
    }


# --- Validation ---------------------------------------------------------------------------------------------


def parse_weights(config: Any, items: Any) -> dict[str, int]:
    """`["ON=10", "OFF=90"]` (or a mapping) as {variant: hundredths of a percent} in range order.

    Raises WeightsError, saying what is wrong, unless every name is a variant and the weights add up to 100.
    """
    pairs = list(items.items()) if isinstance(items, Mapping) else [_split_weight(item) for item in items]
    flag, variants = config.FLAG_NAME, config.get_variants()
    if not pairs:
        raise WeightsError(f"{flag}: give weights like {variants[0]}=10; nothing changed.")
    points: dict[str, int] = {}
    for name, value in pairs:
        if name not in variants:
            raise WeightsError(f"{flag} has no variant {_quote(name)}: use {', '.join(variants)}.")
        if name in points:
            raise WeightsError(f"{flag}: {name} is given twice; nothing changed.")
        try:
            percent = Decimal(str(value).strip())
        except InvalidOperation:
            raise WeightsError(f"{flag}: {_quote(str(value))} is not a percentage for {name}.") from None
        hundredths = percent * 100
        if not percent.is_finite() or percent < 0 or percent > 100 or hundredths != int(hundredths):
            raise WeightsError(
                f"{flag}: {name}={_quote(str(value))} must be a percentage, 0 to 100, at most 2 decimals."
            )
        points[name] = int(hundredths)
    total = sum(points.values())
    if total != 10_000:
        raise WeightsError(
            f"{flag}: the weights add up to {Decimal(total) / 100:f}, not 100; nothing changed."
        )
    return {name: points[name] for name in config.rollout_order(points)}


def _split_weight(item: str) -> tuple[str, str]:
    name, sign, value = str(item).partition("=")
    if not sign:
        raise WeightsError(f"{_quote(str(item))} is not VARIANT=PERCENT (e.g. ON=10); nothing changed.")
    return name.strip(), value.strip()


def format_weights(weights: Mapping[str, Any]) -> str:
    return " ".join(f"{variant}={percent}" for variant, percent in weights.items())


def _as_percentages(points: Mapping[str, int]) -> dict[str, Any]:
    return {name: p // 100 if p % 100 == 0 else p / 100 for name, p in points.items()}


def code_weights(config: Any) -> dict[str, float] | None:
    """The weights in code (`ROLLOUT`), in range order; None when the flag declares none."""
    rollout = getattr(config, "ROLLOUT", None)
    return dict(rollout) if rollout else None


def arm_moves(config: Any, snapshot: Snapshot, new_points: Mapping[str, int]) -> dict[str, float]:
    """Percent of units per variant a change to `new_points` moves away without shrinking it (see engine)."""
    current = snapshot.weights.get(config.FLAG_NAME) or code_weights(config)
    if not current:
        return {}
    return gatekeeper.rollout_moves(current, _as_percentages(new_points))


def _check_group_name(name: str) -> str:
    name = (name or "").strip()
    if not _GROUP_NAME.fullmatch(name):
        raise OverrideError(
            f"{_quote(name)} is not a group name: use letters, digits, '.', '_' or '-' (up to 64)."
        )
    return name


def _code_groups() -> Mapping[str, gatekeeper.CodeGroup]:
    return gatekeeper.get_state(current_app).groups


def _check_group_exists(name: str) -> None:
    if name in _code_groups() or name in store.snapshot(max_age=0).groups:
        return
    raise UnknownGroupError(f"No group {_quote(name)}: create it with `flask gk group create {name}`.")


def parse_when(text: str, now: datetime) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or an offset like +30m, +2h, +1d; must be future."""
    text = (text or "").strip()
    offset = _OFFSET.fullmatch(text)
    if offset:
        due = now + timedelta(**{_OFFSET_UNITS[offset.group(2)]: int(offset.group(1))})
    else:
        try:
            due = datetime.fromisoformat(text)
        except ValueError:
            raise ScheduleError(
                f"{_quote(text)} is not a time: use ISO 8601 (2030-01-31T09:00Z) or +30m, +2h, +1d."
            ) from None
        due = due.replace(tzinfo=UTC) if due.tzinfo is None else due.astimezone(UTC)
    if due <= now:
        raise ScheduleError(f"{due:%Y-%m-%d %H:%M:%S} UTC is in the past: schedule a future time.")
    return due


# --- The operations -----------------------------------------------------------------------------------------


class TargetingStore:
    """Weights, groups, targets and schedules for the current app (`targeting`, below).

    Writes validate, then change and audit in one transaction (None: nothing to change); they raise the
    store's errors (StoreError subclasses) with a message for the admin.
    """

    # Weights ------------------------------------------------------------------------------------------------

    def set_weights(
        self, flag: str, weights: Any, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Replace the weights `self.rollout()` uses for `flag` (a mapping or ["ON=10", ...]); add to 100."""
        reason = clean_reason(reason)
        points = parse_weights(_check_flag(flag), weights)
        return store._write(lambda session: _set_weights(session, flag, points, actor, reason=reason))

    def clear_weights(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Go back to the weights in code. None if none were stored."""
        reason = clean_reason(reason)
        if not _storable(flag, _NAME_LENGTH):
            return None
        return store._write(lambda session: _clear_weights(session, flag, actor, reason=reason))

    def weights_moves(self, flag: str, weights: Any) -> dict[str, float]:
        """What saving `weights` would move between variants beyond what a ramp must (raises WeightsError)."""
        config = _check_flag(flag)
        return arm_moves(config, store.snapshot(max_age=0), parse_weights(config, weights))

    # Groups -------------------------------------------------------------------------------------------------

    def create_group(
        self, name: str, description: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        reason = clean_reason(reason)
        name, description = _check_group_name(name), (description or "").strip()[:_LABEL_LENGTH]
        if name in _code_groups():
            raise OverrideError(f"{name} is a group defined in code; choose another name.")

        def change(session: Session) -> AuditEntry | None:
            if session.get(_GroupRow, name) is not None:
                raise OverrideError(f"Group {name} already exists; nothing changed.")
            session.add(_GroupRow(name=name, description=description, created_by=actor, created_at=_now()))
            return _audit(
                session,
                actor,
                "",
                "create_group",
                name,
                None,
                description[:_NAME_LENGTH] or None,
                reason=reason,
            )

        return store._write(change)

    def describe_group(
        self, name: str, description: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        reason = clean_reason(reason)
        description = (description or "").strip()[:_LABEL_LENGTH]

        def change(session: Session) -> AuditEntry | None:
            row = _stored_group(session, name)
            if row.description == description:
                return None
            before, row.description = row.description, description
            return _audit(
                session,
                actor,
                "",
                "describe_group",
                name,
                before[:_NAME_LENGTH] or None,
                description[:100] or None,
                reason=reason,
            )

        return store._write(change)

    def add_members(
        self, name: str, users: list[str], actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Add users (emails or ids); if any is unknown, nobody is added. None if all were members."""
        reason = clean_reason(reason)
        found = self._find_users(users)

        def change(session: Session) -> AuditEntry | None:
            _stored_group(session, name)
            added = []
            for ref in found:
                if session.get(_MemberRow, (name, ref.id)) is None:
                    session.add(
                        _MemberRow(
                            group=name, user_id=ref.id, user_label=ref.label, added_by=actor, added_at=_now()
                        )
                    )
                    added.append(ref.label)
            if not added:
                return None
            return _audit(session, actor, "", "add_members", name, None, _list(added), reason=reason)

        return store._write(change)

    def remove_members(
        self, name: str, users: list[str], actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Remove users (emails or ids; a deleted user by their stored id). None if none were in."""
        reason = clean_reason(reason)
        ids = []
        for text in users:
            ref = store.find_user(text)
            ids.append(ref.id if ref is not None else (text or "").strip())

        def change(session: Session) -> AuditEntry | None:
            _stored_group(session, name)
            removed = []
            for user_id in ids:
                row = (
                    session.get(_MemberRow, (name, user_id)) if _storable(user_id, _USER_ID_LENGTH) else None
                )
                if row is not None:
                    session.delete(row)
                    removed.append(row.user_label)
            if not removed:
                return None
            return _audit(session, actor, "", "remove_members", name, _list(removed), None, reason=reason)

        return store._write(change)

    def _find_users(self, users: list[str]) -> list[_store.UserRef]:
        found, unknown = [], []
        for text in users:
            ref = store.find_user(text)
            if ref is None:
                unknown.append((text or "").strip())
            else:
                found.append(_store.UserRef(str(ref.id)[:_USER_ID_LENGTH], str(ref.label)[:_LABEL_LENGTH]))
        if unknown:
            raise UnknownUserError(
                f"No user matches {', '.join(_quote(t) for t in unknown[:5])}: enter emails or ids of "
                "existing users. Nothing was changed."
            )
        if not found:
            raise UnknownUserError("Enter at least one email or id. Nothing was changed.")
        return found

    # Targets ------------------------------------------------------------------------------------------------

    def target(
        self, flag: str, group: str, variant: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Serve `variant` of `flag` to the members of `group` (stored or in code). None if already so."""
        reason = clean_reason(reason)
        _check_variant(_check_flag(flag), flag, variant)
        _check_group_exists(group)
        return store._write(lambda session: _target(session, flag, group, variant, actor, reason=reason))

    def untarget(self, flag: str, group: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Stop targeting `group` (stale targets too). None if it was not targeted."""
        reason = clean_reason(reason)
        if not (_storable(flag, _NAME_LENGTH) and _storable(group, _NAME_LENGTH)):
            return None
        return store._write(lambda session: _untarget(session, flag, group, actor, reason=reason))

    # Schedules ----------------------------------------------------------------------------------------------

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
        due = parse_when(when, _store._state().now())
        argument = _check_scheduled_action(flag, action, arguments)

        def change(session: Session) -> AuditEntry:
            row = _ScheduleRow(
                flag=flag,
                due_at=due,
                action=action,
                argument=argument,
                created_by=actor[:_LABEL_LENGTH],
                created_at=_now(),
                state="pending",
            )
            session.add(row)
            session.flush()
            target = f"#{row.id} at {due:%Y-%m-%d %H:%M:%S} UTC"
            return _audit(
                session,
                actor,
                flag,
                "schedule",
                target,
                None,
                f"{action} {argument}".strip()[:100],
                reason=reason,
            )

        entry = store._write(change)
        assert entry is not None
        return entry

    def cancel(self, schedule_id: int, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Cancel a pending change. None if it is not pending (already applied, cancelled or unknown)."""
        reason = clean_reason(reason)

        def change(session: Session) -> AuditEntry | None:
            row = session.get(_ScheduleRow, schedule_id)
            if row is None or row.state != "pending":
                return None
            row.state, row.done_at, row.outcome = "cancelled", _now(), f"cancelled by {actor}"[:_LABEL_LENGTH]
            what = f"{row.action} {row.argument}".strip()[:100]
            return _audit(
                session, actor, row.flag, "cancel_schedule", f"#{row.id}", what, None, reason=reason
            )

        return store._write(change)

    def schedules(self, flag: str | None = None, pending_only: bool = False) -> list[ScheduledChange]:
        """Scheduled changes, pending first by due time, then the 50 most recently done. Raises StoreError."""
        query = select(_ScheduleRow)
        if flag is not None:
            query = query.where(_ScheduleRow.flag == flag)
        with store._reading() as session:
            pending = session.scalars(
                query.where(_ScheduleRow.state == "pending").order_by(_ScheduleRow.due_at, _ScheduleRow.id)
            ).all()
            done = (
                []
                if pending_only
                else session.scalars(
                    query.where(_ScheduleRow.state != "pending").order_by(_ScheduleRow.id.desc()).limit(50)
                ).all()
            )
            return [_scheduled(row) for row in [*pending, *done]]

    # Reading ------------------------------------------------------------------------------------------------

    def stale(self, snapshot: Snapshot | None = None) -> list[StaleTarget]:
        """Stored weights and targets naming a flag, variant or group that no longer exists."""
        snapshot = snapshot or store.snapshot()
        config_map, code_groups = _store._config_map(), _code_groups()
        stale = []
        for flag, weights in sorted(snapshot.weights.items()):
            config = config_map.get(flag)
            if config is None:
                stale.append(StaleTarget(flag, "weights", "", f"flag {flag} is no longer in the code"))
            elif missing := [v for v in weights if v not in config.get_variants()]:
                stale.append(StaleTarget(flag, "weights", "", f"variant {', '.join(missing)} is gone"))
        for flag, targets in sorted(snapshot.group_targets.items()):
            config = config_map.get(flag)
            for group, variant in targets:
                if config is None:
                    why = f"flag {flag} is no longer in the code"
                elif variant not in config.get_variants():
                    why = f"variant {variant} is no longer one of {', '.join(config.get_variants())}"
                elif group not in snapshot.groups and group not in code_groups:
                    why = f"group {group} no longer exists"
                else:
                    continue
                stale.append(StaleTarget(flag, "target", group, why))
        return stale


targeting = TargetingStore()


# --- Changes inside a transaction (shared by the operations above and by scheduled changes) -----------------


def _now() -> datetime:
    return datetime.now(UTC)


def _list(labels: list[str]) -> str:
    text = ", ".join(labels)
    return text if len(text) <= _NAME_LENGTH else text[: _NAME_LENGTH - 3] + "..."


def _stored_group(session: Session, name: str) -> _GroupRow:
    row = session.get(_GroupRow, name) if _storable(name or "", _NAME_LENGTH) else None
    if row is None:
        if has_app_context() and name in _code_groups():
            raise OverrideError(f"{name} is defined in code: change its members there.")
        raise UnknownGroupError(f"No group {_quote(name or '')}: create it with `flask gk group create`.")
    return row


def _set_weights(
    session: Session, flag: str, points: Mapping[str, int], actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    rows = session.scalars(select(_WeightRow).where(_WeightRow.flag == flag)).all()
    before = {row.variant: row.basis_points for row in sorted(rows, key=lambda row: row.position)}
    if before == dict(points):
        return None
    for row in rows:
        session.delete(row)
    session.flush()
    now = _now()
    for position, (variant, basis_points) in enumerate(points.items()):
        session.add(
            _WeightRow(
                flag=flag,
                variant=variant,
                position=position,
                basis_points=basis_points,
                set_by=actor[:_LABEL_LENGTH],
                set_at=now,
            )
        )
    was = format_weights(_as_percentages(before)) or None
    return _audit(
        session,
        actor,
        flag,
        "rollout",
        "everyone",
        was,
        format_weights(_as_percentages(points))[:100],
        reason=reason,
    )


def _clear_weights(
    session: Session, flag: str, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    rows = sorted(
        session.scalars(select(_WeightRow).where(_WeightRow.flag == flag)), key=lambda r: r.position
    )
    if not rows:
        return None
    before = format_weights(_as_percentages({row.variant: row.basis_points for row in rows}))
    for row in rows:
        session.delete(row)
    return _audit(session, actor, flag, "clear_rollout", "everyone", before[:100], None, reason=reason)


def _target(
    session: Session, flag: str, group: str, variant: str, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    row = session.get(_TargetRow, (flag, group))
    before = row.variant if row else None
    if before == variant:
        return None
    if row is None:
        row = _TargetRow(flag=flag, group=group, set_at=_now())
        session.add(row)
    row.variant, row.set_by = variant, actor[:_LABEL_LENGTH]
    return _audit(session, actor, flag, "target", f"group {group}", before, variant, reason=reason)


def _untarget(
    session: Session, flag: str, group: str, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    row = session.get(_TargetRow, (flag, group))
    if row is None:
        return None
    session.delete(row)
    return _audit(session, actor, flag, "untarget", f"group {group}", row.variant, None, reason=reason)


# --- Scheduled changes --------------------------------------------------------------------------------------


def _check_scheduled_action(flag: str, action: str, arguments: list[str]) -> str:
    """Validate a change as if it were made now; return its arguments as stored (one string)."""
    config = _check_flag(flag)
    arguments = [a.strip() for a in arguments if a and a.strip()]
    expected = {"force": 1, "unforce": 0, "clear-rollout": 0, "target": 2, "untarget": 1}
    if action not in SCHEDULE_ACTIONS:
        raise ScheduleError(f"{_quote(action)} is not an action: use {', '.join(SCHEDULE_ACTIONS)}.")
    if action == "rollout":
        return format_weights(_as_percentages(parse_weights(config, arguments)))
    if len(arguments) != expected[action]:
        usage = {"force": "force VARIANT", "target": "target GROUP VARIANT", "untarget": "untarget GROUP"}
        raise ScheduleError(f"Write it as `{usage.get(action, action)}`; nothing was scheduled.")
    if action == "force":
        _check_variant(config, flag, arguments[0])
    if action == "target":
        _check_group_exists(arguments[0])
        _check_variant(config, flag, arguments[1])
    return " ".join(arguments)


def _apply(
    session: Session, row: _ScheduleRow, actor: str, config_map: Mapping[str, Any]
) -> AuditEntry | None:
    """Make a due change inside the claiming transaction; raises OverrideError when it no longer fits."""
    flag, arguments = row.flag, row.argument.split()
    config = config_map.get(flag)
    if config is None:
        raise OverrideError(f"flag {flag} is no longer in the code")
    if row.action == "force":
        _check_variant(config, flag, arguments[0])
        return _force(session, flag, arguments[0], actor)
    if row.action == "unforce":
        return _unforce(session, flag, actor)
    if row.action == "rollout":
        return _set_weights(session, flag, parse_weights(config, arguments), actor)
    if row.action == "clear-rollout":
        return _clear_weights(session, flag, actor)
    if row.action == "target":
        _check_variant(config, flag, arguments[1])
        return _target(session, flag, arguments[0], arguments[1], actor)
    return _untarget(session, flag, arguments[0], actor)


def apply_due_changes(engine: Engine, now: datetime, config_map: Mapping[str, Any]) -> int:
    """Apply every pending change due by `now` that no other process has claimed; return how many.

    One transaction per change: the conditional UPDATE claims the row (only one process can move it from
    pending), the change and its audit entry are written, and the version counter moves so every process
    reloads. A change that no longer fits (its flag or variant is gone) is marked failed and audited too.
    """
    with Session(engine) as session:
        due = session.scalars(
            select(_ScheduleRow.id)
            .where(_ScheduleRow.state == "pending", _ScheduleRow.due_at <= now)
            .order_by(_ScheduleRow.due_at, _ScheduleRow.id)
        ).all()
    applied = 0
    for schedule_id in due:
        with Session(engine) as session:
            session.execute(
                update(_VersionRow).where(_VersionRow.id == 1).values(version=_VersionRow.version + 1)
            )
            claimed = session.execute(
                update(_ScheduleRow)
                .where(_ScheduleRow.id == schedule_id, _ScheduleRow.state == "pending")
                .values(state="applied", done_at=now)
            )
            if claimed.rowcount != 1:
                session.rollback()  # another process got there first
                continue
            row = session.get(_ScheduleRow, schedule_id)
            assert row is not None
            actor = f"schedule #{row.id} (by {row.created_by})"
            try:
                with session.begin_nested():
                    entry = _apply(session, row, actor, config_map)
                row.outcome = (entry.summary if entry else "nothing to change")[:_LABEL_LENGTH]
            except (OverrideError, IndexError) as exc:
                row.state, row.outcome = "failed", str(exc)[:_LABEL_LENGTH]
                what = f"{row.action} {row.argument}".strip()[:100]
                _audit(session, actor, row.flag, "schedule_failed", f"#{row.id}", what, None)
            session.commit()
            applied += 1
    return applied


def _scheduled(row: _ScheduleRow) -> ScheduledChange:
    return ScheduledChange(
        id=row.id,
        flag=row.flag,
        due_at=_as_utc(row.due_at),
        action=row.action,
        argument=row.argument,
        created_by=row.created_by,
        state=row.state,
        outcome=row.outcome,
    )


# --- `flask gk rollout | group | target | untarget | schedule` ----------------------------------------------


def _run(operation: Any, *args: Any, unchanged: str) -> None:
    try:
        entry = operation(*args, actor=CLI_ACTOR)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(entry.summary if entry else unchanged)


@gatekeeper.cli.command("rollout")
@click.argument("flag")
@click.argument("weights", nargs=-1)
@click.option("--clear", is_flag=True, help="Go back to the weights in code (ROLLOUT).")
def rollout_command(flag: str, weights: tuple[str, ...], clear: bool) -> None:
    """Set the weights FLAG's rule rolls out by: VARIANT=PERCENT ..., adding up to 100."""
    if clear:
        if weights:
            raise click.UsageError("--clear takes no weights.")
        _run(targeting.clear_weights, flag, unchanged=f"{flag} has no stored weights; nothing changed.")
        return
    try:
        moves = targeting.weights_moves(flag, list(weights))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    for variant, percent in moves.items():
        click.echo(f"Note: {percent:g}% of all units move away from {variant} (its range shifts).")
    _run(targeting.set_weights, flag, list(weights), unchanged=f"{flag} already has these weights.")


@gatekeeper.cli.command("target")
@click.argument("flag")
@click.argument("group")
@click.argument("variant")
def target_command(flag: str, group: str, variant: str) -> None:
    """Serve VARIANT of FLAG to every member of GROUP."""
    _run(
        targeting.target, flag, group, variant, unchanged=f"{group} already gets {variant}; nothing changed."
    )


@gatekeeper.cli.command("untarget")
@click.argument("flag")
@click.argument("group")
def untarget_command(flag: str, group: str) -> None:
    """Stop serving FLAG's targeted variant to GROUP."""
    _run(targeting.untarget, flag, group, unchanged=f"{flag} does not target {group}; nothing changed.")


@gatekeeper.cli.group("group")
def group_cli() -> None:
    """Named groups of users that flags can target."""


@group_cli.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the group is for.")
def group_create_command(name: str, description: str) -> None:
    """Create an empty group NAME."""
    _run(targeting.create_group, name, description, unchanged="")


@group_cli.command("describe")
@click.argument("name")
@click.argument("description")
def group_describe_command(name: str, description: str) -> None:
    """Set the description of group NAME."""
    _run(targeting.describe_group, name, description, unchanged=f"{name} already says that; nothing changed.")


@group_cli.command("add")
@click.argument("name")
@click.argument("users", nargs=-1, required=True)
def group_add_command(name: str, users: tuple[str, ...]) -> None:
    """Add USERS (emails or ids) to group NAME; if one is unknown, nobody is added."""
    _run(targeting.add_members, name, list(users), unchanged="They are all members already; nothing changed.")


@group_cli.command("remove")
@click.argument("name")
@click.argument("users", nargs=-1, required=True)
def group_remove_command(name: str, users: tuple[str, ...]) -> None:
    """Remove USERS (emails or ids) from group NAME."""
    _run(targeting.remove_members, name, list(users), unchanged="None of them is a member; nothing changed.")


@group_cli.command("list")
def group_list_command() -> None:
    """List the groups, stored and in code, with their members."""
    snapshot = store.snapshot(max_age=0)
    for name, group in sorted(_code_groups().items()):
        click.echo(f"{name}  (in code)  {group.description}".rstrip())
    for name, description in sorted(snapshot.groups.items()):
        members = snapshot.group_members.get(name, {})
        click.echo(f"{name}  {len(members)} member{'s' if len(members) != 1 else ''}  {description}".rstrip())
        for user_id, label in sorted(members.items(), key=lambda item: item[1]):
            click.echo(f"    {label} (id {user_id})")
    if not snapshot.groups and not _code_groups():
        click.echo("No groups yet: `flask gk group create NAME`.")


class _ScheduleGroup(AppGroup):
    """`flask gk schedule FLAG WHEN ACTION ...` adds; `schedule list` and `schedule cancel ID` as named."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


@gatekeeper.cli.group("schedule", cls=_ScheduleGroup)
def schedule_cli() -> None:
    """Changes at a future time: `schedule FLAG WHEN ACTION ...`, `schedule list`, `schedule cancel ID`."""


@schedule_cli.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("flag")
@click.argument("when")
@click.argument("action")
@click.argument("arguments", nargs=-1)
def schedule_add_command(flag: str, when: str, action: str, arguments: tuple[str, ...]) -> None:
    """At WHEN (ISO 8601, or +30m, +2h, +1d) do ACTION to FLAG: force VARIANT, unforce,
    rollout VARIANT=PCT..., clear-rollout, target GROUP VARIANT or untarget GROUP."""
    try:
        entry = targeting.schedule(flag, when, action, list(arguments), actor=CLI_ACTOR)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(entry.summary)


@schedule_cli.command("list")
@click.option("--flag", default=None, help="Only this flag's changes.")
def schedule_list_command(flag: str | None) -> None:
    """Pending changes by due time, then recent done ones."""
    try:
        changes = targeting.schedules(flag)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if not changes:
        click.echo("Nothing scheduled.")
    for change in changes:
        outcome = f"  ({change.outcome})" if change.outcome else ""
        click.echo(
            f"#{change.id}  {change.due_at:%Y-%m-%d %H:%M:%S} UTC  {change.flag}  {change.description}"
            f"  {change.state}  by {change.created_by}{outcome}"
        )


@schedule_cli.command("cancel")
@click.argument("schedule_id", type=int)
def schedule_cancel_command(schedule_id: int) -> None:
    """Cancel pending change ID."""
    _run(targeting.cancel, schedule_id, unchanged=f"#{schedule_id} is not pending; nothing changed.")
