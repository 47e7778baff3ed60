"""Export and import: all runtime state as versioned JSON (`gatekeeper-state`, version 1), for backups and
for promoting staging's state to production.

The format is described by `gatekeeper-state.schema.json` beside this module (JSON Schema 2020-12). An
import makes the app's state what the file says for every flag, group and segment the file lists (a flag
the file lists with nothing stored loses what it has; one it does not list is left alone), through the
same store functions the dashboard calls, audited as the importer, all in one transaction
(`store.batch`). A dry run makes exactly the same writes in a transaction it rolls back, so its list of
changes is what the real import would do. Flags, users and groups this app does not know are left out and
reported; the rest is applied. A file of another format version is refused whole.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask.cli import with_appcontext

from . import user_lookup
from .audit import AuditEntry
from .checks import current_config_map
from .errors import OverrideError, StoreError
from .prerequisites import prerequisites
from .schedules import scheduler
from .segments import segments
from .store import CLI_ACTOR, store
from .targeting import code_groups, targeting
from .values import to_json, values

try:  # the baked project's dependency; optional for a copied folder, whose imports then say what is missing
    import jsonschema
except ImportError:
    jsonschema = None

FORMAT = "gatekeeper-state"
VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("gatekeeper-state.schema.json")


class TransferError(OverrideError):
    """A file that cannot be imported (another format or version, or not as the schema says); nothing was
    written."""


@dataclass
class ImportReport:
    """What an import changed (or, dry, would change), per flag, and what it left out."""

    dry_run: bool
    changes: list[tuple[str, str]] = field(default_factory=list)  # (flag or "", the change as a sentence)
    skipped: list[str] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return 0 if self.dry_run else len(self.changes)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "changes": [{"flag": flag, "change": change} for flag, change in self.changes],
            "skipped": list(self.skipped),
            "applied": self.applied,
        }


# --- Export -------------------------------------------------------------------------------------------------


def export_state(flags: list[str] | None = None) -> dict[str, Any]:
    """The app's runtime state as a `gatekeeper-state` document: every flag in code and every flag with
    something stored (or only `flags`), the stored groups and segments, and the pending scheduled changes."""
    snapshot = store.snapshot(max_age=0)
    names = set(current_config_map()) | set(snapshot.forced) | set(snapshot.disabled) | set(snapshot.weights)
    names |= set(snapshot.values) | set(snapshot.user_overrides) | set(snapshot.group_targets)
    names |= set(snapshot.prerequisites)
    if flags is not None:
        names = {name for name in names if name in flags}
    labels = snapshot.user_labels
    exported: dict[str, Any] = {}
    for name in sorted(names):
        weights = snapshot.weights.get(name)
        exported[name] = {
            "off": name in snapshot.disabled,
            "forced": snapshot.forced.get(name),
            "weights": dict(weights) if weights else None,
            "values": dict(snapshot.values.get(name, {})),
            "overrides": [
                {"user_id": user_id, "label": labels.get(user_id, user_id), "variant": variant}
                for user_id, variant in sorted(snapshot.user_overrides.get(name, {}).items())
            ],
            "targets": [{"group": g, "variant": v} for g, v in snapshot.group_targets.get(name, ())],
            "prerequisites": [{"flag": f, "variant": v} for f, v in snapshot.prerequisites.get(name, ())],
        }
    pending = [change for change in scheduler.schedules(pending_only=True) if change.flag in names]
    return {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "flags": exported,
        "groups": {
            name: {
                "description": description,
                "members": [
                    {"user_id": user_id, "label": label}
                    for user_id, label in sorted(snapshot.group_members.get(name, {}).items())
                ],
            }
            for name, description in sorted(snapshot.groups.items())
        },
        "segments": {
            name: {
                "description": segment.description or "",
                "conditions": [
                    {"attribute": c.attribute, "operator": c.operator, "value": c.value}
                    for c in segment.conditions
                ],
            }
            for name, segment in sorted(snapshot.segments.items())
        },
        "schedules": [
            {
                "flag": change.flag,
                "due_at": change.due_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                "action": change.action,
                "argument": change.argument,
            }
            for change in pending
        ],
    }


# --- Import -------------------------------------------------------------------------------------------------


def check_document(document: Any) -> None:
    """Raise TransferError unless `document` is a gatekeeper-state file of this version, as its schema
    says."""
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise TransferError(
            f"This is not a {FORMAT} file (its `format` is not {FORMAT!r}); nothing was changed."
        )
    if document.get("version") != VERSION:
        raise TransferError(
            f"This file is {FORMAT} version {document.get('version')!r}; this app reads version {VERSION}. "
            "Export it again from an app of this version. Nothing was changed."
        )
    if jsonschema is None:
        raise TransferError("Importing needs the jsonschema package: `pip install jsonschema`.")
    problem = jsonschema.exceptions.best_match(_validator().iter_errors(document))
    if problem is not None:
        where = "/" + "/".join(str(part) for part in problem.absolute_path)
        raise TransferError(f"The file is not as {SCHEMA_PATH.name} says at {where}: {problem.message[:300]}")


def apply_state(document: Any, actor: str, *, dry_run: bool = False) -> ImportReport:
    """Make the app's state what `document` says, in one transaction (rolled back when `dry_run`)."""
    check_document(document)
    report = ImportReport(dry_run=dry_run)
    with store.batch(commit=not dry_run):
        _Importer(report, actor).run(document)
    return report


