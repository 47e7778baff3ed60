"""The admin dashboard: every flag and why you get your variant; override it for you, one user, or everyone.

A blueprint (`gatekeeper`) with its own layout under `templates/gatekeeper/`, so it can be copied into
another app. Admins only (a user whose `is_admin` is true); every change is a CSRF-protected POST answered
by a redirect. Reads come from the store's snapshot, so the pages keep working (and say so) when the
database is down.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from . import gatekeeper
from .gatekeeper_store import AuditEntry, Snapshot, StoreError, shorten, store

bp = Blueprint("gatekeeper", __name__)

AUDIT_PER_PAGE = 50
FLAG_AUDIT_ENTRIES = 20
# Flash messages live in the session cookie: what an admin typed is cut short so no cookie outgrows 4 KB.
FLASH_LENGTH = 300


@bp.before_request
def _require_admin() -> Response | None:
    """Anonymous visitors go to the login page; signed-in users who are not admins get 403."""
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()
    if not getattr(current_user, "is_admin", False):
        abort(403)
    return None


@bp.context_processor
def _store_status() -> dict[str, Any]:
    return {
        "store_available": store.available,
        "store_error": store.error,
        "store_loaded_at": store.snapshot().loaded_at,
    }


# --- Pages --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlagRow:
    """What the flag list shows about one flag."""

    name: str
    description: str
    variants: list[str]
    default: str | None
    evaluation: Any  # the engine's Evaluation(flag, variant, reason, detail) for the current admin
    forced: str | None
    override_count: int
    stale_count: int
    last_change: AuditEntry | None


@bp.get("/")
def index() -> str:
    """The flag list, filtered server-side by `?q=` (the page's script filters as you type)."""
    query = request.args.get("q", "").strip()
    snapshot = store.snapshot(max_age=0)
    config_map = _config_map()
    stale = store.stale_overrides(snapshot, config_map)
    stale_counts = Counter(item.flag for item in stale)
    last_changes = _last_changes()
    rows = [
        _flag_row(name, config, snapshot, stale_counts[name], last_changes.get(name))
        for name, config in sorted(config_map.items())
        if _matches(query, name, config)
    ]
    return render_template(
        "gatekeeper/index.html", rows=rows, query=query, total=len(config_map), stale=stale
    )


@bp.get("/flags/<name>")
def flag(name: str) -> str:
    """One flag: my browser override, the forced variant, per-user overrides, and its recent changes."""
    config = _config_map().get(name)
    snapshot = store.snapshot(max_age=0)
    stale = [item for item in store.stale_overrides(snapshot) if item.flag == name]
    if config is None and not stale:
        abort(404)
    stale_users = {item.user_id for item in stale if item.user_id is not None}
    user_overrides = [
        {
            "id": user_id,
            "label": snapshot.user_labels.get(user_id, user_id),
            "variant": variant,
            "stale": user_id in stale_users,
        }
        for user_id, variant in sorted(snapshot.user_overrides.get(name, {}).items())
    ]
    try:
        audit = store.audit_entries(page=1, per_page=FLAG_AUDIT_ENTRIES, flag=name)
    except StoreError:
        audit = None
    return render_template(
        "gatekeeper/flag.html",
        name=name,
        flag_config=config,
        variants=config.get_variants() if config else [],
        evaluation=request.gk.explain(name) if config else None,
        browser_override=request.gk.get_browser_override_variants().get(name),
        forced=snapshot.forced.get(name),
        forced_stale=any(item.user_id is None for item in stale),
        user_overrides=user_overrides,
        audit=audit,
    )


@bp.get("/audit")
def audit() -> str:
    """Every change, newest first, 50 to a page; `?flag=` narrows it to one flag."""
    flag_name = request.args.get("flag", "").strip() or None
    page = request.args.get("page", 1, type=int)
    try:
        entries = store.audit_entries(page=page, per_page=AUDIT_PER_PAGE, flag=flag_name)
    except StoreError:
        entries = None
    return render_template("gatekeeper/audit.html", entries=entries, flag=flag_name)


# --- Changes: POST, then back to the flag page --------------------------------------------------------------


@bp.post("/flags/<name>/browser-override")
def set_browser_override(name: str) -> Response:
    """Set or clear (empty variant) this browser's own override: a signed cookie, never stored or audited."""
    config = _config_or_404(name)
    variant = request.form.get("variant", "")
    if variant and variant not in config.get_variants():
        flash(f"{name} has no variant {shorten(variant)!r}; nothing changed.", "error")
        return _back(name)
    if variant:
        flash(f"{name}: this browser now gets {variant}.", "success")
    else:
        flash(f"{name}: your browser override is cleared.", "success")
    return config.set_browser_override_variant(request, variant, response=_back(name))


@bp.post("/flags/<name>/force")
def force(name: str) -> Response:
    """Serve one variant to everyone; needs the confirmation box ticked."""
    _config_or_404(name)
    variant = request.form.get("variant", "")
    if not request.form.get("confirm"):
        flash(
            f"Tick the confirmation box to force {shorten(variant) or 'a variant'}; nothing changed.", "error"
        )
    else:
        _change(store.force, name, variant, unchanged=f"{name} is already forced to {variant}.")
    return _back(name)


@bp.post("/flags/<name>/unforce")
def unforce(name: str) -> Response:
    """Stop forcing; needs the confirmation box ticked. Also clears a stale forced variant."""
    if not request.form.get("confirm"):
        flash(f"Tick the confirmation box to stop forcing {shorten(name)}; nothing changed.", "error")
    else:
        _change(store.unforce, name, unchanged=f"{shorten(name)} was not forced.")
    return _back(name)


@bp.post("/flags/<name>/users")
def add_user_override(name: str) -> Response:
    """Pin one user, named by email or id, to a variant."""
    _config_or_404(name)
    user_text = request.form.get("user", "")
    variant = request.form.get("variant", "")
    unchanged = f"{shorten(user_text.strip())} already gets {shorten(variant)}."
    _change(store.set_user_override, name, user_text, variant, unchanged=unchanged)
    return _back(name)


@bp.post("/flags/<name>/users/remove")
def remove_user_override(name: str) -> Response:
    """Remove one user's override (stale ones too)."""
    user_id = request.form.get("user_id", "")
    _change(store.clear_user_override, name, user_id, unchanged="That user has no override.")
    return _back(name)


# --- Helpers ------------------------------------------------------------------------------------------------


def _config_map() -> Mapping[str, Any]:
    return gatekeeper.get_state().config_map


def _config_or_404(name: str) -> Any:
    config = _config_map().get(name)
    if config is None:
        abort(404)
    return config


def _matches(query: str, name: str, config: Any) -> bool:
    needle = query.lower()
    return not needle or needle in name.lower() or needle in str(getattr(config, "DESCRIPTION", "")).lower()


def _flag_row(
    name: str, config: Any, snapshot: Snapshot, stale_count: int, last_change: AuditEntry | None
) -> FlagRow:
    return FlagRow(
        name=name,
        description=str(getattr(config, "DESCRIPTION", "") or ""),
        variants=config.get_variants(),
        default=config.default_variant,
        evaluation=request.gk.explain(name),
        forced=snapshot.forced.get(name),
        override_count=len(snapshot.user_overrides.get(name, ())),
        stale_count=stale_count,
        last_change=last_change,
    )


def _last_changes() -> dict[str, AuditEntry]:
    try:
        return store.last_changes()
    except StoreError:
        return {}


def _actor() -> str:
    """Who the audit log names for a change made here: the admin's email, or their id."""
    return getattr(current_user, "email", None) or f"user {current_user.get_id()}"


def _change(operation: Any, *args: str, unchanged: str) -> None:
    try:
        entry = operation(*args, actor=_actor())
    except StoreError as exc:
        flash(shorten(str(exc), FLASH_LENGTH), "error")
    else:
        flash(entry.summary if entry else f"{unchanged} Nothing changed.", "success" if entry else "info")


def _back(name: str) -> Response:
    return redirect(url_for(".flag", name=name))
