"""The dashboard's scheduled changes: a flag page's pending and recently done changes, and the forms that
schedule and cancel them."""

from __future__ import annotations

import functools
import math
from typing import Any

from flask import request, url_for
from werkzeug.wrappers import Response

from .checks import shorten
from .dashboard import (
    PER_PAGE,
    Page,
    back_to_flag,
    bp,
    change,
    config_or_404,
    current_actor,
    flash_message,
    form_reason,
)
from .parsing import page_number
from .schedules import SCHEDULE_ACTIONS, scheduler
from .store import StoreError


def schedules_context(name: str) -> dict[str, Any]:
    """What the flag page shows about scheduled changes (`_schedules.html`)."""
    schedules, schedule_pages = _scheduled_changes(name)
    return {
        "schedules": schedules,
        "schedule_pages": schedule_pages,
        "schedule_actions": list(SCHEDULE_ACTIONS),
    }


def _scheduled_changes(name: str) -> tuple[list[Any] | None, Page | None]:
    """The flag page's scheduled changes: a page of the pending ones (`?schedules=N`, soonest first), then
    the recently done; and the pending ones' pager. (None, None) while the store is unavailable."""
    try:
        pending = scheduler.pending_count(name)
        page = min(page_number(request.args.get("schedules")), max(1, math.ceil(pending / PER_PAGE)))
        changes = scheduler.schedules(name, pending_page=(page, PER_PAGE))
    except StoreError:
        return None, None
    url = functools.partial(_flag_page_schedules, name)
    return changes, Page(changes, page, PER_PAGE, pending, url)


def _flag_page_schedules(name: str, page: int) -> str:
    return url_for(".flag", name=name, schedules=page, _anchor="schedules")


@bp.post("/flags/<name>/schedules")
def add_schedule(name: str) -> Response:
    """Schedule a change: WHEN (ISO 8601 or +30m, +2h, +1d), an action and its arguments."""
    config_or_404(name)
    when, action = request.form.get("when", ""), request.form.get("action", "")
    arguments = request.form.get("arguments", "").split()
    try:
        entry = scheduler.schedule(name, when, action, arguments, actor=current_actor(), reason=form_reason())
    except StoreError as exc:
        flash_message(str(exc), "error")
    else:
        flash_message(entry.summary, "success")
    return back_to_flag(name)


@bp.post("/flags/<name>/schedules/<int:schedule_id>/cancel")
def cancel_schedule(name: str, schedule_id: int) -> Response:
    """Cancel a pending change of this flag (an id of another flag's change cancels nothing)."""
    cancel = functools.partial(scheduler.cancel, flag=name)
    change(cancel, schedule_id, unchanged=f"#{schedule_id} is not a pending change of {shorten(name)}.")
    return back_to_flag(name)