class _Importer:
    """One import: compares the file with the stored state and calls the store's functions for each
    difference, noting each audited change in the report."""

    def __init__(self, report: ImportReport, actor: str) -> None:
        self.report, self.actor = report, actor
        self.snapshot = store.snapshot(max_age=0)  # as it was before the import
        self.config_map = current_config_map()
        self.listed_groups: set[str] = set()  # the groups and segments the file makes
        self.users: dict[str, str | None] = {}  # a member's or override's id -> this app's id, or None

    def note(self, flag: str, entry: AuditEntry | None) -> None:
        if entry is not None:
            self.report.changes.append((flag, entry.summary))

    def run(self, document: dict[str, Any]) -> None:
        self.listed_groups = set(document.get("groups", {})) | set(document.get("segments", {}))
        for name, group in document.get("groups", {}).items():
            self.group(name, group)
        for name, segment in document.get("segments", {}).items():
            self.segment(name, segment)
        for flag, state in document.get("flags", {}).items():
            if flag not in self.config_map:
                self.report.skipped.append(f"flag {flag}: not in this app's code")
                continue
            self.flag(flag, state)
        for change in document.get("schedules", []):
            self.schedule(change)

    def user(self, member: dict[str, Any]) -> str | None:
        """This app's id for a user of the file: found by label (an email travels between apps), then id."""
        key = member["user_id"]
        if key not in self.users:
            found = user_lookup.find_user(member.get("label") or key) or user_lookup.find_user(key)
            self.users[key] = str(found.id) if found is not None else None
        return self.users[key]

    def group(self, name: str, group: dict[str, Any]) -> None:
        if name in code_groups():
            self.report.skipped.append(f"group {name}: defined in this app's code")
            return
        description = group.get("description", "")
        if name not in self.snapshot.groups:
            self.note("", targeting.create_group(name, description, self.actor))
        else:
            self.note("", targeting.describe_group(name, description, self.actor))
        wanted = {}
        for member in group.get("members", []):
            user_id = self.user(member)
            if user_id is None:
                self.report.skipped.append(
                    f"user {member.get('label') or member['user_id']} (group {name}): unknown"
                )
            else:
                wanted[user_id] = member
        stored = self.snapshot.group_members.get(name, {})
        if new := [user_id for user_id in wanted if user_id not in stored]:
            self.note("", targeting.add_members(name, new, self.actor))
        if gone := [user_id for user_id in stored if user_id not in wanted]:
            self.note("", targeting.remove_members(name, gone, self.actor))

    def segment(self, name: str, segment: dict[str, Any]) -> None:
        conditions = [(c["attribute"], c["operator"], c.get("value")) for c in segment.get("conditions", [])]
        existing = self.snapshot.segments.get(name)
        if existing is None:
            self.note("", segments.create(name, segment.get("description", ""), self.actor))
        else:
            now = [(c.attribute, c.operator, c.value) for c in existing.conditions]
            if now == conditions:
                return
            for _ in now:
                self.note("", segments.remove_condition(name, 1, self.actor))
        for attribute, operator, value in conditions:
            self.note("", segments.add_condition(name, attribute, operator, value, self.actor))

    def flag(self, flag: str, state: dict[str, Any]) -> None:
        s, actor = self.snapshot, self.actor
        if state.get("off"):
            self.note(flag, store.switch_off(flag, actor))
        else:
            self.note(flag, store.switch_on(flag, actor))
        if state.get("forced"):
            self.note(flag, store.force(flag, state["forced"], actor))
        else:
            self.note(flag, store.unforce(flag, actor))
        if state.get("weights"):
            weights = {variant: str(percent) for variant, percent in state["weights"].items()}
            self.note(flag, targeting.set_weights(flag, weights, actor))
        else:
            self.note(flag, targeting.clear_weights(flag, actor))
        wanted_values = state.get("values", {})
        for variant, value in wanted_values.items():
            self.note(flag, values.set_value(flag, variant, to_json(value), actor))
        for variant in s.values.get(flag, {}):
            if variant not in wanted_values:
                self.note(flag, values.clear_value(flag, variant, actor))
        self.overrides(flag, state.get("overrides", []))
        wanted_targets = {}
        for target in state.get("targets", []):
            group = target["group"]
            if (
                group not in s.groups
                and group not in code_groups()
                and group not in s.segments
                and group not in self.listed_groups
            ):
                self.report.skipped.append(f"target {group} of {flag}: no such group or segment")
                continue
            wanted_targets[group] = target["variant"]
            self.note(flag, targeting.target(flag, group, target["variant"], actor))
        for group, _variant in s.group_targets.get(flag, ()):
            if group not in wanted_targets:
                self.note(flag, targeting.untarget(flag, group, actor))
        wanted_prerequisites = {}
        for prerequisite in state.get("prerequisites", []):
            if prerequisite["flag"] not in self.config_map:
                self.report.skipped.append(
                    f"prerequisite {prerequisite['flag']} of {flag}: not in this app's code"
                )
                continue
            wanted_prerequisites[prerequisite["flag"]] = prerequisite["variant"]
            self.note(flag, prerequisites.require(flag, prerequisite["flag"], prerequisite["variant"], actor))
        for required, _variant in s.prerequisites.get(flag, ()):
            if required not in wanted_prerequisites:
                self.note(flag, prerequisites.unrequire(flag, required, actor))

    def overrides(self, flag: str, listed: list[dict[str, Any]]) -> None:
        wanted: dict[str, str] = {}
        for override in listed:
            user_id = self.user(override)
            if user_id is None:
                self.report.skipped.append(
                    f"user {override.get('label') or override['user_id']} ({flag}): unknown"
                )
                continue
            wanted[user_id] = override["variant"]
            self.note(flag, store.set_user_override(flag, user_id, override["variant"], self.actor))
        for user_id in self.snapshot.user_overrides.get(flag, {}):
            if user_id not in wanted:
                self.note(flag, store.clear_user_override(flag, user_id, self.actor))

    def schedule(self, change: dict[str, Any]) -> None:
        flag = change["flag"]
        if flag not in self.config_map:
            self.report.skipped.append(f"scheduled change of {flag}: not in this app's code")
            return
        try:
            due = datetime.fromisoformat(change["due_at"].replace("Z", "+00:00"))
        except ValueError:
            self.report.skipped.append(f"scheduled change of {flag}: {change['due_at'][:40]!r} is not a time")
            return
        due = due if due.tzinfo else due.replace(tzinfo=UTC)
        for pending in scheduler.schedules(flag, pending_only=True):
            if (pending.due_at, pending.action, pending.argument) == (
                due,
                change["action"],
                change["argument"],
            ):
                return
        if due <= datetime.now(UTC):
            self.report.skipped.append(
                f"scheduled change of {flag} at {change['due_at']}: its time has passed"
            )
            return
        action, argument = change["action"], change["argument"]
        arguments = list(argument.partition(" ")[::2]) if action == "value" else argument.split()
        self.note(flag, scheduler.schedule(flag, due.isoformat(), action, arguments, self.actor))


