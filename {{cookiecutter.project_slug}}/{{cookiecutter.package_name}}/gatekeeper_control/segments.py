"""Segments: named sets of conditions on context attributes ("email ends with @example.com and plan is
pro"), created and edited at runtime, that flags target like groups (`flask gk target FLAG SEGMENT VARIANT`).

A segment is a third kind of group beside stored lists and code groups, sharing their names: the engine
asks it in the same evaluation step (`group_target`), in the order the targets were added. Each condition
is checked when it is saved (conditions.py says what each operator takes), written and audited through
`store._write`, and compiled into the snapshot, so a flag check matches a context against compiled
predicates and never queries. A target naming a segment that no longer exists is stale (targeting.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import user_lookup
from .audit import TARGETING_SUMMARY, TARGETING_WHAT, AuditEntry, clean_reason, record
from .checks import quote
from .conditions import Condition, ConditionError, check_condition, parse_condition_value
from .engine import gatekeeper
from .errors import UnknownGroupError
from .snapshot import Snapshot
from .store import store
from .tables import LABEL_LENGTH, ConditionRow, GroupRow, SegmentRow
from .targeting import _GROUP_NAME, code_groups

# A segment's conditions are few and readable; past this, a segment is asking to be split.
MAX_CONDITIONS = 20

TARGETING_WHAT.update(
    {
        "create_segment": "segment {target} created",
        "add_condition": "condition added to segment {target}",
        "remove_condition": "condition removed from segment {target}",
        "delete_segment": "segment {target} deleted",
    }
)
TARGETING_SUMMARY.update(
    {
        "create_segment": "Segment {entry.target} created.",
        "add_condition": "Segment {entry.target}: added {entry.after}.",
        "remove_condition": "Segment {entry.target}: removed {entry.before}.",
        "delete_segment": "Segment {entry.target} deleted.",
    }
)


class Segments:
    """Segments for the current app (`segments`, below); every write goes through the store."""

    def create(
        self, name: str, description: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Create an empty segment NAME (it matches nobody until it has a condition)."""
        reason = clean_reason(reason)
        name = (name or "").strip()
        if not _GROUP_NAME.fullmatch(name):
            raise ConditionError(
                f"{quote(name)} cannot name a segment: use letters, digits, '.', '_' or '-' (up to 64)."
            )
        if name in code_groups():
            raise ConditionError(f"{name} is a group defined in code: choose another name.")
        description = " ".join((description or "").split())[:LABEL_LENGTH]

        def change(session: Session) -> AuditEntry | None:
            if session.get(SegmentRow, name) is not None:
                return None
            if session.get(GroupRow, name) is not None:
                raise ConditionError(f"{name} is a stored group: choose another name for the segment.")
            session.add(
                SegmentRow(
                    name=name, description=description, created_by=actor[:LABEL_LENGTH], created_at=_now()
                )
            )
            return record(
                session, actor, "", "create_segment", name, None, description or None, reason=reason
            )

        return store._write(change)

    def add_condition(
        self,
        name: str,
        attribute: str,
        operator: str,
        value: Any,
        actor: str,
        *,
        reason: str | None = None,
    ) -> AuditEntry | None:
        """Add ATTRIBUTE OPERATOR VALUE to segment NAME; `value` as typed (see `parse_condition_value`)
        or already a JSON value. ConditionError, naming what is wrong, writes nothing."""
        reason = clean_reason(reason)
        if isinstance(value, str) or value is None:
            value = parse_condition_value(operator, value)
        condition = check_condition(Condition((attribute or "").strip(), (operator or "").strip(), value))

        def change(session: Session) -> AuditEntry | None:
            _existing(session, name)
            count = session.scalar(select(func.count()).where(ConditionRow.segment == name)) or 0
            if count >= MAX_CONDITIONS:
                raise ConditionError(f"Segment {name} has {count} conditions already; split it.")
            stored = None if condition.value is None else json.dumps(condition.value, ensure_ascii=False)
            session.add(
                ConditionRow(
                    segment=name, attribute=condition.attribute, operator=condition.operator, value=stored
                )
            )
            return record(session, actor, "", "add_condition", name, None, str(condition), reason=reason)

        return store._write(change)

    def remove_condition(
        self, name: str, number: int, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Remove the NUMBER-th condition (from 1, as listed) of segment NAME."""
        reason = clean_reason(reason)

        def change(session: Session) -> AuditEntry | None:
            _existing(session, name)
            rows = session.scalars(
                select(ConditionRow).where(ConditionRow.segment == name).order_by(ConditionRow.id)
            ).all()
            if not 1 <= number <= len(rows):
                raise ConditionError(f"Segment {name} has no condition #{number} (it has {len(rows)}).")
            row = rows[number - 1]
            session.delete(row)
            value = json.loads(row.value) if row.value is not None else None
            what = str(Condition(row.attribute, row.operator, value))
            return record(session, actor, "", "remove_condition", name, what, None, reason=reason)

        return store._write(change)

    def delete(self, name: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Delete segment NAME and its conditions; flags that target it show the target as stale."""
        reason = clean_reason(reason)

        def change(session: Session) -> AuditEntry | None:
            row = session.get(SegmentRow, name)
            if row is None:
                return None
            for condition in session.scalars(select(ConditionRow).where(ConditionRow.segment == name)):
                session.delete(condition)
            session.delete(row)
            return record(session, actor, "", "delete_segment", name, None, None, reason=reason)

        return store._write(change)

    def context_of(self, user_text: str) -> tuple[Any, dict[str, Any]]:
        """The user an email or id names, and their evaluation context (the context loader's attributes)."""
        user = user_lookup.find_user(user_text)
        if user is None:
            raise UnknownGroupError(f"No user matches {quote(user_text.strip())}.")
        user_id = int(user.id) if str(user.id).isdigit() else user.id
        return user, dict(gatekeeper.Gatekeeper(user_id=user_id).context)

    def matching(self, context: dict[str, Any], snapshot: Snapshot) -> list[str]:
        """The segments `context` matches, by name."""
        return sorted(name for name, segment in snapshot.segments.items() if segment.matches(context))


segments = Segments()


def _existing(session: Session, name: str) -> SegmentRow:
    row = session.get(SegmentRow, name)
    if row is None:
        raise UnknownGroupError(f"No segment {quote(name)}: create it with `flask gk segment create {name}`.")
    return row


def _now() -> datetime:
    return datetime.now(UTC)
