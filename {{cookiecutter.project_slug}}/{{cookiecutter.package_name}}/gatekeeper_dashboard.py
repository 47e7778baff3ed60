"""The admin dashboard: every flag and why you get your variant; override it for you, one user, or everyone.

A blueprint (`gatekeeper`) with its own layout under `templates/gatekeeper/`, so it can be copied into
another app. Who may open it is the engine's `can_manage(user)` (default: a true `is_admin`), asked with
the engine's user hook, so it needs no particular login library. Every change is a POST answered by a
redirect and carries a signed CSRF token that the dashboard checks itself (Flask-WTF's when it is installed,
else its own), so the app needs no app-wide `CSRFProtect`, and works unchanged with one. Reads come from the
store's snapshot, so the pages keep working (and say so) when the database is down.
"""

from __future__ import annotations

import hmac
import secrets
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from . import gatekeeper
from .gatekeeper_store import (
    AuditEntry,
    Snapshot,
    StoreError,
    shorten,
    store,
    unchecked_user_note,
    undo_problem,
)
from .gatekeeper_targeting import code_weights, targeting

try:  # optional: with Flask-WTF installed, its tokens, so that an app's CSRFProtect accepts ours and v.v.
    from flask_wtf.csrf import generate_csrf as _wtf_generate_csrf
    from flask_wtf.csrf import validate_csrf as _wtf_validate_csrf
    from wtforms import ValidationError as _WTFValidationError
except ImportError:
    _wtf_generate_csrf = _wtf_validate_csrf = None

bp = Blueprint("gatekeeper", __name__)

AUDIT_PER_PAGE = 50
FLAG_AUDIT_ENTRIES = 20
# Flash messages live in the session cookie: what an admin typed is cut short so no cookie outgrows 4 KB.
FLASH_LENGTH = 300
# Where a flag's rule split comes from, as its bar's legend says.
SPLIT_IN_CODE, SPLIT_AT_RUNTIME = "weights in code", "weights set at runtime"


CSRF_FIELD = "csrf_token"
CSRF_MAX_AGE = 3600  # seconds a form stays valid, as Flask-WTF's default
_CSRF_SALT = "gatekeeper-dashboard-csrf"
_CSRF_SESSION_KEY = "gatekeeper_csrf"


@bp.before_request
def _require_admin() -> Response | None:
    """Anonymous visitors go to the app's login view (401 when it has none); others need `can_manage`."""
    gk = gatekeeper.current_gatekeeper()
    if gk.user_id is None:
        return _login_or_401()
    if not gatekeeper.get_state().can_manage(gk.user):
        abort(403)
    return None


@bp.before_request
def _check_csrf() -> None:
    """Every POST carries the token its form was given; nothing changes without it (400)."""
    if request.method != "POST" or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if g.get("csrf_valid"):  # the app's CSRFProtect checked this request already
        return
    problem = _csrf_problem(request.form.get(CSRF_FIELD, ""))
    if problem is not None:
        abort(400, description=f"{problem} Nothing was changed: reload the page and try again.")


@bp.errorhandler(403)
def _forbidden(error: Exception) -> tuple[str, int]:
    """The dashboard's own 403, in its layout: who may open it, how to become one, and a way back."""
    return render_template(
        "gatekeeper/403.html",
        can_create_admins="users" in current_app.cli.commands,
    ), 403


@bp.context_processor
def _store_status() -> dict[str, Any]:
    return {
        "store_available": store.available,
        "store_error": store.error,
        "store_loaded_at": store.snapshot().loaded_at,
        "store_checks_users": store.checks_users,
    }


@bp.context_processor
def _who() -> dict[str, str]:
    """The admin the layout names, as the audit log will."""
    return {"gatekeeper_user": _actor()}


@bp.context_processor
def _csrf_token_function() -> dict[str, Callable[[], str]]:
    """`csrf_token()` for the dashboard's forms, unless the app already provides one (Flask-WTF's)."""
    if "csrf_token" in current_app.jinja_env.globals:
        return {}
    return {"csrf_token": _csrf_token}


