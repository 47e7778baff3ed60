"""The dashboard's flag pages: one flag (who sees what, and why) and the changes made from it (browser
override, the off switch, forced variant, per-user overrides, variant values). The flag list is in
dashboard_list.py, the audit log and undo in dashboard_audit.py."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .checks import current_config_map, shorten, unchecked_user_note
from .dashboard import (
    FLAG_AUDIT_ENTRIES,
    back_to_flag,
    bp,
    change_on_flag,
    config_or_404,
    flag_page_with_error,
    flash_message,
)
from .dashboard_targeting import targeting_context
from .prerequisites import prerequisites
from .rule_source import relative_path, rule_of, usage_of
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
def flag(name: str) -> str | Response:
    """One flag, as the ordered list it is evaluated in: the off switch, prerequisites, this browser, forced
    for everyone, user pins, group targets, the rule and its rollout, values; then schedules, exposures and
    its recent changes. Each part is edited where it is shown. An unknown name goes back to the list."""
    config = current_config_map().get(name)
    snapshot = store.snapshot(max_age=0)
    stale = [item for item in store.stale_overrides(snapshot) if item.flag == name]
    stale_targeting = [item for item in targeting.stale(snapshot) if item.flag == name]
    if config is None and not stale and not stale_targeting:
        flash_message(f"There is no flag named {shorten(name)!r}: pick one from the list.", "error")
        return redirect(url_for(".index"))
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
    usage, usage_count = usage_of(name) if config else ([], 0)
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
        rule=rule_of(config) if config else None,
        usage=[(relative_path(ref), ref.line, ref.variant) for ref in usage],
        usage_count=usage_count,
        **targeting_context(name, config, snapshot, stale_targeting),
    )


# --- Changes: POST, then back to the flag page --------------------------------------------------------------


@bp.post("/flags/<name>/browser-override")
def set_browser_override(name: str) -> Response | tuple[str, int]:
    """Set or clear (empty variant) this browser's own override: a signed cookie, never stored or audited."""
    config = config_or_404(name)
    variant = request.form.get("variant", "")
    if variant and variant not in config.get_variants():
        message = f"{name} has no variant {shorten(variant)!r}; nothing changed."
        return flag_page_with_error(name, "browser", "variant", message)
    if variant:
        flash_message(f"{name}: this browser now gets {variant}.", "success")
    else:
        flash_message(f"{name}: your browser override is cleared.", "success")
    return config.set_browser_override_variant(request, variant, response=back_to_flag(name, "browser"))


@bp.post("/flags/<name>/force")
def force(name: str) -> Response | tuple[str, int]:
    """Serve one variant to everyone; needs the confirmation box ticked."""
    config_or_404(name)
    variant = request.form.get("variant", "")
    if not request.form.get("confirm"):
        message = f"Tick the box to force {shorten(variant) or 'a variant'} for everyone; nothing changed."
        return flag_page_with_error(name, "forced", "confirm", message)
    unchanged = f"{name} is already forced to {variant}."
    return change_on_flag(name, "forced", "variant", store.force, name, variant, unchanged=unchanged)


@bp.post("/flags/<name>/unforce")
def unforce(name: str) -> Response | tuple[str, int]:
    """Stop forcing; needs the confirmation box ticked. Also clears a stale forced variant."""
    if not request.form.get("confirm"):
        message = f"Tick the box to stop forcing {shorten(name)}; nothing changed."
        return flag_page_with_error(name, "unforce", "confirm", message)
    unchanged = f"{shorten(name)} was not forced."
    operation = store.unforce
    return change_on_flag(name, "unforce", "confirm", operation, name, unchanged=unchanged, section="forced")


@bp.post("/flags/<name>/off")
def switch_off(name: str) -> Response | tuple[str, int]:
    """Switch the flag off: everyone gets its default; needs the confirmation box ticked."""
    config_or_404(name)
    if not request.form.get("confirm"):
        message = f"Tick the box to switch {name} off for everyone; nothing changed."
        return flag_page_with_error(name, "off-switch", "confirm", message)
    unchanged = f"{name} is already off."
    return change_on_flag(name, "off-switch", "confirm", store.switch_off, name, unchanged=unchanged)


@bp.post("/flags/<name>/on")
def switch_on(name: str) -> Response | tuple[str, int]:
    """Switch the flag back on (also for a flag the code no longer has)."""
    unchanged = f"{shorten(name)} was not off."
    return change_on_flag(name, "off-switch", "reason", store.switch_on, name, unchanged=unchanged)


@bp.post("/flags/<name>/prerequisites")
def require(name: str) -> Response | tuple[str, int]:
    """Add a prerequisite: REQUIRED flag and VARIANT, typed as `REQUIRED=VARIANT` or in two fields."""
    required, variant = request.form.get("required", ""), request.form.get("variant", "")
    if "=" in required and not variant:
        required, _, variant = required.partition("=")
    unchanged = f"{name} already requires that."
    operation = prerequisites.require
    args = (name, required.strip(), variant.strip())
    return change_on_flag(name, "prerequisites", "variant", operation, *args, unchanged=unchanged)


@bp.post("/flags/<name>/prerequisites/remove")
def unrequire(name: str) -> Response | tuple[str, int]:
    required = request.form.get("required", "")
    operation = prerequisites.unrequire
    return change_on_flag(
        name, "prerequisites", "required", operation, name, required, unchanged="Not required."
    )


@bp.post("/flags/<name>/values")
def set_value(name: str) -> Response | tuple[str, int]:
    """Replace one variant's value (JSON, or plain text for a text flag), or go back to the code's."""
    variant = request.form.get("variant", "")
    form = f"value-{variant}"
    if request.form.get("clear"):
        unchanged = f"{shorten(variant)} carries the value in code."
        return change_on_flag(name, "values", "value", values.clear_value, name, variant, unchanged=unchanged)
    config_or_404(name)
    text = request.form.get("value", "")
    unchanged = f"{shorten(variant)} already carries that."
    operation = values.set_value
    args = (name, variant, text)
    return change_on_flag(name, form, "value", operation, *args, unchanged=unchanged, section="values")


@bp.post("/flags/<name>/users")
def add_user_override(name: str) -> Response | tuple[str, int]:
    """Pin one user, named by email or id, to a variant."""
    config_or_404(name)
    user_text = request.form.get("user", "")
    variant = request.form.get("variant", "")
    unchecked = "" if store.checks_users else " " + unchecked_user_note(user_text)
    unchanged = f"{shorten(user_text.strip())} already gets {shorten(variant)}."
    operation = store.set_user_override
    args = (name, user_text, variant)
    return change_on_flag(name, "users", "user", operation, *args, unchanged=unchanged, note=unchecked)


@bp.post("/flags/<name>/users/remove")
def remove_user_override(name: str) -> Response | tuple[str, int]:
    """Remove one user's override (stale ones too)."""
    user_id = request.form.get("user_id", "")
    operation = store.clear_user_override
    unchanged = "That user has no override."
    return change_on_flag(name, "users", "user", operation, name, user_id, unchanged=unchanged)


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
