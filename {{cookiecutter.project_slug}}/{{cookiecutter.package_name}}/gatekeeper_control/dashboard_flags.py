"""The dashboard's flag pages: one flag (who sees what, and why) and the changes made from it (browser
override, the off switch, forced variant, per-user overrides, variant values). The flag list is in
dashboard_list.py, the audit log and undo in dashboard_audit.py."""

from __future__ import annotations

from typing import Any

from flask import abort, render_template, request
from werkzeug.wrappers import Response

from .checks import current_config_map, shorten, unchecked_user_note
from .dashboard import (
    FLAG_AUDIT_ENTRIES,
    back_to_flag,
    bp,
    change,
    config_or_404,
    flash_message,
)
from .dashboard_targeting import targeting_context
from .prerequisites import prerequisites
from .snapshot import Snapshot
from .store import StoreError, store
from .targeting import targeting
from .values import to_json, values
from .who_sees_what import (
    active_steps,
    code_overrides,
    evaluation_order,
    my_user_id,
    overrides_a_force_ignores,
    rule_split,
    shadowed_by,
    split_source,
    stored_weights,
    winning_variant,
)


@bp.get("/flags/<name>")
def flag(name: str) -> str:
    """One flag: my browser override, the forced variant, per-user overrides, and its recent changes."""
    config = current_config_map().get(name)
    snapshot = store.snapshot(max_age=0)
    stale = [item for item in store.stale_overrides(snapshot) if item.flag == name]
    stale_targeting = [item for item in targeting.stale(snapshot) if item.flag == name]
    if config is None and not stale and not stale_targeting:
        abort(404)
    stale_users = {item.user_id for item in stale if item.user_id is not None}
    browser_override = request.gk.get_browser_override_variants().get(name)
    my_id = my_user_id()
    user_overrides = []
    for user_id, variant in sorted(snapshot.user_overrides.get(name, {}).items()):
        steps = active_steps(name, config, snapshot, user_id, browser_override if user_id == my_id else None)
        shadow = shadowed_by("user_override", steps)
        user_overrides.append(
            {
                "id": user_id,
                "label": snapshot.user_labels.get(user_id, user_id),
                "variant": variant,
                "stale": user_id in stale_users,
                "shadowed_by": shadow if "user_override" in steps else None,
                "gets": winning_variant(steps) if "user_override" in steps else None,
            }
        )
    evaluation = request.gk.explain(name) if config else None
    try:
        audit = store.audit_entries(page=1, per_page=FLAG_AUDIT_ENTRIES, flag=name)
    except StoreError:
        audit = None
    stale_values = [item for item in values.stale(snapshot, current_config_map()) if item.flag == name]
    return render_template(
        "gatekeeper/flag.html",
        name=name,
        flag_config=config,
        disabled=name in snapshot.disabled,
        prerequisites=prerequisites.of(name, config, snapshot) if config else [],
        flag_names=sorted(current_config_map()),
        variant_values=_variant_values(name, config, snapshot) if config else [],
        stale_values=stale_values,
        variants=config.get_variants() if config else [],
        evaluation=evaluation,
        browser_override=browser_override,
        forced=snapshot.forced.get(name),
        evaluation_order=(
            evaluation_order(name, config, snapshot, my_id, browser_override, evaluation) if config else []
        ),
        code_overrides=code_overrides(name, config, snapshot, my_id, browser_override) if config else [],
        forced_stale=any(item.user_id is None for item in stale),
        ignored_when_forced=overrides_a_force_ignores(name, config, snapshot),
        split=rule_split(config, stored_weights(name, config, snapshot)) if config else None,
        split_source=split_source(name, config, snapshot),
        user_overrides=user_overrides,
        audit=audit,
        **targeting_context(name, config, snapshot, stale_targeting),
    )


# --- Changes: POST, then back to the flag page --------------------------------------------------------------


@bp.post("/flags/<name>/browser-override")
def set_browser_override(name: str) -> Response:
    """Set or clear (empty variant) this browser's own override: a signed cookie, never stored or audited."""
    config = config_or_404(name)
    variant = request.form.get("variant", "")
    if variant and variant not in config.get_variants():
        flash_message(f"{name} has no variant {shorten(variant)!r}; nothing changed.", "error")
        return back_to_flag(name)
    if variant:
        flash_message(f"{name}: this browser now gets {variant}.", "success")
    else:
        flash_message(f"{name}: your browser override is cleared.", "success")
    return config.set_browser_override_variant(request, variant, response=back_to_flag(name))