def _login_or_401() -> Response:
    """The app's login view with `next`: GATEKEEPER_LOGIN_VIEW (an endpoint), else Flask-Login's."""
    login_view = current_app.config.get("GATEKEEPER_LOGIN_VIEW")
    if login_view:
        return redirect(url_for(login_view, next=request.full_path.rstrip("?")))
    login_manager = getattr(current_app, "login_manager", None)
    if login_manager is not None:
        return login_manager.unauthorized()
    abort(401)


def _csrf_token() -> str:
    """A signed token bound to this session: Flask-WTF's when installed, else the dashboard's own."""
    if _wtf_generate_csrf is not None:
        return _wtf_generate_csrf()
    if _CSRF_SESSION_KEY not in session:
        session[_CSRF_SESSION_KEY] = secrets.token_hex(20)
    return _csrf_serializer().dumps(session[_CSRF_SESSION_KEY])


def _csrf_problem(token: str) -> str | None:
    """What is wrong with a form's CSRF token, in a sentence; None when it is valid for this session."""
    if _wtf_validate_csrf is not None:
        try:
            _wtf_validate_csrf(token)
        except _WTFValidationError as error:
            return str(error)
        return None
    if not token:
        return "The CSRF token is missing."
    expected = session.get(_CSRF_SESSION_KEY)
    try:
        value = _csrf_serializer().loads(token, max_age=CSRF_MAX_AGE)
    except SignatureExpired:
        return "The CSRF token has expired."
    except BadData:
        return "The CSRF token is invalid."
    if not (isinstance(expected, str) and isinstance(value, str) and hmac.compare_digest(value, expected)):
        return "The CSRF token does not belong to this session."
    return None


def _csrf_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_CSRF_SALT)


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
    split: dict[str, float] | None = None  # the rule's share per variant, in percent (see rule_split)
    split_source: str = SPLIT_IN_CODE

    @property
    def states(self) -> set[str]:
        """Which of the list's state filters this flag is in."""
        states = set()
        if self.forced:
            states.add("forced")
        if self.override_count:
            states.add("overridden")
        if self.stale_count:
            states.add("stale")
        if not self.forced and self.split and sum(1 for share in self.split.values() if share > 0) > 1:
            states.add("rolling_out")
        return states


FLAG_STATES = {"forced": "Forced", "overridden": "Overridden", "stale": "Stale", "rolling_out": "Rolling out"}
FLAG_SORTS = {"name": "Name", "changed": "Last change"}


@bp.get("/")
def index() -> str:
    """The flag list, filtered server-side by `?q=` (the page's script filters as you type) and `?state=`,
    sorted by `?sort=name|changed`, and `?density=compact` to fit many flags on a screen: all linkable."""
    query = request.args.get("q", "").strip()
    state = request.args.get("state", "") if request.args.get("state") in FLAG_STATES else ""
    sort = request.args.get("sort", "") if request.args.get("sort") in FLAG_SORTS else ""
    compact = request.args.get("density") == "compact"
    snapshot = store.snapshot(max_age=0)
    config_map = _config_map()
    stale = store.stale_overrides(snapshot, config_map)
    stale_counts = Counter(item.flag for item in stale)
    last_changes = _last_changes()
    every_row = [
        _flag_row(name, config, snapshot, stale_counts[name], last_changes.get(name))
        for name, config in sorted(config_map.items())
        if _matches(query, name, config)
    ]
    state_counts = Counter(item for row in every_row for item in row.states)
    rows = [row for row in every_row if not state or state in row.states]
    if sort == "changed":  # newest change first; flags never changed last, by name
        rows.sort(key=lambda row: row.last_change.id if row.last_change else 0, reverse=True)
    params = {"q": query, "state": state, "sort": sort, "density": "compact" if compact else ""}
    return render_template(
        "gatekeeper/index.html",
        rows=rows,
        query=query,
        total=len(config_map),
        stale=stale,
        stale_targeting=targeting.stale(snapshot),
        state=state,
        sort=sort or "name",
        compact=compact,
        params={key: value for key, value in params.items() if value},
        list_url=lambda **changes: url_for(
            ".index", **{key: value for key, value in {**params, **changes}.items() if value}
        ),
        flag_states=FLAG_STATES,
        flag_sorts=FLAG_SORTS,
        state_counts=state_counts,
    )


