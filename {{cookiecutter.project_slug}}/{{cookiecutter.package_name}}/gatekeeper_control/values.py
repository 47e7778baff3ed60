"""Variant values set at runtime: an admin replaces the value a variant carries (a text, a limit, a JSON
config) without a deploy, and can go back to the code's.

A flag's values are declared in code (`VALUES`, or the variant names); a value stored here takes the place
of the code's for that variant. A new value is checked against the flag's type (one JSON type per flag) and,
when the flag declares `VALUE_SCHEMA`, against that JSON Schema (the `jsonschema` package); it is written and
audited, before and after, through `store._write`, loaded into the snapshot (so `request.gk.value()` makes no
query), undoable from the audit log, and schedulable (schedules.py). A stored value whose flag, variant or
type is no longer the code's is stale: ignored by the engine and listed on the dashboard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from .audit import AuditEntry, clean_reason, record
from .checks import check_flag, check_variant, quote, storable
from .engine import gatekeeper
from .errors import ValueRejectedError
from .snapshot import Snapshot
from .store import store
from .tables import LABEL_LENGTH, NAME_LENGTH, AuditRow, ValueRow
from .undo_rules import UNDO_KINDS, UndoKind

# The longest value (as JSON text) the store takes: a banner, a config; not a document.
MAX_VALUE_LENGTH = 10_000


@dataclass(frozen=True)
class StaleValue:
    """A stored value the engine ignores: its flag or variant is gone, or the flag's type changed."""

    flag: str
    variant: str
    reason: str


