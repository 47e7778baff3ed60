"""What an undo may restore, and when: the kinds of change modules above the store register (`UndoKind`,
`UNDO_KINDS`) and the check that what a change set is still in place (`undo_problem`). The store's `undo`
and the audit page ask it; undo.py and values.py register their kinds here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .audit import UNDOABLE_ACTIONS, AuditEntry
from .checks import current_config_map
from .snapshot import Snapshot


@dataclass(frozen=True)
class UndoKind:
    """How to undo the audited changes of a kind a module above the store adds (values.py's): which
    actions change the same thing, whether two entries are about the same thing, what is there now, and
    the write that puts `before` back."""

    actions: tuple[str, ...]
    same_thing: Callable[[Any], Any]  # entry -> a condition on AuditRow for "the same thing"
    now: Callable[[AuditEntry, Snapshot], str | None]
    restore: Callable[[AuditEntry, str, str], AuditEntry | None]  # (entry, actor, reason)
    # What the change set, for "... has changed since" (default: the value of its target).
    names: Callable[[AuditEntry], str] | None = None


# action -> its UndoKind, for actions that modules above the store register (see values.py).
UNDO_KINDS: dict[str, UndoKind] = {}


def undo_user_id(entry: AuditEntry) -> str:
    """The id a user override was stored under (entries from before that was recorded: their label)."""
    return entry.user_id if entry.user_id is not None else entry.target


def undo_problem(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    """Why `entry` cannot be undone now, in a few words; None when it can.

    A change can be undone while what it set is still in place: a later change to the same thing would be
    silently reverted otherwise.
    """
    if entry.action not in UNDOABLE_ACTIONS and entry.action not in UNDO_KINDS:
        return f"the dashboard cannot undo {entry.action} changes"
    if entry.action in UNDO_KINDS:
        kind = UNDO_KINDS[entry.action]
        now = kind.now(entry, snapshot)
        target = kind.names(entry) if kind.names else f"the value of {entry.target}"
    elif entry.action in ("off", "on"):
        now = "off" if entry.flag in snapshot.disabled else None
        target = "the off switch"
    elif entry.action in ("force", "unforce"):
        now = snapshot.forced.get(entry.flag)
        target = "the forced variant"
    else:
        now = snapshot.user_overrides.get(entry.flag, {}).get(undo_user_id(entry))
        target = f"the override for {entry.target}"
    if now != entry.after:
        return f"{target} has changed since"
    if entry.before is not None and entry.flag and entry.flag not in current_config_map():
        return f"flag {entry.flag} is no longer in the code"
    return None