@bp.get("/flags/<name>")
def flag(name: str) -> str:
    """One flag: my browser override, the forced variant, per-user overrides, and its recent changes."""
    config = _config_map().get(name)
    snapshot = store.snapshot(max_age=0)
    stale = [item for item in store.stale_overrides(snapshot) if item.flag == name]
    stale_targeting = [item for item in targeting.stale(snapshot) if item.flag == name]
    if config is None and not stale and not stale_targeting:
        abort(404)
    stale_users = {item.user_id for item in stale if item.user_id is not None}
    browser_override = request.gk.get_browser_override_variants().get(name)
    my_id = _my_user_id()
    user_overrides = []
    for user_id, variant in sorted(snapshot.user_overrides.get(name, {}).items()):
        steps = _active_steps(name, config, snapshot, user_id, browser_override if user_id == my_id else None)
        shadow = shadowed_by("user_override", steps)
        user_overrides.append(
            {
                "id": user_id,
                "label": snapshot.user_labels.get(user_id, user_id),
                "variant": variant,
                "stale": user_id in stale_users,
                "shadowed_by": shadow if "user_override" in steps else None,
                "gets": _winning_variant(steps) if "user_override" in steps else None,
            }
        )
    evaluation = request.gk.explain(name) if config else None
    try:
        audit = store.audit_entries(page=1, per_page=FLAG_AUDIT_ENTRIES, flag=name)
    except StoreError:
        audit = None
    return render_template(
        "gatekeeper/flag.html",
        name=name,
        flag_config=config,
        variants=config.get_variants() if config else [],
        evaluation=evaluation,
        browser_override=browser_override,
        forced=snapshot.forced.get(name),
        evaluation_order=(
            _evaluation_order(name, config, snapshot, my_id, browser_override, evaluation) if config else []
        ),
        code_overrides=_code_overrides(name, config, snapshot, my_id, browser_override) if config else [],
        forced_stale=any(item.user_id is None for item in stale),
        ignored_when_forced=_overrides_a_force_ignores(name, config, snapshot),
        split=rule_split(config, _stored_weights(name, config, snapshot)) if config else None,
        split_source=_split_source(name, config, snapshot),
        user_overrides=user_overrides,
        audit=audit,
        **_targeting_context(name, config, snapshot, stale_targeting),
    )


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
    page = request.args.get("page", 1, type=int)
    try:
        entries = store.audit_entries(page=page, per_page=AUDIT_PER_PAGE, **filters)
        actors = store.audit_actors()
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
        flags=sorted(_config_map()),
        action_names=AUDIT_ACTION_NAMES,
        undoable=undoable,
    )


@bp.post("/audit/<int:entry_id>/undo")
def undo(entry_id: int) -> Response:
    """Undo one change with a new, audited change that restores what it replaced."""
    try:
        entry = store.undo(entry_id, _actor(), reason=form_reason())
    except StoreError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Undone: {entry.summary}" if entry else "Nothing to undo.", "success" if entry else "info")
    filters = {key: request.form.get(key) for key in AUDIT_FILTERS if request.form.get(key)}
    return redirect(url_for(".audit", **filters))


# --- Changes: POST, then back to the flag page --------------------------------------------------------------


@bp.post("/flags/<name>/browser-override")
def set_browser_override(name: str) -> Response:
    """Set or clear (empty variant) this browser's own override: a signed cookie, never stored or audited."""
    config = _config_or_404(name)
    variant = request.form.get("variant", "")
    if variant and variant not in config.get_variants():
        _flash(f"{name} has no variant {shorten(variant)!r}; nothing changed.", "error")
        return _back(name)
    if variant:
        _flash(f"{name}: this browser now gets {variant}.", "success")
    else:
        _flash(f"{name}: your browser override is cleared.", "success")
    return config.set_browser_override_variant(request, variant, response=_back(name))


@bp.post("/flags/<name>/force")
def force(name: str) -> Response:
    """Serve one variant to everyone; needs the confirmation box ticked."""
    _config_or_404(name)
    variant = request.form.get("variant", "")
    if not request.form.get("confirm"):
        _flash(
            f"Tick the confirmation box to force {shorten(variant) or 'a variant'}; nothing changed.", "error"
        )
    else:
        _change(store.force, name, variant, unchanged=f"{name} is already forced to {variant}.")
    return _back(name)


