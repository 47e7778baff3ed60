"""Undo for the changes of runtime targeting (groups and their members too), prerequisites, segments and
schedules (the store undoes its own, and values.py its values): how to tell what is in place now, and the
write that puts `before` back.

Each kind registers an `UndoKind` in the store's `UNDO_KINDS`, so `store.undo(entry_id, ...)` treats every
kind alike: it refuses when what the change set is no longer in place (a conflict: undoing would silently
revert a later change), and otherwise makes one new audited write through the store's one write path,
whose reason says "undo of change #N". Nothing is half-written: each restore is one transaction.
"""

from __future__ import annotations

import json

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from .audit import AuditEntry, record
from .conditions import Condition, condition_from_words
from .errors import OverrideError
from .prerequisites import prerequisites
from .schedules import scheduler
from .segments import segments
from .snapshot import Snapshot, as_utc
from .store import current_state, store
from .tables import LABEL_LENGTH, AuditRow, ConditionRow, ScheduleRow
from .targeting import CODE_WEIGHTS, format_weights, targeting
from .undo_rules import UNDO_KINDS, UndoKind

# Actions whose undo asks for the confirmation box the flag page asks for the same change: undoing a force
# forces or unforces, undoing an unforce forces, undoing "on" switches the flag off (switching on asks none).
CONFIRMED_UNDO = ("force", "unforce", "on")


