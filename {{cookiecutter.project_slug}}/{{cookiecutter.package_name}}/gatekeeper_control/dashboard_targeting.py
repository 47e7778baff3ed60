"""The dashboard's targeting pages: rollout weights and group targets on a flag page (its scheduled
changes: dashboard_schedules.py), and the groups pages (the user look-up: dashboard_users.py)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .checks import shorten
from .dashboard import (
    PER_PAGE,
    bp,
    change,
    change_on_flag,
    config_or_404,
    flag_page_with_error,
    form_reason,
    page_of,
)
from .dashboard_schedules import schedules_context
from .engine import gatekeeper
from .snapshot import Snapshot
from .store import StoreError, store
from .targeting import code_weights, targeting


def targeting_context(name: str, config: Any, snapshot: Snapshot, stale: list[Any]) -> dict[str, Any]:
    """What the flag page shows about weights, group targets and scheduled changes."""
    stored = snapshot.weights.get(name)
    code_groups = gatekeeper.get_state().groups
    return {
        "weights": dict(stored) if stored else (code_weights(config) if config else None),
        "rest_variant": rest_variant(config) if config else None,
        "weights_stored": stored is not None,
        "weights_set": snapshot.weights_set.get(name),
        "weights_stale": any(item.kind == "weights" for item in stale),
        "group_targets": [
            {"group": group, "variant": variant, "stale": any(item.name == group for item in stale)}
            for group, variant in snapshot.group_targets.get(name, ())
        ],
        "group_names": sorted({*snapshot.groups, *code_groups, *snapshot.segments}),
        "group_choices": PER_PAGE,  # more groups than this: a text box, not a list of them all
        **schedules_context(name),
    }


def rest_variant(config: Any) -> str:
    """The variant whose share the rollout form computes (the rest of 100%): the default, else the last."""
    variants = config.get_variants()
    return config.default_variant if config.default_variant in variants else variants[-1]


def _form_weights(config: Any) -> tuple[dict[str, str], str | None, str | None]:
    """The weights typed in the flag page's rollout form (an empty box counts as 0), with the rest variant's
    share computed when the form leaves it out; and (field, problem) when a box holds no percentage."""
    rest = rest_variant(config)
    weights = {
        variant: (request.form.get(f"weight-{variant}", "").strip() or "0")
        for variant in config.get_variants()
        if variant != rest or f"weight-{rest}" in request.form
    }
    if rest in weights:  # every share given (as the CLI and older pages post): checked by the store
        return {variant: weights.get(variant, "0") for variant in config.get_variants()}, None, None
    total = Decimal(0)
    for variant, text in weights.items():
        try:
            share = Decimal(text.rstrip("%").strip())
        except InvalidOperation:
            share = Decimal(-1)
        if not share.is_finite() or not 0 <= share <= 100:
            return weights, f"weight-{variant}", f"{shorten(text)!r} is not a percentage from 0 to 100."
        total += share
    if total > 100:
        field = f"weight-{next(iter(weights))}"
        return weights, field, f"These shares add up to {total:f}%, more than 100%: lower one of them."
    weights[rest] = f"{Decimal(100) - total:f}"
    return {variant: weights[variant] for variant in config.get_variants()}, None, None


@bp.post("/flags/<name>/rollout")
def set_rollout(name: str) -> Response | tuple[str, int] | str:
    """Save new weights; when they would move units between experiment arms, ask to confirm first."""
    config = config_or_404(name)
    weights, field, problem = _form_weights(config)
    first_field = f"weight-{next(iter(config.get_variants()))}"
    if problem is not None:
        return flag_page_with_error(name, "rollout", field or first_field, problem)
    if not request.form.get("confirm_moves"):
        try:
            moves = targeting.weights_moves(name, weights)
        except StoreError as exc:
            return flag_page_with_error(name, "rollout", first_field, str(exc))
        if moves:
            return render_template(
                "gatekeeper/rollout_confirm.html",
                name=name,
                weights=weights,
                moves=moves,
                reason=form_reason(),
            )
    unchanged = f"{name} already has these weights."
    return change_on_flag(
        name, "rollout", first_field, targeting.set_weights, name, weights, unchanged=unchanged
    )


@bp.post("/flags/<name>/rollout/clear")
def clear_rollout(name: str) -> Response | tuple[str, int]:
    """Go back to the weights in code (stale stored weights too)."""
    unchanged = f"{shorten(name)} has no stored weights."
    return change_on_flag(name, "rollout", "reason", targeting.clear_weights, name, unchanged=unchanged)


@bp.post("/flags/<name>/targets")
def add_target(name: str) -> Response | tuple[str, int]:
    """Serve a variant to a group or segment, or split it (`split`: weights such as ON=50 OFF=50)."""
    config_or_404(name)
    group = request.form.get("group", "")
    split = request.form.get("split", "").strip()
    variant = split or request.form.get("variant", "")
    unchanged = f"{shorten(group)} already gets {variant}."
    field = "split" if split else "group"
    return change_on_flag(name, "groups", field, targeting.target, name, group, variant, unchanged=unchanged)


@bp.post("/flags/<name>/targets/remove")
def remove_target(name: str) -> Response | tuple[str, int]:
    """Stop targeting a group (stale targets too)."""
    group = request.form.get("group", "")
    unchanged = f"{shorten(group)} was not targeted."
    return change_on_flag(name, "groups", "group", targeting.untarget, name, group, unchanged=unchanged)


@bp.get("/groups")
def groups() -> str:
    """Every group: stored ones (editable) and those defined in code (read-only)."""
    snapshot = store.snapshot(max_age=0)
    names = page_of(
        sorted(snapshot.groups), request.args.get("page"), lambda page: url_for(".groups", page=page)
    )
    stored = [
        {
            "name": name,
            "description": snapshot.groups[name],
            "members": len(snapshot.group_members.get(name, {})),
        }
        for name in names.items
    ]
    code = sorted(gatekeeper.get_state().groups.values())
    return render_template(
        "gatekeeper/groups.html",
        stored=stored,
        pages=names,
        code=code,
        targets=_targets_by_group(snapshot),
    )


@bp.get("/groups/<name>")
def group(name: str) -> str | Response:
    """One stored group: its description and members, to fill and empty; or a code group, read-only."""
    snapshot = store.snapshot(max_age=0)
    code_group = gatekeeper.get_state().groups.get(name)
    if name in snapshot.segments and name not in snapshot.groups:
        return redirect(url_for(".segment", name=name))  # a flag page links every target here
    if name not in snapshot.groups and code_group is None:
        abort(404)
    members = page_of(
        sorted(snapshot.group_members.get(name, {}).items(), key=lambda item: item[1]),
        request.args.get("page"),
        lambda page: url_for(".group", name=name, page=page),
    )
    return render_template(
        "gatekeeper/group.html",
        name=name,
        code_group=code_group,
        description=snapshot.groups.get(name, ""),
        members=members,
        targets=_targets_by_group(snapshot).get(name, []),
    )


@bp.post("/groups")
def create_group() -> Response:
    name = request.form.get("name", "")
    change(targeting.create_group, name, request.form.get("description", ""), unchanged="")
    if name.strip() in store.snapshot().groups:
        return redirect(url_for(".group", name=name.strip()))
    return redirect(url_for(".groups"))


@bp.post("/groups/<name>/describe")
def describe_group(name: str) -> Response:
    description = request.form.get("description", "")
    change(targeting.describe_group, name, description, unchanged="The description is unchanged.")
    return _back_to_group(name)


@bp.post("/groups/<name>/delete")
def delete_group(name: str) -> Response:
    """Delete an empty group no flag targets; refused with a message (and kept) otherwise."""
    change(targeting.delete_group, name, unchanged="")
    return _back_to_group(name)


@bp.post("/groups/<name>/members")
def add_members(name: str) -> Response:
    """Add members: emails or ids, separated by spaces, commas or new lines."""
    users = request.form.get("users", "").replace(",", " ").split()
    change(targeting.add_members, name, users, unchanged="They are all members already.")
    return _back_to_group(name)


@bp.post("/groups/<name>/members/remove")
def remove_members(name: str) -> Response:
    users = request.form.getlist("user_id") or request.form.get("users", "").replace(",", " ").split()
    change(targeting.remove_members, name, users, unchanged="None of them is a member.")
    return _back_to_group(name)


def _targets_by_group(snapshot: Snapshot) -> dict[str, list[tuple[str, str]]]:
    targets: dict[str, list[tuple[str, str]]] = {}
    for flag_name, flag_targets in sorted(snapshot.group_targets.items()):
        for group_name, variant in flag_targets:
            targets.setdefault(group_name, []).append((flag_name, variant))
    return targets


def _back_to_group(name: str) -> Response:
    if name in store.snapshot().groups:
        return redirect(url_for(".group", name=name))
    return redirect(url_for(".groups"))
