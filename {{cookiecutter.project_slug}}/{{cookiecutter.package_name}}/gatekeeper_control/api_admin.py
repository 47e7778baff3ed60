"""The admin API beyond single flags: groups, segments, schedules, the audit log and undo, the user look-up,
and export and import (transfer.py's format).

Like api_flags.py, every change goes through the store function the dashboard uses, as `token:NAME`.
"""

from __future__ import annotations

from typing import Any

from . import user_lookup
from .api import Problem, actor, operation
from .api_flags import change_json, entry_json, schedule_json
from .api_schemas import AUDIT_QUERY, EXPORT_QUERY, FLAG_QUERY, IMPORT_QUERY, REASON_QUERY
from .checks import current_config_map
from .engine import gatekeeper
from .errors import UnknownGroupError, UnknownUserError
from .schedules import scheduler
from .segments import segments
from .store import store
from .targeting import code_groups, targeting
from .transfer import apply_state, export_state

MAX_AUDIT_PER_PAGE = 200
WRITE = {"scope": "write", "response": "Change"}

# --- Groups -------------------------------------------------------------------------------------------------


def _group_json(name: str, snapshot: Any, *, members: bool) -> dict[str, Any]:
    in_code = code_groups()
    if name in snapshot.groups:
        stored = snapshot.group_members.get(name, {})
        group = {
            "name": name,
            "description": snapshot.groups[name],
            "source": "stored",
            "member_count": len(stored),
        }
        if members:
            group["members"] = [
                {"user_id": user_id, "label": label} for user_id, label in sorted(stored.items())
            ]
        return group
    return {
        "name": name,
        "description": in_code[name].description or "",
        "source": "code",
        "member_count": None,
    }


@operation("GET", "/groups", summary="Every group, stored or in code", response="GroupList")
def list_groups() -> dict[str, Any]:
    snapshot = store.snapshot(max_age=0)
    names = sorted(set(snapshot.groups) | set(code_groups()))
    return {"groups": [_group_json(name, snapshot, members=False) for name in names]}


@operation("GET", "/groups/{group}", summary="One group, with its members", response="Group")
def get_group(group: str) -> dict[str, Any]:
    snapshot = store.snapshot(max_age=0)
    if group not in snapshot.groups and group not in code_groups():
        raise UnknownGroupError(f"No group {group}: `GET .../groups` lists them.")
    return _group_json(group, snapshot, members=True)


@operation("POST", "/groups", summary="Create a group", body="GroupBody", status=201, **WRITE)
def create_group(body: dict[str, Any]) -> dict[str, Any]:
    if body["name"] in store.snapshot(max_age=0).groups:
        raise Problem(409, f"Group {body['name']} exists already; nothing changed.")
    entry = targeting.create_group(
        body["name"], body.get("description", ""), actor(), reason=body.get("reason")
    )
    return change_json(entry, f"Group {body['name']} exists already; nothing changed.")


@operation("PATCH", "/groups/{group}", summary="Describe a group", body="DescriptionBody", **WRITE)
def describe_group(group: str, body: dict[str, Any]) -> dict[str, Any]:
    entry = targeting.describe_group(group, body["description"], actor(), reason=body.get("reason"))
    return change_json(entry, f"Group {group} has this description already; nothing changed.")


@operation(
    "DELETE",
    "/groups/{group}",
    summary="Delete a group (only an empty one that no flag targets: 409 otherwise)",
    query=REASON_QUERY,
    **WRITE,
)
def delete_group(group: str, query: dict[str, Any]) -> dict[str, Any]:
    entry = targeting.delete_group(group, actor(), reason=query.get("reason"))
    return change_json(entry, "")


@operation(
    "POST",
    "/groups/{group}/members",
    summary="Add users (emails or ids) to a group",
    body="MembersBody",
    **WRITE,
)
def add_members(group: str, body: dict[str, Any]) -> dict[str, Any]:
    entry = targeting.add_members(group, body["users"], actor(), reason=body.get("reason"))
    return change_json(entry, f"They are all in {group} already; nothing changed.")


@operation(
    "DELETE",
    "/groups/{group}/members/{user}",
    summary="Remove a user from a group",
    query=REASON_QUERY,
    **WRITE,
)
def remove_member(group: str, user: str, query: dict[str, Any]) -> dict[str, Any]:
    entry = targeting.remove_members(group, [user], actor(), reason=query.get("reason"))
    return change_json(entry, f"{user} is not in {group}; nothing changed.")


# --- Segments -----------------------------------------------------------------------------------------------


def _segment_json(name: str, segment: Any) -> dict[str, Any]:
    return {
        "name": name,
        "description": segment.description or "",
        "conditions": [
            {"attribute": c.attribute, "operator": c.operator, "value": c.value} for c in segment.conditions
        ],
    }


@operation("GET", "/segments", summary="Every segment and its conditions", response="SegmentList")
def list_segments() -> dict[str, Any]:
    stored = store.snapshot(max_age=0).segments
    return {"segments": [_segment_json(name, stored[name]) for name in sorted(stored)]}


@operation("GET", "/segments/{segment}", summary="One segment", response="Segment")
def get_segment(segment: str) -> dict[str, Any]:
    stored = store.snapshot(max_age=0).segments
    if segment not in stored:
        raise UnknownGroupError(f"No segment {segment}: `GET .../segments` lists them.")
    return _segment_json(segment, stored[segment])


