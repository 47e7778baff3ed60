"""The dashboard's audit log: every change, filtered, and the undo of one change from its entry."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .audit import AuditEntry
from .checks import current_config_map
from .dashboard import (
    AUDIT_ACTORS_SHOWN,
    AUDIT_PER_PAGE,
    bp,
    current_actor,
    flash_message,
    form_reason,
)
from .parsing import page_number
from .store import StoreError, store, undo_problem

AUDIT_FILTERS = ("flag", "actor", "action")
AUDIT_ACTION_NAMES = {
    "force": "forced for everyone",
    "unforce": "stopped forcing",
    "user_override": "user override set",
    "clear_user_override": "user override removed",
}


@bp.get("/audit")
def audit() -> str:
    """Every change, newest first, 50 to a page; `?flag=`, `?actor=` and `?action=` narrow it (linkable)."""
    filters = {key: request.args.get(key, "").strip() or None for key in AUDIT_FILTERS}
    page = page_number(request.args.get("page"))
    try:
        entries = store.audit_entries(page=page, per_page=AUDIT_PER_PAGE, **filters)
        actors = store.audit_actors(limit=AUDIT_ACTORS_SHOWN)
        undoable = _undoable(entries.entries)
    except StoreError:
        entries, actors, undoable = None, [], set()
    return render_template(
        "gatekeeper/audit.html",
        entries=entries,
        flag=filters["flag"],
        filters=filters,
        filtered={key: value for key, value in filters.items() if value},
        actors=actors,
        flags=sorted(current_config_map()),
        action_names=AUDIT_ACTION_NAMES,
        undoable=undoable,
    )


@bp.post("/audit/<int:entry_id>/undo")
def undo(entry_id: int) -> Response:
    """Undo one change with a new, audited change that restores what it replaced."""
    try:
        entry = store.undo(entry_id, current_actor(), reason=form_reason())
    except StoreError as exc:
        flash_message(str(exc), "error")
    else:
        message = f"Undone: {entry.summary}" if entry else "Nothing to undo."
        flash_message(message, "success" if entry else "info")
    filters = {key: request.form.get(key) for key in AUDIT_FILTERS if request.form.get(key)}
    return redirect(url_for(".audit", **filters))


# --- Helpers ------------------------------------------------------------------------------------------------


def _undoable(entries: list[AuditEntry]) -> set[int]:
    """The ids of the entries on a page that an undo can restore now (raises StoreError)."""
    snapshot = store.snapshot(max_age=0)
    candidates = [entry for entry in entries if undo_problem(entry, snapshot) is None]
    return store.newest_of_their_kind(candidates) if candidates else set()