@bp.post("/flags/<name>/force")
def force(name: str) -> Response:
    """Serve one variant to everyone; needs the confirmation box ticked."""
    config_or_404(name)
    variant = request.form.get("variant", "")
    if not request.form.get("confirm"):
        flash_message(
            f"Tick the confirmation box to force {shorten(variant) or 'a variant'}; nothing changed.", "error"
        )
    else:
        change(store.force, name, variant, unchanged=f"{name} is already forced to {variant}.")
    return back_to_flag(name)


@bp.post("/flags/<name>/unforce")
def unforce(name: str) -> Response:
    """Stop forcing; needs the confirmation box ticked. Also clears a stale forced variant."""
    if not request.form.get("confirm"):
        flash_message(f"Tick the confirmation box to stop forcing {shorten(name)}; nothing changed.", "error")
    else:
        change(store.unforce, name, unchanged=f"{shorten(name)} was not forced.")
    return back_to_flag(name)


@bp.post("/flags/<name>/off")
def switch_off(name: str) -> Response:
    """Switch the flag off: everyone gets its default; needs the confirmation box ticked."""
    config_or_404(name)
    if not request.form.get("confirm"):
        flash_message(f"Tick the confirmation box to switch {name} off; nothing changed.", "error")
    else:
        change(store.switch_off, name, unchanged=f"{name} is already off.")
    return back_to_flag(name)


@bp.post("/flags/<name>/on")
def switch_on(name: str) -> Response:
    """Switch the flag back on (also for a flag the code no longer has)."""
    change(store.switch_on, name, unchanged=f"{shorten(name)} was not off.")
    return back_to_flag(name)


@bp.post("/flags/<name>/prerequisites")
def require(name: str) -> Response:
    """Add a prerequisite: REQUIRED flag and VARIANT, typed as `REQUIRED=VARIANT` or in two fields."""
    required, variant = request.form.get("required", ""), request.form.get("variant", "")
    if "=" in required and not variant:
        required, _, variant = required.partition("=")
    unchanged = f"{name} already requires that."
    change(prerequisites.require, name, required.strip(), variant.strip(), unchanged=unchanged)
    return back_to_flag(name)


@bp.post("/flags/<name>/prerequisites/remove")
def unrequire(name: str) -> Response:
    change(prerequisites.unrequire, name, request.form.get("required", ""), unchanged="Not required.")
    return back_to_flag(name)


@bp.post("/flags/<name>/values")
def set_value(name: str) -> Response:
    """Replace one variant's value (JSON, or plain text for a text flag), or go back to the code's."""
    variant = request.form.get("variant", "")
    if request.form.get("clear"):
        change(values.clear_value, name, variant, unchanged=f"{shorten(variant)} carries the value in code.")
    else:
        config_or_404(name)
        text = request.form.get("value", "")
        change(values.set_value, name, variant, text, unchanged=f"{shorten(variant)} already carries that.")
    return back_to_flag(name)


@bp.post("/flags/<name>/users")
def add_user_override(name: str) -> Response:
    """Pin one user, named by email or id, to a variant."""
    config_or_404(name)
    user_text = request.form.get("user", "")
    variant = request.form.get("variant", "")
    unchecked = "" if store.checks_users else " " + unchecked_user_note(user_text)
    unchanged = f"{shorten(user_text.strip())} already gets {shorten(variant)}."
    change(store.set_user_override, name, user_text, variant, unchanged=unchanged, note=unchecked)
    return back_to_flag(name)


@bp.post("/flags/<name>/users/remove")
def remove_user_override(name: str) -> Response:
    """Remove one user's override (stale ones too)."""
    user_id = request.form.get("user_id", "")
    change(store.clear_user_override, name, user_id, unchanged="That user has no override.")
    return back_to_flag(name)


# --- Helpers ------------------------------------------------------------------------------------------------


def _variant_values(name: str, config: Any, snapshot: Snapshot) -> list[dict[str, Any]]:
    """Per variant: its value now (as the form shows it), the code's, and whether one is stored."""
    stored = snapshot.values.get(name, {})
    rows = []
    for variant in config.get_variants():
        value = request.gk.value_of(config, variant)
        shown = value if config.value_type == "string" else to_json(value)
        code = config.values[variant]
        rows.append(
            {
                "variant": variant,
                "value": shown,
                "code": code if config.value_type == "string" else to_json(code),
                "stored": variant in stored and value is stored[variant],
            }
        )
    return rows
