"""The admin API's flag operations: each flag with everything stored for it, and every change to a flag.

Each change calls the same store function the dashboard's view calls (store.py, targeting.py, values.py,
prerequisites.py, schedules.py), with the token's name as the actor and the body's optional `reason`; the
answer is a `Change`: whether anything was written, the sentence the dashboard would flash, and the audit
entry. Unknown flags answer 404 (removing something works for flags the code no longer has, as on the
dashboard), values the store refuses 422, conflicts 409.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import user_lookup
from .api import Problem, actor, operation
from .api_schemas import REASON_QUERY
from .audit import AuditEntry
from .checks import current_config_map
from .errors import StoreUnavailableError, UnknownFlagError
from .exposures import exposures
from .prerequisites import prerequisites
from .schedules import ScheduledChange, scheduler
from .snapshot import DATABASE_ERRORS, describe_error
from .store import store
from .targeting import code_weights, targeting
from .values import values

# --- Shapes -------------------------------------------------------------------------------------------------


def entry_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": _time(entry.at),
        "actor": entry.actor,
        "flag": entry.flag,
        "action": entry.action,
        "target": entry.target,
        "before": entry.before,
        "after": entry.after,
        "reason": entry.reason,
        "user_id": entry.user_id,
    }


def change_json(entry: AuditEntry | None, unchanged: str) -> dict[str, Any]:
    """What every change answers: written or not, a sentence, and the audit entry."""
    if entry is None:
        return {"changed": False, "message": unchanged, "change": None}
    return {"changed": True, "message": entry.summary, "change": entry_json(entry)}


def schedule_json(change: ScheduledChange) -> dict[str, Any]:
    return {
        "id": change.id,
        "flag": change.flag,
        "due_at": _time(change.due_at),
        "action": change.action,
        "argument": change.argument,
        "created_by": change.created_by,
        "state": change.state,
        "outcome": change.outcome,
    }


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _config(flag: str) -> Any:
    config = current_config_map().get(flag)
    if config is None:
        raise UnknownFlagError(f"No flag {flag}: `GET .../flags` lists them.")
    return config


def _summary(name: str, config: Any, snapshot: Any) -> dict[str, Any]:
    weights = snapshot.weights.get(name)
    return {
        "name": name,
        "description": config.DESCRIPTION or "",
        "variants": list(config.get_variants()),
        "default_variant": config.DEFAULT_VARIANT,
        "off": name in snapshot.disabled,
        "forced": snapshot.forced.get(name),
        "weights": dict(weights) if weights else None,
        "overrides": len(snapshot.user_overrides.get(name, {})),
        "targets": len(snapshot.group_targets.get(name, ())),
    }


# --- Reading ------------------------------------------------------------------------------------------------


@operation("GET", "/flags", summary="Every flag, with its state", response="FlagList")
def list_flags() -> dict[str, Any]:
    snapshot = store.snapshot(max_age=0)
    return {
        "flags": [_summary(name, config, snapshot) for name, config in sorted(current_config_map().items())]
    }


@operation("GET", "/flags/{flag}", summary="One flag, with everything stored for it", response="Flag")
def get_flag(flag: str) -> dict[str, Any]:
    config = _config(flag)
    snapshot = store.snapshot(max_age=0)
    summary = _summary(flag, config, snapshot)
    del summary["overrides"], summary["targets"]
    labels = snapshot.user_labels
    splits = snapshot.target_splits
    expires = config.expires
    return {
        **summary,
        "owner": getattr(config, "OWNER", None),
        "expires": expires.isoformat() if expires else None,
        "code_weights": code_weights(config),
        "values": dict(snapshot.values.get(flag, {})),
        "code_values": dict(config.values or {}),
        "overrides": [
            {"user_id": user_id, "label": labels.get(user_id, user_id), "variant": variant}
            for user_id, variant in sorted(snapshot.user_overrides.get(flag, {}).items())
        ],
        "targets": [
            {
                "group": group,
                "variant": variant,
                "split": dict(splits[(flag, group)]) if (flag, group) in splits else None,
            }
            for group, variant in snapshot.group_targets.get(flag, ())
        ],
        "prerequisites": [
            {"flag": p.flag, "variant": p.variant, "source": p.source, "stale": p.stale}
            for p in prerequisites.of(flag, config, snapshot)
        ],
        "schedules": [schedule_json(change) for change in scheduler.schedules(flag, pending_only=True)],
    }


@operation("GET", "/flags/{flag}/exposures", summary="Exposures per variant and hour", response="Exposures")
def flag_exposures(flag: str) -> dict[str, Any]:
    config = _config(flag)
    recorder = exposures.recorder()
    if recorder is None:
        raise Problem(404, "Exposures are not recorded in this app (GATEKEEPER_EXPOSURES is off).")
    try:
        report = recorder.report(flag, config, weights=store.snapshot().weights.get(flag))
    except DATABASE_ERRORS as exc:
        raise StoreUnavailableError(f"The exposures cannot be read: {describe_error(exc)}.") from exc
    return {
        "flag": flag,
        "hours": [_time(hour) for hour in report.hours],
        "series": {variant: list(counts) for variant, counts in report.series.items()},
        "shares": [
            {"variant": s.variant, "units": s.units, "share": s.share, "expected": s.expected}
            for s in report.shares
        ],
        "total": report.total,
        "p_value": report.p_value,
        "sample_ratio_mismatch": report.sample_ratio_mismatch,
    }


# --- Changing: the off switch, forcing, weights -------------------------------------------------------------

WRITE = {"scope": "write", "response": "Change"}


@operation(
    "PUT",
    "/flags/{flag}/off",
    summary="Switch a flag off (everyone gets its default)",
    body="ReasonBody",
    **WRITE,
)
def switch_off(flag: str, body: dict[str, Any]) -> dict[str, Any]:
    entry = store.switch_off(flag, actor(), reason=body.get("reason"))
    return change_json(entry, f"{flag} is already off; nothing changed.")


@operation("DELETE", "/flags/{flag}/off", summary="Switch a flag back on", query=REASON_QUERY, **WRITE)
def switch_on(flag: str, query: dict[str, Any]) -> dict[str, Any]:
    entry = store.switch_on(flag, actor(), reason=query.get("reason"))
    return change_json(entry, f"{flag} is not off; nothing changed.")


@operation(
    "PUT", "/flags/{flag}/forced", summary="Serve one variant to everyone", body="VariantBody", **WRITE
)
def force(flag: str, body: dict[str, Any]) -> dict[str, Any]:
    entry = store.force(flag, body["variant"], actor(), reason=body.get("reason"))
    return change_json(entry, f"{flag} is already forced to {body['variant']}; nothing changed.")


@operation("DELETE", "/flags/{flag}/forced", summary="Stop forcing a variant", query=REASON_QUERY, **WRITE)
def unforce(flag: str, query: dict[str, Any]) -> dict[str, Any]:
    entry = store.unforce(flag, actor(), reason=query.get("reason"))
    return change_json(entry, f"{flag} is not forced; nothing changed.")


@operation("PUT", "/flags/{flag}/weights", summary="Set the rollout's weights", body="WeightsBody", **WRITE)
def set_weights(flag: str, body: dict[str, Any]) -> dict[str, Any]:
    weights = {variant: str(percent) for variant, percent in body["weights"].items()}
    entry = targeting.set_weights(flag, weights, actor(), reason=body.get("reason"))
    return change_json(entry, f"{flag} already rolls out with these weights; nothing changed.")


@operation(
    "DELETE", "/flags/{flag}/weights", summary="Back to the weights in code", query=REASON_QUERY, **WRITE
)
def clear_weights(flag: str, query: dict[str, Any]) -> dict[str, Any]:
    entry = targeting.clear_weights(flag, actor(), reason=query.get("reason"))
    return change_json(entry, f"{flag} has no stored weights; nothing changed.")


# --- Values, user overrides, targets, prerequisites ---------------------------------------------------------


@operation(
    "PUT",
    "/flags/{flag}/values/{variant}",
    summary="Set the value a variant carries",
    body="ValueBody",
    **WRITE,
)
def set_value(flag: str, variant: str, body: dict[str, Any]) -> dict[str, Any]:
    # The dashboard takes `42` typed for a text flag as the text "42"; the API was sent a JSON value, whose
    # type is meant.
    config = _config(flag)
    text_flag = config.value_type == "string" and variant in config.get_variants()
    if text_flag and not isinstance(body["value"], str):
        raise Problem(
            422, f'{flag}\'s values are text: send a JSON string, e.g. "Welcome!". Nothing changed.'
        )
    entry = values.set_value(flag, variant, _as_text(body["value"]), actor(), reason=body.get("reason"))
    return change_json(entry, f"{flag} {variant} carries this value already; nothing changed.")


@operation(
    "DELETE",
    "/flags/{flag}/values/{variant}",
    summary="Back to the value in code",
    query=REASON_QUERY,
    **WRITE,
)
def clear_value(flag: str, variant: str, query: dict[str, Any]) -> dict[str, Any]:
    entry = values.clear_value(flag, variant, actor(), reason=query.get("reason"))
    return change_json(entry, f"{flag} {variant} has no stored value; nothing changed.")


@operation(
    "PUT",
    "/flags/{flag}/overrides/{user}",
    summary="Pin a user (email or id) to a variant",
    body="VariantBody",
    **WRITE,
)
def set_override(flag: str, user: str, body: dict[str, Any]) -> dict[str, Any]:
    entry = store.set_user_override(flag, user, body["variant"], actor(), reason=body.get("reason"))
    return change_json(entry, f"{user} already gets {body['variant']} of {flag}; nothing changed.")


@operation(
    "DELETE",
    "/flags/{flag}/overrides/{user}",
    summary="Remove a user's override",
    query=REASON_QUERY,
    **WRITE,
)
def clear_override(flag: str, user: str, query: dict[str, Any]) -> dict[str, Any]:
    found = user_lookup.find_user(user)
    user_id = str(found.id) if found is not None else user
    entry = store.clear_user_override(flag, user_id, actor(), reason=query.get("reason"))
    return change_json(entry, f"{user} has no override of {flag}; nothing changed.")


@operation(
    "PUT", "/flags/{flag}/targets/{group}", summary="Target a group or segment", body="TargetBody", **WRITE
)
def set_target(flag: str, group: str, body: dict[str, Any]) -> dict[str, Any]:
    if "split" in body:
        variant = " ".join(f"{name}={percent}" for name, percent in body["split"].items())
    else:
        variant = body["variant"]
    entry = targeting.target(flag, group, variant, actor(), reason=body.get("reason"))
    return change_json(entry, f"{group} already gets {variant} of {flag}; nothing changed.")


@operation(
    "DELETE", "/flags/{flag}/targets/{group}", summary="Stop targeting a group", query=REASON_QUERY, **WRITE
)
def clear_target(flag: str, group: str, query: dict[str, Any]) -> dict[str, Any]:
    entry = targeting.untarget(flag, group, actor(), reason=query.get("reason"))
    return change_json(entry, f"{flag} does not target {group}; nothing changed.")


@operation(
    "PUT",
    "/flags/{flag}/prerequisites/{required}",
    summary="Require a variant of another flag",
    body="VariantBody",
    **WRITE,
)
def require(flag: str, required: str, body: dict[str, Any]) -> dict[str, Any]:
    entry = prerequisites.require(flag, required, body["variant"], actor(), reason=body.get("reason"))
    return change_json(entry, f"{flag} already requires {required} {body['variant']}; nothing changed.")


@operation(
    "DELETE",
    "/flags/{flag}/prerequisites/{required}",
    summary="Remove a stored prerequisite",
    query=REASON_QUERY,
    **WRITE,
)
def unrequire(flag: str, required: str, query: dict[str, Any]) -> dict[str, Any]:
    entry = prerequisites.unrequire(flag, required, actor(), reason=query.get("reason"))
    return change_json(entry, f"{flag} does not require {required}; nothing changed.")


# --- Schedules ----------------------------------------------------------------------------------------------


@operation(
    "POST", "/flags/{flag}/schedules", summary="Schedule a change", body="ScheduleBody", status=201, **WRITE
)
def add_schedule(flag: str, body: dict[str, Any]) -> dict[str, Any]:
    entry = scheduler.schedule(
        flag,
        body["when"],
        body["action"],
        list(body.get("arguments", [])),
        actor(),
        reason=body.get("reason"),
    )
    return change_json(entry, "")


@operation(
    "DELETE",
    "/flags/{flag}/schedules/{schedule_id}",
    summary="Cancel a pending change",
    query=REASON_QUERY,
    **WRITE,
)
def cancel_schedule(flag: str, schedule_id: str, query: dict[str, Any]) -> dict[str, Any]:
    if not schedule_id.isdigit():
        raise Problem(404, f"{schedule_id[:40]!r} is not a scheduled change's number.")
    entry = scheduler.cancel(int(schedule_id), actor(), flag=flag, reason=query.get("reason"))
    return change_json(entry, f"{flag} has no pending change #{schedule_id}; nothing changed.")


def _as_text(value: Any) -> str:
    """values.set_value takes the JSON text an admin types; the API was sent the value itself."""
    import json

    return json.dumps(value)