def to_json(value: Any) -> str:
    """A value as the store keeps and audits it: compact JSON, keys in the order given."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_value(config: Any, variant: str, text: Any) -> Any:
    """`text` (JSON, as typed on the dashboard or the CLI) as a value for `variant` of the flag `config`.

    A flag of text values also takes plain text (``Welcome!`` for ``"Welcome!"``): typing the quotes is
    easy to forget. Raises ValueRejectedError saying what is wrong; nothing is written.
    """
    flag = config.FLAG_NAME
    if not isinstance(text, str) or not text.strip():
        raise ValueRejectedError(
            f"{flag} {variant}: give a value as JSON, e.g. {to_json(config.values[variant])}."
        )
    if len(text) > MAX_VALUE_LENGTH:
        raise ValueRejectedError(
            f"{flag} {variant}: the value is {len(text)} characters; keep it under {MAX_VALUE_LENGTH + 1}. "
            "Nothing was changed."
        )
    try:
        value = json.loads(text)
    except ValueError:
        if config.value_type != "string":
            raise ValueRejectedError(
                f"{flag} {variant}: {quote(text)} is not JSON; {flag}'s values are {_kind(config)}, "
                f"e.g. {to_json(config.values[variant])}. Nothing was changed."
            ) from None
        value = text
    if config.value_type == "string" and not isinstance(value, str):
        value = text  # `42` typed for a text flag is the text "42"
    kind = gatekeeper.value_type(value)
    if kind == "integer" and config.value_type == "float":
        value, kind = float(value), "float"  # 1 for a flag of floats is 1.0
    if kind != config.value_type:
        raise ValueRejectedError(
            f"{flag} {variant}: {quote(text)} is {_a(kind)}, but {flag}'s values are {_kind(config)} "
            f"(e.g. {to_json(config.values[variant])}). Nothing was changed."
        )
    if config.VALUE_SCHEMA is not None:
        problem = schema_problem(config.VALUE_SCHEMA, value, flag)
        if problem:
            raise ValueRejectedError(
                f"{flag} {variant}: the value does not fit {flag}'s VALUE_SCHEMA: {problem}. "
                "Nothing was changed."
            )
    if "\x00" in to_json(value):
        raise ValueRejectedError(
            f"{flag} {variant}: the value contains a NUL character; nothing was changed."
        )
    return value


class Values:
    """Runtime values for the current app (`values`, below); every write goes through the store."""

    def set_value(
        self, flag: str, variant: str, text: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Make `variant` of `flag` carry the value `text` (JSON) instead of the code's. None if it already
        does."""
        reason = clean_reason(reason)
        config = check_flag(flag)
        check_variant(config, flag, variant)
        value = parse_value(config, variant, text)
        return store._write(lambda session: set_value_in(session, flag, variant, value, actor, reason=reason))

    def clear_value(
        self, flag: str, variant: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Go back to the code's value for `variant` of `flag` (stale ones too). None if none was stored."""
        reason = clean_reason(reason)
        if not (storable(flag, NAME_LENGTH) and storable(variant, NAME_LENGTH)):
            return None
        return store._write(lambda session: clear_value_in(session, flag, variant, actor, reason=reason))

    def stale(self, snapshot: Snapshot, config_map: Mapping[str, Any]) -> list[StaleValue]:
        """Stored values the engine ignores, with why."""
        stale = []
        for flag, stored in sorted(snapshot.values.items()):
            config = config_map.get(flag)
            for variant, value in sorted(stored.items()):
                if config is None:
                    why = f"flag {flag} is no longer in the code"
                elif variant not in config.get_variants():
                    why = f"variant {variant} is no longer one of {', '.join(config.get_variants())}"
                elif gatekeeper.value_type(value) != config.value_type:
                    why = f"{flag}'s values are now {_kind(config)}"
                else:
                    continue
                stale.append(StaleValue(flag, variant, why))
        return stale


values = Values()


def schema_problem(schema: Mapping[str, Any], value: Any, flag: str = "") -> str | None:
    """Why `value` does not fit the JSON Schema `schema` (the first error, in jsonschema's words), or None.

    Needs the `jsonschema` package (a dependency of the baked project), imported only for flags that declare
    a VALUE_SCHEMA, so that a folder copied into an app without it works for every other flag.
    """
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - a dependency of the baked project
        raise gatekeeper.FlagConfigError(
            f"{flag}: VALUE_SCHEMA needs the jsonschema package: add it"
        ) from None
    try:
        validator = jsonschema.validators.validator_for(schema)
        validator.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise gatekeeper.FlagConfigError(
            f"{flag}: VALUE_SCHEMA is not a valid JSON Schema: {error.message}"
        ) from None
    error = jsonschema.exceptions.best_match(validator(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def check_code_values(config_map: Mapping[str, Any]) -> None:
    """At start (the engine's `validate_config_map`): every flag's VALUES fit its VALUE_SCHEMA."""
    for flag, config in config_map.items():
        if config.VALUE_SCHEMA is None:
            continue
        for variant, value in config.values.items():
            problem = schema_problem(config.VALUE_SCHEMA, value, flag)
            if problem:
                raise gatekeeper.FlagConfigError(
                    f"{flag}: VALUES[{variant!r}] does not fit VALUE_SCHEMA: {problem}"
                )


if check_code_values not in gatekeeper.CONFIG_CHECKS:
    gatekeeper.CONFIG_CHECKS.append(check_code_values)


def set_value_in(
    session: Session, flag: str, variant: str, value: Any, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    """Store `value` for `variant` of `flag` and audit it (before and after, as JSON), in `session`."""
    row = session.get(ValueRow, (flag, variant))
    before, after = (row.value if row else None), to_json(value)
    if before == after:
        return None
    if row is None:
        row = ValueRow(flag=flag, variant=variant)
        session.add(row)
    row.value, row.set_by, row.set_at = after, actor[:LABEL_LENGTH], datetime.now(UTC)
    return record(session, actor, flag, "value", variant, before, after, reason=reason)


def clear_value_in(
    session: Session, flag: str, variant: str, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    """Remove the stored value of `variant` of `flag` and audit it, in `session`; None if there was none."""
    row = session.get(ValueRow, (flag, variant))
    if row is None:
        return None
    session.delete(row)
    return record(session, actor, flag, "clear_value", variant, row.value, None, reason=reason)


def _stored_now(entry: AuditEntry, snapshot: Snapshot) -> str | None:
    stored = snapshot.values.get(entry.flag, {})
    return to_json(stored[entry.target]) if entry.target in stored else None


def _restore(entry: AuditEntry, actor: str, reason: str) -> AuditEntry | None:
    if entry.before is None:
        return values.clear_value(entry.flag, entry.target, actor, reason=reason)
    return values.set_value(entry.flag, entry.target, entry.before, actor, reason=reason)


_VALUE_CHANGES = UndoKind(
    actions=("value", "clear_value"),
    same_thing=lambda entry: AuditRow.target == entry.target,
    now=_stored_now,
    restore=_restore,
)
UNDO_KINDS.update({"value": _VALUE_CHANGES, "clear_value": _VALUE_CHANGES})


def _kind(config: Any) -> str:
    return {
        "boolean": "true or false",
        "integer": "whole numbers",
        "float": "numbers",
        "string": "text",
        "list": "JSON lists",
        "object": "JSON objects",
    }[config.value_type]


def _a(kind: str | None) -> str:
    return {
        "boolean": "a boolean",
        "integer": "a whole number",
        "float": "a number",
        "string": "text",
        "list": "a list",
        "object": "an object",
    }.get(kind or "", "not a JSON value")