@bp.post("/flags/<name>/unforce")
def unforce(name: str) -> Response:
    """Stop forcing; needs the confirmation box ticked. Also clears a stale forced variant."""
    if not request.form.get("confirm"):
        _flash(f"Tick the confirmation box to stop forcing {shorten(name)}; nothing changed.", "error")
    else:
        _change(store.unforce, name, unchanged=f"{shorten(name)} was not forced.")
    return _back(name)


@bp.post("/flags/<name>/users")
def add_user_override(name: str) -> Response:
    """Pin one user, named by email or id, to a variant."""
    _config_or_404(name)
    user_text = request.form.get("user", "")
    variant = request.form.get("variant", "")
    unchecked = "" if store.checks_users else " " + unchecked_user_note(user_text)
    unchanged = f"{shorten(user_text.strip())} already gets {shorten(variant)}."
    _change(store.set_user_override, name, user_text, variant, unchanged=unchanged, note=unchecked)
    return _back(name)


@bp.post("/flags/<name>/users/remove")
def remove_user_override(name: str) -> Response:
    """Remove one user's override (stale ones too)."""
    user_id = request.form.get("user_id", "")
    _change(store.clear_user_override, name, user_id, unchanged="That user has no override.")
    return _back(name)


# --- Helpers ------------------------------------------------------------------------------------------------


def _undoable(entries: list[AuditEntry]) -> set[int]:
    """The ids of the entries on a page that an undo can restore now (raises StoreError)."""
    snapshot = store.snapshot(max_age=0)
    candidates = [entry for entry in entries if undo_problem(entry, snapshot) is None]
    return store.newest_of_their_kind(candidates) if candidates else set()


@bp.app_template_global("gatekeeper_relative_time")
def relative_time(moment: datetime, now: datetime | None = None) -> str:
    """How long ago `moment` was, in a few words ("just now", "3 min ago", "2 h ago", "5 days ago")."""
    seconds = int(((now or datetime.now(UTC)) - moment).total_seconds())
    if seconds < 10:
        return "just now"
    for size, unit in ((86400, " days"), (3600, " h"), (60, " min")):
        if seconds >= size:
            count = seconds // size
            return f"{count}{' day' if unit == ' days' and count == 1 else unit} ago"
    return f"{seconds} s ago"


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
        split=rule_split(config, _stored_weights(name, config, snapshot)),
        split_source=_split_source(name, config, snapshot),
    )


def _last_changes() -> dict[str, AuditEntry]:
    try:
        return store.last_changes()
    except StoreError:
        return {}


def _actor() -> str:
    """Who the audit log names for a change made here: the admin's email or name, or their id."""
    gk = gatekeeper.current_gatekeeper()
    for field in ("email", "username", "name"):
        value = gatekeeper.user_attribute(gk.user, field)
        if isinstance(value, str) and value:
            return value
    return f"user {gk.user_id}"


REASON_FIELD = "reason"


def form_reason() -> str | None:
    """The optional "Reason" a change form posted; every audited write takes it as `reason=`."""
    return request.form.get(REASON_FIELD) or None


def _change(operation: Any, *args: str, unchanged: str, note: str = "") -> None:
    try:
        entry = operation(*args, actor=_actor(), reason=form_reason())
    except StoreError as exc:
        _flash(str(exc), "error")
    else:
        message = entry.summary + note if entry else f"{unchanged} Nothing changed."
        _flash(message, "success" if entry else "info")


def _flash(message: str, category: str) -> None:
    """Flash `message`, cut to FLASH_LENGTH: it rides in the session cookie, and may quote what was typed."""
    flash(shorten(message, FLASH_LENGTH), category)


def _back(name: str) -> Response:
    return redirect(url_for(".flag", name=name))


# --- Runtime targeting: weights, group targets, schedules, groups, user look-up -----------------------------


