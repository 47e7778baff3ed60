"""The admin API's JSON Schemas: the one source for validating requests and for the OpenAPI document.

Each request body, query and response of api*.py is described here once, in JSON Schema 2020-12 (the
dialect OpenAPI 3.1 uses): api.py validates every request body and query against them with jsonschema
before anything is read or written, and serves them in `openapi.json` as `components.schemas`. The tests
check every response the API gives against the schema its operation names.
"""

from __future__ import annotations

from typing import Any

# Names are what the store can hold: flags and variants as the engine allows them, groups and segments.
NAME_PATTERN = r"^[A-Za-z0-9_.@-]{1,100}$"
REASON = {"type": "string", "maxLength": 500, "description": "Why, for the audit log (optional)."}
NAME = {"type": "string", "pattern": NAME_PATTERN}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TEXT = {"type": ["string", "null"]}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
        **extra,
    }


WEIGHTS = {
    "type": "object",
    "description": "Percent per variant, in the order the ranges are laid out; they add up to 100.",
    "additionalProperties": {"type": "number", "minimum": 0, "maximum": 100},
    "propertyNames": {"pattern": NAME_PATTERN},
    "minProperties": 1,
    "maxProperties": 100,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details: what went wrong and what to do; nothing was changed.",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": _object({"pointer": {"type": "string"}, "detail": {"type": "string"}}),
            },
        },
        "required": ["type", "title", "status", "detail"],
    },
    "AuditEntry": _object(
        {
            "id": {"type": "integer"},
            "at": TIME,
            "actor": {"type": "string"},
            "flag": {"type": "string"},
            "action": {"type": "string"},
            "target": {"type": "string"},
            "before": NULLABLE_TEXT,
            "after": NULLABLE_TEXT,
            "reason": NULLABLE_TEXT,
            "user_id": NULLABLE_TEXT,
        },
        ("id", "at", "actor", "flag", "action", "target", "before", "after", "reason", "user_id"),
    ),
    "Change": _object(
        {
            "changed": {"type": "boolean", "description": "False: it was so already; nothing was written."},
            "message": {"type": "string"},
            "change": {"oneOf": [ref("AuditEntry"), {"type": "null"}]},
        },
        ("changed", "message", "change"),
    ),
    "ScheduledChange": _object(
        {
            "id": {"type": "integer"},
            "flag": {"type": "string"},
            "due_at": TIME,
            "action": {"type": "string"},
            "argument": {"type": "string"},
            "created_by": {"type": "string"},
            "state": {"enum": ["pending", "applied", "failed", "cancelled"]},
            "outcome": NULLABLE_TEXT,
        },
        ("id", "flag", "due_at", "action", "argument", "created_by", "state", "outcome"),
    ),
    "FlagSummary": _object(
        {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "variants": {"type": "array", "items": {"type": "string"}},
            "default_variant": {"type": "string"},
            "off": {"type": "boolean"},
            "forced": NULLABLE_TEXT,
            "weights": {"oneOf": [WEIGHTS, {"type": "null"}]},
            "overrides": {"type": "integer", "description": "How many users have an override."},
            "targets": {"type": "integer", "description": "How many groups and segments are targeted."},
        },
        ("name", "description", "variants", "default_variant", "off", "forced", "weights"),
    ),
    "Flag": _object(
        {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "variants": {"type": "array", "items": {"type": "string"}},
            "default_variant": {"type": "string"},
            "owner": NULLABLE_TEXT,
            "expires": {"type": ["string", "null"], "format": "date"},
            "off": {"type": "boolean"},
            "forced": NULLABLE_TEXT,
            "weights": {"oneOf": [WEIGHTS, {"type": "null"}], "description": "Stored at runtime, or null."},
            "code_weights": {"oneOf": [WEIGHTS, {"type": "null"}], "description": "ROLLOUT in code."},
            "values": {"type": "object", "description": "Values stored at runtime, per variant."},
            "code_values": {"type": "object", "description": "VALUES in code, per variant."},
            "overrides": {
                "type": "array",
                "items": _object(
                    {
                        "user_id": {"type": "string"},
                        "label": {"type": "string"},
                        "variant": {"type": "string"},
                    },
                    ("user_id", "label", "variant"),
                ),
            },
            "targets": {
                "type": "array",
                "items": _object(
                    {
                        "group": {"type": "string"},
                        "variant": {"type": "string", "description": "A variant, or a split: ON=50 OFF=50."},
                        "split": {"oneOf": [WEIGHTS, {"type": "null"}]},
                    },
                    ("group", "variant", "split"),
                ),
            },
            "prerequisites": {
                "type": "array",
                "items": _object(
                    {
                        "flag": {"type": "string"},
                        "variant": {"type": "string"},
                        "source": {"enum": ["code", "stored"]},
                        "stale": NULLABLE_TEXT,
                    },
                    ("flag", "variant", "source", "stale"),
                ),
            },
            "schedules": {"type": "array", "items": ref("ScheduledChange")},
        },
        ("name", "variants", "default_variant", "off", "forced", "weights", "values", "overrides", "targets"),
    ),
    "FlagList": _object({"flags": {"type": "array", "items": ref("FlagSummary")}}, ("flags",)),
    "Group": _object(
        {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "source": {"enum": ["stored", "code"]},
            "member_count": {"type": ["integer", "null"], "description": "Null for a group in code."},
            "members": {
                "type": "array",
                "items": _object(
                    {"user_id": {"type": "string"}, "label": {"type": "string"}}, ("user_id", "label")
                ),
            },
        },
        ("name", "description", "source", "member_count"),
    ),
    "GroupList": _object({"groups": {"type": "array", "items": ref("Group")}}, ("groups",)),
    "Condition": _object(
        {"attribute": {"type": "string"}, "operator": {"type": "string"}, "value": {}},
        ("attribute", "operator", "value"),
    ),
    "Segment": _object(
        {
            "name": {"type": "string"},
            "description": {"type": "string"},
            "conditions": {"type": "array", "items": ref("Condition")},
        },
        ("name", "description", "conditions"),
    ),
    "SegmentList": _object({"segments": {"type": "array", "items": ref("Segment")}}, ("segments",)),
    "ScheduleList": _object(
        {"schedules": {"type": "array", "items": ref("ScheduledChange")}}, ("schedules",)
    ),
    "AuditPage": _object(
        {
            "entries": {"type": "array", "items": ref("AuditEntry")},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "pages": {"type": "integer"},
            "total": {"type": "integer"},
        },
        ("entries", "page", "per_page", "pages", "total"),
    ),
    "Exposures": _object(
        {
            "flag": {"type": "string"},
            "hours": {"type": "array", "items": TIME},
            "series": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "integer"}},
            },
            "shares": {
                "type": "array",
                "items": _object(
                    {
                        "variant": {"type": "string"},
                        "units": {"type": "integer"},
                        "share": {"type": "number"},
                        "expected": {"type": ["number", "null"]},
                    },
                    ("variant", "units", "share", "expected"),
                ),
            },
            "total": {"type": "integer"},
            "p_value": {"type": ["number", "null"]},
            "sample_ratio_mismatch": {"type": "boolean"},
        },
        ("flag", "hours", "series", "shares", "total", "p_value", "sample_ratio_mismatch"),
    ),
    "UserFlags": _object(
        {
            "user": _object({"id": {"type": "string"}, "label": {"type": "string"}}, ("id", "label")),
            "groups": {"type": "array", "items": {"type": "string"}},
            "segments": {"type": "array", "items": {"type": "string"}},
            "flags": {
                "type": "array",
                "items": _object(
                    {
                        "flag": {"type": "string"},
                        "variant": {"type": "string"},
                        "reason": {"type": "string"},
                        "detail": NULLABLE_TEXT,
                    },
                    ("flag", "variant", "reason", "detail"),
                ),
            },
        },
        ("user", "groups", "segments", "flags"),
    ),
    "ImportReport": _object(
        {
            "dry_run": {"type": "boolean"},
            "changes": {
                "type": "array",
                "items": _object(
                    {"flag": {"type": "string"}, "change": {"type": "string"}}, ("flag", "change")
                ),
            },
            "skipped": {
                "type": "array",
                "description": "Flags, users, groups the app does not know: left out, the rest applied.",
                "items": {"type": "string"},
            },
            "applied": {"type": "integer", "description": "Audited changes written (0 on a dry run)."},
        },
        ("dry_run", "changes", "skipped", "applied"),
    ),
    # Request bodies ---------------------------------------------------------------------------------------
    "ReasonBody": _object({"reason": REASON}),
    "VariantBody": _object({"variant": NAME, "reason": REASON}, ("variant",)),
    "WeightsBody": _object({"weights": WEIGHTS, "reason": REASON}, ("weights",)),
    "ValueBody": _object(
        {"value": {"description": "Any JSON value of the flag's type."}, "reason": REASON}, ("value",)
    ),
    "TargetBody": _object(
        {
            "variant": NAME,
            "split": WEIGHTS,
            "reason": REASON,
        },
        description="Either `variant` (everyone in the group gets it) or `split` (a sticky split).",
        oneOf=[{"required": ["variant"]}, {"required": ["split"]}],
    ),
    "ScheduleBody": _object(
        {
            "when": {
                "type": "string",
                "maxLength": 64,
                "description": "ISO 8601 (UTC when no zone), or +30m/+2h/+1d.",
            },
            "action": {
                "enum": [
                    "force",
                    "unforce",
                    "off",
                    "on",
                    "value",
                    "clear-value",
                    "rollout",
                    "clear-rollout",
                    "target",
                    "untarget",
                ]
            },
            "arguments": {"type": "array", "items": {"type": "string", "maxLength": 254}, "maxItems": 100},
            "reason": REASON,
        },
        ("when", "action"),
    ),
    "GroupBody": _object(
        {"name": NAME, "description": {"type": "string", "maxLength": 254}, "reason": REASON}, ("name",)
    ),
    "DescriptionBody": _object(
        {"description": {"type": "string", "maxLength": 254}, "reason": REASON}, ("description",)
    ),
    "MembersBody": _object(
        {
            "users": {
                "type": "array",
                "items": {"type": "string", "minLength": 1, "maxLength": 254},
                "minItems": 1,
                "maxItems": 10000,
            },
            "reason": REASON,
        },
        ("users",),
    ),
    "SegmentBody": _object(
        {"name": NAME, "description": {"type": "string", "maxLength": 254}, "reason": REASON}, ("name",)
    ),
    "ConditionBody": _object(
        {
            "attribute": {"type": "string", "minLength": 1, "maxLength": 100},
            "operator": {"type": "string", "minLength": 1, "maxLength": 32},
            "value": {"description": "The operator's argument: a JSON value (a list for `in`)."},
            "reason": REASON,
        },
        ("attribute", "operator"),
    ),
    "State": {"type": "object", "description": "An export: see gatekeeper-state.schema.json."},
}

# Query strings, per operation that takes one: each value arrives as text and is checked as such.
AUDIT_QUERY = _object(
    {
        "page": {"type": "string", "pattern": r"^[0-9]{1,9}$"},
        "per_page": {"type": "string", "pattern": r"^[0-9]{1,3}$"},
        "flag": {"type": "string", "maxLength": 100},
        "actor": {"type": "string", "maxLength": 254},
        "action": {"type": "string", "maxLength": 32},
    }
)
FLAG_QUERY = _object({"flag": {"type": "string", "maxLength": 100}})
REASON_QUERY = _object({"reason": REASON})
IMPORT_QUERY = _object({"dry_run": {"enum": ["true", "false"]}})
EXPORT_QUERY = _object({"flags": {"type": "string", "maxLength": 10000, "description": "Comma-separated."}})