@operation("POST", "/segments", summary="Create a segment", body="SegmentBody", status=201, **WRITE)
def create_segment(body: dict[str, Any]) -> dict[str, Any]:
    if body["name"] in store.snapshot(max_age=0).segments:
        raise Problem(409, f"Segment {body['name']} exists already; nothing changed.")
    entry = segments.create(body["name"], body.get("description", ""), actor(), reason=body.get("reason"))
    return change_json(entry, f"Segment {body['name']} exists already; nothing changed.")


@operation("DELETE", "/segments/{segment}", summary="Delete a segment", query=REASON_QUERY, **WRITE)
def delete_segment(segment: str, query: dict[str, Any]) -> dict[str, Any]:
    entry = segments.delete(segment, actor(), reason=query.get("reason"))
    return change_json(entry, f"There is no segment {segment}; nothing changed.")


@operation("POST", "/segments/{segment}/conditions", summary="Add a condition", body="ConditionBody", **WRITE)
def add_condition(segment: str, body: dict[str, Any]) -> dict[str, Any]:
    entry = segments.add_condition(
        segment, body["attribute"], body["operator"], body.get("value"), actor(), reason=body.get("reason")
    )
    return change_json(entry, "")


@operation(
    "DELETE",
    "/segments/{segment}/conditions/{number}",
    summary="Remove the Nth condition (from 1)",
    query=REASON_QUERY,
    **WRITE,
)
def remove_condition(segment: str, number: str, query: dict[str, Any]) -> dict[str, Any]:
    if not number.isdigit() or len(number) > 6:
        raise Problem(404, f"{number[:20]!r} is not a condition's number.")
    entry = segments.remove_condition(segment, int(number), actor(), reason=query.get("reason"))
    return change_json(entry, "")


# --- Schedules, the audit log, undo, users ------------------------------------------------------------------


@operation(
    "GET",
    "/schedules",
    summary="Pending changes, then the 50 most recently done",
    response="ScheduleList",
    query=FLAG_QUERY,
)
def list_schedules(query: dict[str, Any]) -> dict[str, Any]:
    return {"schedules": [schedule_json(change) for change in scheduler.schedules(query.get("flag"))]}


@operation(
    "GET",
    "/audit",
    summary="The audit log, newest first, paged and filtered",
    response="AuditPage",
    query=AUDIT_QUERY,
)
def audit_log(query: dict[str, Any]) -> dict[str, Any]:
    per_page = min(MAX_AUDIT_PER_PAGE, max(1, int(query.get("per_page") or 50)))
    page = store.audit_entries(
        int(query.get("page") or 1),
        per_page,
        query.get("flag") or None,
        actor=query.get("actor") or None,
        action=query.get("action") or None,
    )
    return {
        "entries": [entry_json(entry) for entry in page.entries],
        "page": page.page,
        "per_page": page.per_page,
        "pages": page.pages,
        "total": page.total,
    }


@operation(
    "POST",
    "/audit/{entry_id}/undo",
    summary="Undo a change (a new, audited change)",
    body="ReasonBody",
    **WRITE,
)
def undo(entry_id: str, body: dict[str, Any]) -> dict[str, Any]:
    if not entry_id.isdigit() or len(entry_id) > 18:
        raise Problem(404, f"{entry_id[:20]!r} is not a change's number.")
    if store.audit_entry(int(entry_id)) is None:
        raise Problem(404, f"There is no change #{entry_id}.")
    entry = store.undo(int(entry_id), actor(), reason=body.get("reason"))
    return change_json(entry, "It was so already; nothing changed.")


@operation(
    "GET",
    "/users/{user}",
    summary="What every flag gives a user (email or id), and why",
    response="UserFlags",
)
def user_flags(user: str) -> dict[str, Any]:
    found = user_lookup.find_user(user)
    if found is None:
        raise UnknownUserError(f"No user matches {user[:60]!r}: give the email or id of an existing user.")
    user_id = int(found.id) if str(found.id).isdigit() else found.id
    rows = []
    for flag in sorted(current_config_map()):
        evaluation = gatekeeper.Gatekeeper(user_id=user_id).explain(flag)
        rows.append(
            {
                "flag": flag,
                "variant": evaluation.variant,
                "reason": evaluation.reason,
                "detail": evaluation.detail,
            }
        )
    snapshot = store.snapshot()
    context = dict(gatekeeper.Gatekeeper(user_id=user_id).context)
    return {
        "user": {"id": str(found.id), "label": str(found.label)},
        "groups": sorted(snapshot.memberships.get(str(found.id), ())),
        "segments": segments.matching(context, snapshot),
        "flags": rows,
    }


# --- Export and import --------------------------------------------------------------------------------------


@operation(
    "GET",
    "/export",
    summary="All runtime state, as gatekeeper-state JSON",
    response="State",
    query=EXPORT_QUERY,
)
def export(query: dict[str, Any]) -> dict[str, Any]:
    flags = [name.strip() for name in (query.get("flags") or "").split(",") if name.strip()] or None
    return export_state(flags)


@operation(
    "POST",
    "/import",
    summary="Apply an export in one transaction (or ?dry_run=true)",
    body="State",
    query=IMPORT_QUERY,
    **{"scope": "write", "response": "ImportReport"},
)
def import_(body: dict[str, Any], query: dict[str, Any]) -> dict[str, Any]:
    report = apply_state(body, actor(), dry_run=query.get("dry_run") == "true")
    return report.as_json()
