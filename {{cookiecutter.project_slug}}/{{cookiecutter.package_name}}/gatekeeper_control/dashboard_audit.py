"""The dashboard's audit log: every change, filtered (flag, who, what, a date range, a text search) and
paged by number, and the undo of one change from its entry."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .audit import ACTION_NAMES, AuditEntry, is_schedule_actor
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
from .store import StoreError, store
from .undo import CONFIRMED_UNDO
from .undo_rules import undo_problem

AUDIT_FILTERS = ("flag", "actor", "action", "since", "until", "q")
# Page links around the current one (the first and the last are always linked).
PAGE_LINKS_AROUND = 2


@bp.get("/audit")
def audit() -> str:
    """Every change, newest first, 50 to a page. `?flag=`, `?actor=`, `?action=`, `?since=` and `?until=`
    (dates, UTC days, both included) and `?q=` (text anywhere in the entry) narrow it; all linkable."""
    filters = {key: request.args.get(key, "").strip()[:200] or None for key in AUDIT_FILTERS}
    since, until = _day(filters["since"]), _day(filters["until"])
    problems = [
        f"{filters[key]!r} is not a date (YYYY-MM-DD)"
        for key, day in (("since", since), ("until", until))
        if filters[key] and day is None
    ]
    page = page_number(request.args.get("page"))
    try:
        entries = store.audit_entries(
            page=page,
            per_page=AUDIT_PER_PAGE,
            flag=filters["flag"],
            actor=filters["actor"],
            action=filters["action"],
            since=datetime.combine(since, time(), UTC) if since else None,
            before=datetime.combine(until + timedelta(days=1), time(), UTC) if until else None,
            search=filters["q"],
        )
        actors = store.audit_actors(limit=AUDIT_ACTORS_SHOWN)
        undoable = _undoable(entries.entries)
    except StoreError:
        entries, actors, undoable = None, [], set()
    filtered = {key: value for key, value in filters.items() if value}
    return render_template(
        "gatekeeper/audit.html",
        entries=entries,
        flag=filters["flag"],
        filters=filters,
        filtered=filtered,
        problems=problems,
        people=[actor for actor in actors if not is_schedule_actor(actor)],
        schedules=[actor for actor in actors if is_schedule_actor(actor)],
        flags=sorted(current_config_map()),
        action_groups=ACTION_NAMES,
        undoable=undoable,
        confirm_undo=CONFIRMED_UNDO,
        page_links=_page_links(entries.page, entries.pages) if entries else [],
        page_url=lambda number: url_for(".audit", page=number, **filtered),
    )


@bp.post("/audit/<int:entry_id>/undo")
def undo(entry_id: int) -> Response:
    """Undo one change with a new, audited change that restores what it replaced. Undoing the off switch
    or a forced variant needs the same confirmation box as switching or forcing."""
    filters = {key: request.form.get(key) for key in AUDIT_FILTERS if request.form.get(key)}
    try:
        entry = store.audit_entry(entry_id)
        confirmed = request.form.get("confirm") or entry is None or entry.action not in CONFIRMED_UNDO
        if not confirmed and entry.id in _undoable([entry]):  # (one that cannot be undone says why instead)
            flash_message(
                f"Tick the confirmation box to undo change #{entry_id} ({entry.flag}: {entry.what}); "
                "nothing changed.",
                "error",
            )
            return redirect(url_for(".audit", **filters))
        done = store.undo(entry_id, current_actor(), reason=form_reason())
    except StoreError as exc:
        flash_message(str(exc), "error")
    else:
        message = f"Undone: {done.summary}" if done else "Nothing to undo."
        flash_message(message, "success" if done else "info")
    return redirect(url_for(".audit", **filters))


# --- Helpers ------------------------------------------------------------------------------------------------


def _undoable(entries: list[AuditEntry]) -> set[int]:
    """The ids of the entries on a page that an undo can restore now (raises StoreError)."""
    snapshot = store.snapshot(max_age=0)
    candidates = [entry for entry in entries if undo_problem(entry, snapshot) is None]
    return store.newest_of_their_kind(candidates) if candidates else set()


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _page_links(page: int, pages: int) -> list[Any]:
    """Page numbers to link: the first, the last, and PAGE_LINKS_AROUND either side of `page`; None marks
    a gap."""
    shown = {1, pages, *range(page - PAGE_LINKS_AROUND, page + PAGE_LINKS_AROUND + 1)}
    links: list[Any] = []
    for number in sorted(n for n in shown if 1 <= n <= pages):
        if links and number - links[-1] > 1:
            links.append(None)
        links.append(number)
    return links