def _targeting_context(name: str, config: Any, snapshot: Snapshot, stale: list[Any]) -> dict[str, Any]:
    """What the flag page shows about weights, group targets and scheduled changes."""
    stored = snapshot.weights.get(name)
    try:
        schedules = targeting.schedules(name)
    except StoreError:
        schedules = None
    code_groups = gatekeeper.get_state().groups
    return {
        "weights": dict(stored) if stored else (code_weights(config) if config else None),
        "weights_stored": stored is not None,
        "weights_set": snapshot.weights_set.get(name),
        "weights_stale": any(item.kind == "weights" for item in stale),
        "group_targets": [
            {"group": group, "variant": variant, "stale": any(item.name == group for item in stale)}
            for group, variant in snapshot.group_targets.get(name, ())
        ],
        "group_names": sorted({*snapshot.groups, *code_groups}),
        "schedules": schedules,
        "schedule_actions": ["force", "unforce", "rollout", "clear-rollout", "target", "untarget"],
    }


def _form_weights(config: Any) -> dict[str, str]:
    """The weights typed in the flag page's form (one box per variant; an empty box counts as 0)."""
    return {
        variant: (request.form.get(f"weight-{variant}", "").strip() or "0")
        for variant in config.get_variants()
    }


@bp.post("/flags/<name>/rollout")
def set_rollout(name: str) -> Response | str:
    """Save new weights; when they would move units between experiment arms, ask to confirm first."""
    config = _config_or_404(name)
    weights = _form_weights(config)
    if not request.form.get("confirm_moves"):
        try:
            moves = targeting.weights_moves(name, weights)
        except StoreError as exc:
            _flash(str(exc), "error")
            return _back(name)
        if moves:
            return render_template(
                "gatekeeper/rollout_confirm.html",
                name=name,
                weights=weights,
                moves=moves,
                reason=form_reason(),
            )
    _change(targeting.set_weights, name, weights, unchanged=f"{name} already has these weights.")
    return _back(name)


@bp.post("/flags/<name>/rollout/clear")
def clear_rollout(name: str) -> Response:
    """Go back to the weights in code (stale stored weights too)."""
    _change(targeting.clear_weights, name, unchanged=f"{shorten(name)} has no stored weights.")
    return _back(name)


@bp.post("/flags/<name>/targets")
def add_target(name: str) -> Response:
    """Serve a variant to a group."""
    _config_or_404(name)
    group, variant = request.form.get("group", ""), request.form.get("variant", "")
    _change(targeting.target, name, group, variant, unchanged=f"{shorten(group)} already gets {variant}.")
    return _back(name)


@bp.post("/flags/<name>/targets/remove")
def remove_target(name: str) -> Response:
    """Stop targeting a group (stale targets too)."""
    group = request.form.get("group", "")
    _change(targeting.untarget, name, group, unchanged=f"{shorten(group)} was not targeted.")
    return _back(name)


@bp.post("/flags/<name>/schedules")
def add_schedule(name: str) -> Response:
    """Schedule a change: WHEN (ISO 8601 or +30m, +2h, +1d), an action and its arguments."""
    _config_or_404(name)
    when, action = request.form.get("when", ""), request.form.get("action", "")
    arguments = request.form.get("arguments", "").split()
    try:
        entry = targeting.schedule(name, when, action, arguments, actor=_actor(), reason=form_reason())
    except StoreError as exc:
        _flash(str(exc), "error")
    else:
        _flash(entry.summary, "success")
    return _back(name)


@bp.post("/flags/<name>/schedules/<int:schedule_id>/cancel")
def cancel_schedule(name: str, schedule_id: int) -> Response:
    """Cancel a pending change."""
    _change(targeting.cancel, schedule_id, unchanged=f"#{schedule_id} is not pending.")
    return _back(name)


@bp.get("/groups")
def groups() -> str:
    """Every group: stored ones (editable) and those defined in code (read-only)."""
    snapshot = store.snapshot(max_age=0)
    stored = [
        {"name": name, "description": description, "members": len(snapshot.group_members.get(name, {}))}
        for name, description in sorted(snapshot.groups.items())
    ]
    code = sorted(gatekeeper.get_state().groups.values())
    return render_template(
        "gatekeeper/groups.html", stored=stored, code=code, targets=_targets_by_group(snapshot)
    )