def _weights_now(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    weights = snapshot.weights.get(entry.flag)
    return format_weights(weights)[:100] if weights else None


def _restore_weights(entry: AuditEntry, actor: str, reason: str) -> AuditEntry | None:
    if entry.before is None or entry.before.startswith(CODE_WEIGHTS):
        return targeting.clear_weights(entry.flag, actor, reason=reason)
    return targeting.set_weights(entry.flag, entry.before.split(), actor, reason=reason)


def _group(entry: AuditEntry) -> str:
    return entry.target.removeprefix("group ")


def _target_now(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    return dict(snapshot.group_targets.get(entry.flag, ())).get(_group(entry))


def _restore_target(entry: AuditEntry, actor: str, reason: str) -> AuditEntry | None:
    if entry.before is None:
        return targeting.untarget(entry.flag, _group(entry), actor, reason=reason)
    return targeting.target(entry.flag, _group(entry), entry.before, actor, reason=reason)


def _required_now(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    return dict(snapshot.prerequisites.get(entry.flag, ())).get(entry.target)


def _restore_required(entry: AuditEntry, actor: str, reason: str) -> AuditEntry | None:
    if entry.before is None:
        return prerequisites.unrequire(entry.flag, entry.target, actor, reason=reason)
    return prerequisites.require(entry.flag, entry.target, entry.before, actor, reason=reason)


def _description_now(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    description = snapshot.groups.get(entry.target)
    return description[:100] or None if description is not None else None


def _restore_description(entry: AuditEntry, actor: str, reason: str) -> AuditEntry | None:
    if entry.before is not None and len(entry.before) >= 100:
        raise OverrideError(
            f"Change #{entry.id} cannot be undone: the old description was cut to 100 characters in the "
            "log; describe the group again instead. Nothing was changed."
        )
    return targeting.describe_group(entry.target, entry.before or "", actor, reason=reason)


def _group_now(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    """A creation is in place while the group exists; a deletion, while it does not."""
    if entry.action == "create_group":
        return entry.after if entry.target in snapshot.groups else "deleted"
    return "created again" if entry.target in snapshot.groups else None


def _restore_group(entry: AuditEntry, actor: str, reason: str) -> AuditEntry | None:
    """Undo a creation by deleting the group (refused while it has members or targets: undo or remove those
    first); undo a deletion by creating it again with the description the log kept."""
    if entry.action == "create_group":
        return targeting.delete_group(entry.target, actor, reason=reason)
    return targeting.create_group(entry.target, entry.before or "", actor, reason=reason)


def _member_labels(entry: AuditEntry) -> list[str] | None:
    """The members an add or a removal named, as the log keeps them (labels, e.g. emails); None when the
    log cut the list short ("...")."""
    text = (entry.after if entry.action == "add_members" else entry.before) or ""
    if text.endswith("..."):
        return None
    return [label for label in text.split(", ") if label]


def _members_now(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    """An add is still in place while every member it added is in the group; a removal, while none is.
    A list the log cut short is never in place: who else it named is not known."""
    labels = _member_labels(entry)
    if labels is None:
        return "not known"
    present = set(snapshot.group_members.get(entry.target, {}).values())
    if entry.action == "add_members":
        return entry.after if present.issuperset(labels) else "other members"
    return None if present.isdisjoint(labels) else "other members"


def _members_named(entry: AuditEntry) -> str:
    cut = " (the log kept only the first it named)" if _member_labels(entry) is None else ""
    return f"the members of group {entry.target}{cut}"


def _restore_members(entry: AuditEntry, actor: str, reason: str) -> AuditEntry | None:
    labels = _member_labels(entry) or []  # a cut list never gets here: `_members_now` refused it
    if entry.action == "add_members":
        return targeting.remove_members(entry.target, labels, actor, reason=reason)
    return targeting.add_members(entry.target, labels, actor, reason=reason)


def _schedule_id(entry: AuditEntry) -> int | None:
    number = entry.target.removeprefix("#").split(" ", 1)[0]
    return int(number) if number.isdigit() else None


def _schedule_now(entry: AuditEntry, _snapshot: Snapshot) -> str | None:
    """What a schedule entry set is still in place while the change is pending (scheduled) or still
    cancelled (a cancellation)."""
    schedule_id = _schedule_id(entry)
    with store._reading() as session:
        row = session.get(ScheduleRow, schedule_id) if schedule_id is not None else None
        state = row.state if row is not None else None
    if entry.action == "schedule":
        return entry.after if state == "pending" else f"{state}"
    return None if state == "cancelled" else f"{state}"


def _restore_schedule(entry: AuditEntry, actor: str, reason: str) -> AuditEntry | None:
    schedule_id = _schedule_id(entry)
    assert schedule_id is not None
    if entry.action == "schedule":
        return scheduler.cancel(schedule_id, actor, flag=entry.flag, reason=reason)

    def change(session: Session) -> AuditEntry | None:
        row = session.get(ScheduleRow, schedule_id)
        if row is None or row.state != "cancelled":
            return None
        if as_utc(row.due_at) <= current_state().now():
            raise OverrideError(
                f"Change #{entry.id} cannot be undone: scheduled change #{schedule_id} was due at "
                f"{as_utc(row.due_at):%Y-%m-%d %H:%M} UTC, which has passed; schedule it again. Nothing "
                "was changed."
            )
        row.state, row.done_at, row.outcome = "pending", None, None
        what = f"{row.action} {row.argument}".strip()[:100]
        target = f"#{row.id} at {as_utc(row.due_at):%Y-%m-%d %H:%M:%S} UTC"
        return record(session, actor[:LABEL_LENGTH], row.flag, "schedule", target, None, what, reason=reason)

    return store._write(change)


def _conditions(name: str) -> list[str]:
    """Segment `name`'s conditions as the log words them, in their order (1 is the first)."""
    query = select(ConditionRow).where(ConditionRow.segment == name).order_by(ConditionRow.id)
    with store._reading() as session:
        rows = session.scalars(query).all()
    return [
        str(Condition(row.attribute, row.operator, json.loads(row.value) if row.value is not None else None))
        for row in rows
    ]


def _segment_now(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    """A created segment is still in place while it exists; an added condition, while the segment has it;
    a removed one, while the segment exists without it."""
    if entry.action == "create_segment" or entry.target not in snapshot.segments:
        return entry.after if entry.target in snapshot.segments else "deleted"
    return entry.after if entry.after in _conditions(entry.target) else None


def _restore_segment(entry: AuditEntry, actor: str, reason: str) -> AuditEntry | None:
    if entry.action == "create_segment":
        return segments.delete(entry.target, actor, reason=reason)
    if entry.action == "remove_condition":  # add it again: a segment's conditions all hold, in any order
        condition = condition_from_words(entry.before or "")
        if condition is None:
            raise OverrideError(
                f"Change #{entry.id} cannot be undone: the log's words {entry.before!r} are not a condition "
                "this version can read; add it again by hand. Nothing was changed."
            )
        # A text value goes as JSON, so that add_condition reads it back as text ("42" stays a string).
        value = json.dumps(condition.value) if isinstance(condition.value, str) else condition.value
        return segments.add_condition(
            entry.target, condition.attribute, condition.operator, value, actor, reason=reason
        )
    number = len(_conditions(entry.target)) - _conditions(entry.target)[::-1].index(entry.after or "")
    return segments.remove_condition(entry.target, number, actor, reason=reason)


def _same_target(entry: AuditEntry) -> ColumnElement[bool]:
    return AuditRow.target == entry.target


def _same_schedule(entry: AuditEntry) -> ColumnElement[bool]:
    number = f"#{_schedule_id(entry)}"
    return AuditRow.target.startswith(f"{number} ") | (AuditRow.target == number)


_KINDS = [
    UndoKind(
        ("rollout", "clear_rollout"),
        lambda entry: AuditRow.id > 0,  # any later weights of the same flag
        _weights_now,
        _restore_weights,
        lambda entry: "the rollout",
    ),
    UndoKind(
        ("target", "untarget"),
        _same_target,
        _target_now,
        _restore_target,
        lambda entry: f"the target of {entry.target}",
    ),
    UndoKind(
        ("require", "unrequire"),
        _same_target,
        _required_now,
        _restore_required,
        lambda entry: f"the prerequisite on {entry.target}",
    ),
    UndoKind(
        ("add_members", "remove_members"),
        _same_target,
        _members_now,
        _restore_members,
        _members_named,
    ),
    UndoKind(
        ("create_group", "delete_group"),
        _same_target,
        _group_now,
        _restore_group,
        lambda entry: f"group {entry.target}",
    ),
    UndoKind(
        ("describe_group",),
        _same_target,
        _description_now,
        _restore_description,
        lambda entry: f"the description of group {entry.target}",
    ),
    UndoKind(
        ("create_segment", "add_condition", "remove_condition", "delete_segment"),
        _same_target,
        _segment_now,
        _restore_segment,
        lambda entry: f"segment {entry.target}",
    ),
    UndoKind(
        ("schedule", "cancel_schedule"),
        _same_schedule,
        _schedule_now,
        _restore_schedule,
        lambda entry: f"scheduled change {entry.target.split(' ', 1)[0]}",
    ),
]
for _kind in _KINDS:
    # A deleted segment is not put back: the log does not keep its conditions.
    UNDO_KINDS.update({action: _kind for action in _kind.actions if action != "delete_segment"})
