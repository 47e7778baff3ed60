"""The audit log: every change, who made it, when, before and after, and why; and its words for people."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from .errors import OverrideError
from .snapshot import as_utc
from .tables import LABEL_LENGTH, REASON_LENGTH, AuditRow


@dataclass(frozen=True)
class AuditEntry:
    """One change: who made it, when (UTC), to which flag, what it was before and after."""

    id: int
    at: datetime
    actor: str
    flag: str
    action: str  # "force", "unforce", "user_override", "clear_user_override", or one of TARGETING_WHAT
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
            **{action: what.format(target=self.target) for action, what in TARGETING_WHAT.items()},
        }.get(self.action, f"{self.action} for {self.target}")

    @property
    def changes(self) -> list[tuple[str, str | None, str | None]]:
        """What moved, part by part, for a before and after made of parts: weights (`ON=10 OFF=90`) or a
        JSON object value: [(part, before, after)] for each part that differs; [] for anything else."""
        before, after = _parts(self.before), _parts(self.after)
        if before is None or after is None:
            return []
        keys = [*before, *(key for key in after if key not in before)]
        return [(key, before.get(key), after.get(key)) for key in keys if before.get(key) != after.get(key)]

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
        if self.action in TARGETING_SUMMARY:
            return TARGETING_SUMMARY[self.action].format(entry=self, was=was)
        return f"{self.flag}: override for {self.target} removed{was}."


# Runtime targeting's audit actions (targeting.py, schedules.py): the audit table's words, then the sentence.
TARGETING_WHAT = {
    "rollout": "rollout weights set",
    "clear_rollout": "rollout weights back to code",
    "target": "{target} targeted",
    "untarget": "{target} no longer targeted",
    "create_group": "group {target} created",
    "describe_group": "group {target} described",
    "delete_group": "group {target} deleted",
    "add_members": "added to group {target}",
    "remove_members": "removed from group {target}",
    "off": "switched off",
    "on": "switched on",
    "value": "value of {target} set",
    "clear_value": "value of {target} back to code",
    "schedule": "change scheduled {target}",
    "cancel_schedule": "scheduled change {target} cancelled",
    "schedule_failed": "scheduled change {target} could not be made",
    "add_webhook": "{target} added",
    "remove_webhook": "{target} removed",
    "release": "release {target}",
    "release_template": "release template {target} saved",
    "require": "requires {target}",
    "unrequire": "no longer requires {target}",
    "create_segment": "segment {target} created",
    "add_condition": "condition added to segment {target}",
    "remove_condition": "condition removed from segment {target}",
    "delete_segment": "segment {target} deleted",
}
TARGETING_SUMMARY = {
    "rollout": "{entry.flag}: rolls out {entry.after} now{was}.",
    "clear_rollout": "{entry.flag}: back to the weights in code{was}.",
    "target": "{entry.flag}: {entry.target} now gets {entry.after}{was}.",
    "untarget": "{entry.flag}: {entry.target} no longer targeted{was}.",
    "create_group": "Group {entry.target} created.",
    "describe_group": "Group {entry.target} described.",
    "delete_group": "Group {entry.target} deleted.",
    "add_members": "Group {entry.target}: added {entry.after}.",
    "remove_members": "Group {entry.target}: removed {entry.before}.",
    "off": "{entry.flag}: switched off; everyone gets its default.",
    "on": "{entry.flag}: switched on again; everyone gets their own variant.",
    "value": "{entry.flag}: {entry.target} now carries {entry.after}{was}.",
    "clear_value": "{entry.flag}: {entry.target} carries the value in code again{was}.",
    "schedule": "{entry.flag}: {entry.after} scheduled {entry.target}.",
    "cancel_schedule": "{entry.flag}: scheduled change {entry.target} ({entry.before}) cancelled.",
    "schedule_failed": "{entry.flag}: scheduled change {entry.target} ({entry.after}) could not be made.",
    "add_webhook": "{entry.target} added: it gets every change from now on.",
    "remove_webhook": "{entry.target} removed.",
    "release": "{entry.flag}: release {entry.target} {entry.after}.",
    "release_template": "Release template {entry.target} saved: {entry.after}.",
}


def _parts(text: str | None) -> dict[str, str] | None:
    """`ON=10 OFF=90` (weights; the code's too) or a JSON object as {part: its text}; None otherwise."""
    if not text:
        return None
    text = text.removeprefix("in code: ")
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except ValueError:
            return None
        return (
            {str(k): json.dumps(v, ensure_ascii=False) for k, v in value.items()}
            if isinstance(value, dict)
            else None
        )
    pairs = [part.partition("=") for part in text.split()]
    if not pairs or any(not sign or not name for name, sign, _value in pairs):
        return None
    return {name: value for name, _sign, value in pairs}


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


def entry_from_row(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=as_utc(row.at),
        actor=row.actor,
        flag=row.flag,
        action=row.action,
        target=row.target,
        before=row.before,
        after=row.after,
        reason=row.reason,
        user_id=row.user_id,
    )


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


def record(
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
    row = AuditRow(
        at=datetime.now(UTC),
        actor=actor[:LABEL_LENGTH],
        flag=flag,
        action=action,
        target=target[:LABEL_LENGTH],
        before=before,
        after=after,
        reason=reason,
        user_id=user_id,
    )
    session.add(row)
    session.flush()
    entry = entry_from_row(row)
    for write in ON_RECORD:
        write(session, entry)
    return entry


# Writers that every audited change calls in its own transaction, so that what they write commits or rolls
# back with the change: webhooks.py's outbox. Modules above register at import (one audit entry, one call).
ON_RECORD: list[Callable[[Session, AuditEntry], None]] = []


UNDOABLE_ACTIONS = ("force", "unforce", "user_override", "clear_user_override", "off", "on")

# Every kind of change, in the audit log's "What" filter: (action, its name), grouped by what it changes.
ACTION_NAMES: dict[str, dict[str, str]] = {
    "On/off and forcing": {
        "off": "switched off",
        "on": "switched on",
        "force": "forced for everyone",
        "unforce": "stopped forcing",
    },
    "Users": {"user_override": "user override set", "clear_user_override": "user override removed"},
    "Rollout and targets": {
        "rollout": "rollout weights set",
        "clear_rollout": "rollout weights back to code",
        "target": "group or segment targeted",
        "untarget": "target removed",
        "require": "prerequisite set",
        "unrequire": "prerequisite removed",
    },
    "Values": {"value": "value set", "clear_value": "value back to code"},
    "Groups": {
        "create_group": "group created",
        "describe_group": "group described",
        "add_members": "members added",
        "remove_members": "members removed",
        "delete_group": "group deleted",
    },
    "Segments": {
        "create_segment": "segment created",
        "add_condition": "condition added",
        "remove_condition": "condition removed",
        "delete_segment": "segment deleted",
    },
    "Schedules": {
        "schedule": "change scheduled",
        "cancel_schedule": "scheduled change cancelled",
        "schedule_failed": "scheduled change failed",
    },
}
# Who made a change: a schedule's own actor starts with this ("schedule #12 (set by ada@example.com)").
SCHEDULE_ACTOR = "schedule #"


def is_schedule_actor(actor: str) -> bool:
    """Whether `actor` is a scheduled change (made by the timer for whoever set it), not a person."""
    return actor.startswith(SCHEDULE_ACTOR)