@bp.get("/groups/<name>")
def group(name: str) -> str:
    """One stored group: its description and members, to fill and empty; or a code group, read-only."""
    snapshot = store.snapshot(max_age=0)
    code_group = gatekeeper.get_state().groups.get(name)
    if name not in snapshot.groups and code_group is None:
        abort(404)
    members = sorted(snapshot.group_members.get(name, {}).items(), key=lambda item: item[1])
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
    _change(targeting.create_group, name, request.form.get("description", ""), unchanged="")
    if name.strip() in store.snapshot().groups:
        return redirect(url_for(".group", name=name.strip()))
    return redirect(url_for(".groups"))


@bp.post("/groups/<name>/describe")
def describe_group(name: str) -> Response:
    description = request.form.get("description", "")
    _change(targeting.describe_group, name, description, unchanged="The description is unchanged.")
    return _back_to_group(name)


@bp.post("/groups/<name>/members")
def add_members(name: str) -> Response:
    """Add members: emails or ids, separated by spaces, commas or new lines."""
    users = request.form.get("users", "").replace(",", " ").split()
    _change(targeting.add_members, name, users, unchanged="They are all members already.")
    return _back_to_group(name)


@bp.post("/groups/<name>/members/remove")
def remove_members(name: str) -> Response:
    users = request.form.getlist("user_id") or request.form.get("users", "").replace(",", " ").split()
    _change(targeting.remove_members, name, users, unchanged="None of them is a member.")
    return _back_to_group(name)


@bp.get("/users")
def users() -> str:
    """Look up a user by email or id: every flag's variant for them and why (browser overrides aside)."""
    query = request.args.get("q", "").strip()
    found, rows, error = None, [], None
    if query:
        try:
            found = store.find_user(query)
        except StoreError as exc:
            error = str(exc)
        if found is not None:
            for flag_name in sorted(_config_map()):
                user_id = int(found.id) if str(found.id).isdigit() else found.id
                evaluation = gatekeeper.Gatekeeper(user_id=user_id).explain(flag_name)
                rows.append(evaluation)
            groups_of = sorted(store.snapshot().memberships.get(str(found.id), ()))
        elif error is None:
            error = f"No user matches {shorten(query)!r}: enter the email or id of an existing user."
    return render_template(
        "gatekeeper/users.html",
        query=query,
        found=found,
        rows=rows,
        error=error,
        groups_of=groups_of if found is not None else [],
    )


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


# --- Who sees what: the engine's evaluation order, and which steps a higher one shadows ---------------------

# The engine's steps, highest first: (step, how the dashboard names it when it shadows a lower step). One more
# engine step is one more entry here, in its place; everything below walks this list.
EVALUATION_ORDER: tuple[tuple[str, str], ...] = (
    ("browser_override", "this browser's override"),
    ("forced", "forced for everyone"),
    ("user_override", "a stored user override"),
    ("code_override", "an override in code"),
    ("group_target", "a group target"),
    ("rule", "the rule"),
    ("default", "the default"),
)
_STEP_LABELS = dict(EVALUATION_ORDER)
_STEP_TITLES = {
    "browser_override": "This browser's override",
    "forced": "Forced for everyone",
    "user_override": "Stored user override",
    "code_override": "Override in code",
    "group_target": "Group target",
    "rule": "The rule",
    "default": "The default",
}


def shadowed_by(step: str, active: Mapping[str, str | None]) -> str | None:
    """How the dashboard names the first step above `step` that is active (``"forced for everyone"``), or
    None when nothing above it is: what `step` says is then what the user gets."""
    if step not in _STEP_LABELS:
        raise ValueError(f"{step!r} is not a step of EVALUATION_ORDER")
    for name, label in EVALUATION_ORDER:
        if name == step:
            return None
        if name in active:
            return label
    return None  # pragma: no cover: step is in the list


def _winning_variant(active: Mapping[str, str | None]) -> str | None:
    """The variant of the highest active step (None for the rule, whose answer depends on the request)."""
    for name, _label in EVALUATION_ORDER:
        if name in active:
            return active[name]
    return None


