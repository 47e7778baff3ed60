"""The dashboard's scheduled changes: a flag page's pending and recently done changes, and the forms that
schedule and cancel them."""

from __future__ import annotations

import functools
import math
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import redirect, render_template, request, url_for
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
    flag_page_with_error,
    flash_message,
    form_reason,
)
from .errors import ScheduleError
from .parsing import page_number
from .schedules import SCHEDULE_ACTIONS, scheduler
from .store import StoreError


def schedules_context(name: str) -> dict[str, Any]:
    """What the flag page shows about scheduled changes (`_schedules.html`)."""
    schedules, schedule_pages = _scheduled_changes(name)
    return {
        "schedules": schedules,
        "schedule_pages": schedule_pages,
        "schedule_actions": {action: ACTION_LABELS.get(action, action) for action in SCHEDULE_ACTIONS},
        "schedule_fields": ACTION_FIELDS,
        "ramp_steps": RAMP_STEPS,
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


# What each action asks for in the structured form (the fields `_form_arguments` reads), in its words.
ACTION_FIELDS = {
    "force": ("variant",),
    "unforce": (),
    "off": (),
    "on": (),
    "value": ("variant", "value"),
    "clear-value": ("variant",),
    "rollout": ("shares",),
    "clear-rollout": (),
    "target": ("group", "variant"),
    "untarget": ("group",),
}
ACTION_LABELS = {
    "force": "Force a variant for everyone",
    "unforce": "Stop forcing",
    "off": "Switch off",
    "on": "Switch on",
    "value": "Set a variant's value",
    "clear-value": "Put a variant's value back to the code's",
    "rollout": "Set the rollout shares",
    "clear-rollout": "Put the rollout back to the code's",
    "target": "Target a group or segment",
    "untarget": "Stop targeting a group or segment",
}
RAMP_STEPS = 3  # rows of the ramp form (5% now, 25% tomorrow, 100% on Friday)
MAX_OFFSET_MINUTES = 18 * 60  # the widest UTC offset a browser can report


def form_when(prefix: str = "") -> str:
    """The time a schedule form asks for, as `parse_when` reads it: the date-time input `at` (the viewer's
    local time when the page's script filled `tz_offset`, JavaScript's minutes behind UTC; else UTC), or
    the older free-text `when` (ISO 8601, +30m, +2h, +1d)."""
    at = request.form.get(f"{prefix}at", "").strip()
    if not at:
        return request.form.get(f"{prefix}when", "")
    offset = request.form.get("tz_offset", "").strip()
    if not offset.lstrip("-").isdigit() or abs(int(offset)) > MAX_OFFSET_MINUTES:
        return at  # read in UTC, as the form says when its script did not run
    east = -int(offset)
    sign = "-" if east < 0 else "+"
    return f"{at}{sign}{abs(east) // 60:02d}:{abs(east) % 60:02d}"


def _form_arguments(config: Any, action: str) -> list[str]:
    """The arguments of `action` from the structured form's fields (the older free-text `arguments` field
    still works)."""
    if "arguments" in request.form:
        return request.form.get("arguments", "").split()
    fields = ACTION_FIELDS.get(action, ())
    arguments = []
    if "group" in fields:
        group = request.form.get("group", "").strip()
        if not group:
            raise ScheduleError("Choose the group or segment; nothing was scheduled.")
        arguments.append(group)
    if "variant" in fields:
        arguments.append(request.form.get("variant", "").strip())
    if "value" in fields:
        arguments.append(request.form.get("value", ""))
    if "shares" in fields:
        arguments += [f"{variant}={share}" for variant, share in form_shares(config).items()]
    return arguments


def form_shares(config: Any, prefix: str = "share-") -> dict[str, str]:
    """The shares typed per variant (an empty box counts as 0)."""
    return {
        variant: (request.form.get(f"{prefix}{variant}", "").strip() or "0")
        for variant in config.get_variants()
    }


@bp.post("/flags/<name>/schedules")
def add_schedule(name: str) -> Response | tuple[str, int]:
    """Schedule a change: the action, then the fields it needs (variant, shares, group, value), and when
    (the date-time input, in the viewer's time zone with JavaScript, else UTC)."""
    config = config_or_404(name)
    action = request.form.get("action", "")
    try:
        arguments = _form_arguments(config, action)
        entry = scheduler.schedule(
            name, form_when(), action, arguments, actor=current_actor(), reason=form_reason()
        )
    except StoreError as exc:  # the form again, open, with what was typed and the error above its button
        return flag_page_with_error(name, "schedules", "at", str(exc))
    flash_message(entry.summary, "success")
    return back_to_flag(name, "schedules")


@bp.post("/flags/<name>/ramp")
def add_ramp(name: str) -> Response | tuple[str, int]:
    """A ramp in one form: raise one variant's share step by step (the rest goes to another variant); the
    first step may be now (no time), the others at their times. All steps or none are saved."""
    config = config_or_404(name)
    raised, rest = request.form.get("variant", ""), request.form.get("rest", "")
    steps = []
    try:
        if raised == rest or raised not in config.get_variants() or rest not in config.get_variants():
            raise ScheduleError("Choose two different variants: one to raise, one that gets the rest.")
        for number in range(1, RAMP_STEPS + 1):
            share = request.form.get(f"share-{number}", "").strip()
            if not share:
                continue
            try:
                rest_share = 100 - Decimal(share)
            except InvalidOperation:
                raise ScheduleError(f"Step {number}: {shorten(share)!r} is not a percentage.") from None
            weights = {raised: share, rest: f"{rest_share:f}"}
            steps.append((form_when(f"step-{number}-"), weights))
        entries = scheduler.ramp(name, steps, actor=current_actor(), reason=form_reason())
    except StoreError as exc:
        return flag_page_with_error(name, "ramp", "at", str(exc))
    made = f"{name}: a ramp of {len(steps)} step{'s' if len(steps) != 1 else ''} saved."
    flash_message(" ".join([made, *(entry.summary for entry in entries)]), "success")
    return back_to_flag(name, "schedules")


@bp.post("/flags/<name>/schedules/<int:schedule_id>/cancel")
def cancel_schedule(name: str, schedule_id: int) -> Response:
    """Cancel a pending change of this flag (an id of another flag's change cancels nothing); back to the
    flag page, or to the Upcoming page when it was sent from there."""
    cancel = functools.partial(scheduler.cancel, flag=name)
    change(cancel, schedule_id, unchanged=f"#{schedule_id} is not a pending change of {shorten(name)}.")
    if request.form.get("back") == "upcoming":
        return redirect(url_for(".upcoming"))
    return back_to_flag(name)


@bp.get("/schedules")
def upcoming() -> str:
    """Every flag's pending changes, soonest first, PER_PAGE to a page (`?page=N`)."""
    try:
        total = scheduler.pending_count()
        page = min(page_number(request.args.get("page")), max(1, math.ceil(total / PER_PAGE)))
        changes = scheduler.schedules(pending_only=True, pending_page=(page, PER_PAGE))
    except StoreError:
        return render_template("gatekeeper/upcoming.html", changes=None, pages=None)
    pages = Page(changes, page, PER_PAGE, total, lambda number: url_for(".upcoming", page=number))
    return render_template("gatekeeper/upcoming.html", changes=changes, pages=pages)
