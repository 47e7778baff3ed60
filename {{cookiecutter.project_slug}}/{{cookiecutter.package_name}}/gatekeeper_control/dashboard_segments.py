"""The dashboard's segment pages: the segments, one segment's conditions (to add and remove), and "does
this user match?" by look-up; flags target segments from their own page, like groups."""

from __future__ import annotations

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .checks import shorten
from .conditions import OPERATORS
from .dashboard import bp, change
from .segments import segments
from .snapshot import Snapshot
from .store import StoreError, store


@bp.get("/segments")
def segment_list() -> str:
    """Every segment, its conditions and the flags that target it; a form to create one."""
    snapshot = store.snapshot(max_age=0)
    return render_template(
        "gatekeeper/segments.html",
        segments=sorted(snapshot.segments.values(), key=lambda segment: segment.name),
        targets=_targets_by_segment(snapshot),
    )


@bp.get("/segments/<name>")
def segment(name: str) -> str:
    """One segment: its conditions, the flags that target it, and whether a user (`?user=`) matches."""
    snapshot = store.snapshot(max_age=0)
    found = snapshot.segments.get(name)
    if found is None:
        abort(404)
    user_text = request.args.get("user", "").strip()
    check = None
    if user_text:
        try:
            user, context = segments.context_of(user_text)
        except StoreError as exc:
            check = {"error": str(exc)}
        else:
            check = {
                "user": user,
                "context": context,
                "matches": found.matches(context),
                "failing": found.failing(context),
            }
    return render_template(
        "gatekeeper/segment.html",
        segment=found,
        targets=_targets_by_segment(snapshot).get(name, []),
        operators=OPERATORS,
        user_text=user_text,
        check=check,
    )


@bp.post("/segments")
def create_segment() -> Response:
    name = request.form.get("name", "").strip()
    change(segments.create, name, request.form.get("description", ""), unchanged=f"{shorten(name)} exists.")
    if name in store.snapshot().segments:
        return redirect(url_for(".segment", name=name))
    return redirect(url_for(".segment_list"))


@bp.post("/segments/<name>/conditions")
def add_condition(name: str) -> Response:
    """Add ATTRIBUTE OPERATOR VALUE; a condition that cannot be saved says why, and nothing is written."""
    form = request.form
    value = form.get("value", "")
    change(
        segments.add_condition,
        name,
        form.get("attribute", ""),
        form.get("operator", ""),
        value if value.strip() else None,
        unchanged="",
    )
    return _back_to_segment(name)


@bp.post("/segments/<name>/conditions/remove")
def remove_condition(name: str) -> Response:
    change(segments.remove_condition, name, request.form.get("number", 0, type=int), unchanged="")
    return _back_to_segment(name)


@bp.post("/segments/<name>/delete")
def delete_segment(name: str) -> Response:
    change(segments.delete, name, unchanged=f"There is no segment {shorten(name)}.")
    return redirect(url_for(".segment_list"))


def _targets_by_segment(snapshot: Snapshot) -> dict[str, list[tuple[str, str]]]:
    targets: dict[str, list[tuple[str, str]]] = {}
    for flag_name, flag_targets in sorted(snapshot.group_targets.items()):
        for group_name, variant in flag_targets:
            if group_name in snapshot.segments:
                targets.setdefault(group_name, []).append((flag_name, variant))
    return targets


def _back_to_segment(name: str) -> Response:
    if name in store.snapshot().segments:
        return redirect(url_for(".segment", name=name))
    return redirect(url_for(".segment_list"))