def _active_steps(
    flag: str, config: Any, snapshot: Snapshot, user_id: str | None, browser: str | None
) -> dict[str, str | None]:
    """The steps that would answer `flag` for `user_id`, with their variant, as the engine walks them.

    Stale stored values (not a variant of the flag) are skipped, as the engine skips them; the rule and the
    default are always there, the rule first (None: its answer depends on the user and request).
    """
    variants = set(config.get_variants()) if config else set()
    active: dict[str, str | None] = {}
    if browser in variants:
        active["browser_override"] = browser
    forced = snapshot.forced.get(flag)
    if forced in variants:
        active["forced"] = forced
    stored = snapshot.user_overrides.get(flag, {}).get(str(user_id)) if user_id is not None else None
    if stored in variants:
        active["user_override"] = stored
    in_code = _code_override_index(config).get(str(user_id)) if user_id is not None else None
    if in_code is not None:
        active["code_override"] = in_code
    target = (
        gatekeeper.group_target_of(gatekeeper.current_gatekeeper(), flag, user_id, snapshot)
        if config
        else None
    )
    if target is not None:
        active["group_target"] = target.variant
    active["rule"] = None
    active["default"] = config.default_variant if config else None
    return active


def _code_override_index(config: Any) -> dict[str, str]:
    """`overrides=` in code, as user id -> variant."""
    return {
        str(user_id): variant
        for variant, user_ids in ((getattr(config, "overrides", None) or {}).items())
        for user_id in user_ids
    }


def _evaluation_order(
    flag: str, config: Any, snapshot: Snapshot, user_id: str | None, browser: str | None, evaluation: Any
) -> list[dict[str, Any]]:
    """Each step for the signed-in admin: whether it is set, its variant, and what shadows it."""
    active = _active_steps(flag, config, snapshot, user_id, browser)
    if evaluation is not None and evaluation.reason == gatekeeper.DEFAULT:
        del active["rule"]  # the rule raised or gave no variant: the default answered
    elif evaluation is not None and evaluation.reason == gatekeeper.RULE:
        active["rule"] = evaluation.variant
    return [
        {
            "step": step,
            "title": _STEP_TITLES[step],
            "set": step in active,
            "variant": active.get(step),
            "shadowed_by": shadowed_by(step, active) if step in active else None,
        }
        for step, _label in EVALUATION_ORDER
    ]


def _code_overrides(
    flag: str, config: Any, snapshot: Snapshot, my_id: str | None, browser: str | None
) -> list[dict[str, Any]]:
    """The overrides in code, one per user, each with what shadows it (a forced or stored variant)."""
    rows = []
    for user_id, variant in _code_override_index(config).items():
        active = _active_steps(flag, config, snapshot, user_id, browser if user_id == my_id else None)
        rows.append({"id": user_id, "variant": variant, "shadowed_by": shadowed_by("code_override", active)})
    return rows


def _my_user_id() -> str | None:
    user_id = gatekeeper.current_gatekeeper().user_id
    return None if user_id is None else str(user_id)


def _overrides_a_force_ignores(flag: str, config: Any, snapshot: Snapshot) -> int:
    """How many overrides (stored and in code) forcing `flag` would put aside: the impact, in a number."""
    if config is None:
        return 0
    variants = set(config.get_variants())
    stored = {user for user, variant in snapshot.user_overrides.get(flag, {}).items() if variant in variants}
    return len(stored | set(_code_override_index(config)))


def rule_split(config: Any, stored: Mapping[str, float] | None = None) -> dict[str, float] | None:
    """Each variant's share of the rule, in percent: the weights stored at runtime when given, else the
    config's rollout weights (``ROLLOUT``); None when the flag has none, or they are not numbers that add up
    to more than 0."""
    weights = stored if stored else getattr(config, "ROLLOUT", None)
    if not isinstance(weights, Mapping) or not weights:
        return None
    try:
        shares = {str(variant): float(weight) for variant, weight in weights.items()}
    except (TypeError, ValueError):
        return None
    total = sum(shares.values())
    if total <= 0 or any(share < 0 for share in shares.values()):
        return None
    return {variant: share * 100 / total for variant, share in shares.items()}


def _stored_weights(name: str, config: Any, snapshot: Snapshot) -> Mapping[str, float] | None:
    """The weights stored for `name`, unless stale (naming a variant the flag lost): what the engine uses."""
    stored = snapshot.weights.get(name)
    return stored if stored and set(stored) <= set(config.get_variants()) else None


def _split_source(name: str, config: Any, snapshot: Snapshot) -> str:
    stored = config is not None and _stored_weights(name, config, snapshot)
    return SPLIT_AT_RUNTIME if stored else SPLIT_IN_CODE