@functools.cache
def _validator() -> Any:
    return jsonschema.Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


# --- `flask gk export` and `flask gk import` (cli.py adds them) ---------------------------------------------


@click.command("export")
@with_appcontext
@click.option("--flags", default=None, help="Only these flags, comma-separated (default: all).")
def export_command(flags: str | None) -> None:
    """Print all runtime state as gatekeeper-state JSON: `flask gk export > state.json`."""
    names = [name.strip() for name in flags.split(",") if name.strip()] if flags else None
    try:
        click.echo(json.dumps(export_state(names), indent=2, ensure_ascii=False))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("import")
@with_appcontext
@click.argument("path", type=click.File("r", encoding="utf-8"))
@click.option("--dry-run", is_flag=True, help="Print what would change, per flag, and change nothing.")
def import_command(path: Any, dry_run: bool) -> None:
    """Make this app's state what PATH (from `flask gk export`) says, in one audited transaction."""
    try:
        document = json.load(path)
    except ValueError as exc:
        raise click.ClickException(f"{path.name} is not JSON: {exc}") from None
    try:
        report = apply_state(document, CLI_ACTOR, dry_run=dry_run)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would change" if dry_run else "changed"
    by_flag: dict[str, list[str]] = {}
    for flag, change in report.changes:
        by_flag.setdefault(flag or "(groups and segments)", []).append(change)
    for flag, changes in by_flag.items():
        click.echo(f"{flag}:")
        for change in changes:
            click.echo(f"  {change}")
    for skipped in report.skipped:
        click.echo(f"skipped: {skipped}")
    click.echo(
        f"{len(report.changes)} changes {verb}" + (" (dry run: nothing was written)." if dry_run else ".")
    )
