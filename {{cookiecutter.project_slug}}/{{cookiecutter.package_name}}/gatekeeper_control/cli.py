"""`flask gk force | unforce | off | on | value | override | audit | rollout | target | untarget | group |
segment | schedule`.

The store's operations from a terminal, audited as "cli", on the engine's `flask gk` group (the engine
itself adds `list` and `explain`, check.py adds `check`). Importing this module adds the commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from flask.cli import AppGroup

from . import user_lookup
from .audit import AuditEntry
from .checks import unchecked_user_note
from .conditions import OPERATORS
from .engine import gatekeeper
from .errors import StoreError
from .prerequisites import prerequisites
from .schedules import scheduler
from .segments import segments
from .store import CLI_ACTOR, store
from .tables import REASON_LENGTH
from .targeting import code_groups, targeting
from .tokens import keys_cli, tokens_cli
from .transfer import export_command, import_command
from .values import values
from .webhooks import webhooks_cli


def _run(
    operation: Callable[..., AuditEntry | None], *args: Any, unchanged: str, reason: str | None = None
) -> None:
    try:
        entry = operation(*args, actor=CLI_ACTOR, reason=reason)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(entry.summary if entry else unchanged)


gatekeeper.cli.add_command(webhooks_cli)  # `flask gk webhooks ...` (webhooks.py)

reason_option = click.option(
    "--reason", default=None, help=f"Why, for the audit log (optional, up to {REASON_LENGTH} characters)."
)


@gatekeeper.cli.command("force")
@click.argument("flag")
@click.argument("variant")
@reason_option
def force_command(flag: str, variant: str, reason: str | None) -> None:
    """Serve VARIANT of FLAG to everyone until `flask gk unforce FLAG`."""
    unchanged = f"{flag} is already forced to {variant}; nothing changed."
    _run(store.force, flag, variant, unchanged=unchanged, reason=reason)


@gatekeeper.cli.command("unforce")
@click.argument("flag")
@reason_option
def unforce_command(flag: str, reason: str | None) -> None:
    """Stop forcing FLAG: everyone gets their own variant again."""
    _run(store.unforce, flag, unchanged=f"{flag} is not forced; nothing changed.", reason=reason)


@gatekeeper.cli.command("off")
@click.argument("flag")
@reason_option
def off_command(flag: str, reason: str | None) -> None:
    """Switch FLAG off: everyone gets its DEFAULT_VARIANT until `flask gk on FLAG`."""
    _run(store.switch_off, flag, unchanged=f"{flag} is already off; nothing changed.", reason=reason)


@gatekeeper.cli.command("on")
@click.argument("flag")
@reason_option
def on_command(flag: str, reason: str | None) -> None:
    """Switch FLAG back on: everyone gets their own variant again."""
    _run(store.switch_on, flag, unchanged=f"{flag} is not off; nothing changed.", reason=reason)


@gatekeeper.cli.command("value")
@click.argument("flag")
@click.argument("variant")
@click.argument("value", required=False)
@click.option("--clear", is_flag=True, help="Go back to the value in code.")
@reason_option
def value_command(flag: str, variant: str, value: str | None, clear: bool, reason: str | None) -> None:
    """Make VARIANT of FLAG carry VALUE (JSON: 25, "Welcome!", {"limit": 3}) instead of the code's."""
    if clear:
        if value is not None:
            raise click.UsageError("--clear takes no VALUE.")
        unchanged = f"{flag} {variant} already carries the value in code; nothing changed."
        _run(values.clear_value, flag, variant, unchanged=unchanged, reason=reason)
    elif value is None:
        raise click.UsageError("Give a VALUE (JSON), or --clear to go back to the value in code.")
    else:
        unchanged = f"{flag} {variant} already carries {value}; nothing changed."
        _run(values.set_value, flag, variant, value, unchanged=unchanged, reason=reason)


@gatekeeper.cli.command("override")
@click.argument("flag")
@click.argument("variant", required=False)
@click.option("--user", "user_text", required=True, help="The user's email or id.")
@click.option("--clear", is_flag=True, help="Remove the user's override instead of setting one.")
@reason_option
def override_command(flag: str, variant: str | None, user_text: str, clear: bool, reason: str | None) -> None:
    """Serve VARIANT of FLAG to one user (or remove their override with --clear)."""
    if clear:
        if variant is not None:
            raise click.UsageError("--clear takes no VARIANT.")
        _clear_override(flag, user_text, reason)
    elif variant is None:
        raise click.UsageError("Give a VARIANT, or --clear to remove the override.")
    else:
        _run(
            store.set_user_override,
            flag,
            user_text,
            variant,
            unchanged=f"{user_text} already gets {variant}.",
            reason=reason,
        )
        if not store.checks_users:
            click.echo(unchecked_user_note(user_text))


def _clear_override(flag: str, user_text: str, reason: str | None = None) -> None:
    try:
        user = user_lookup.find_user(user_text)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    # A deleted user's override can still be cleared by the id it was stored under.
    user_id = user.id if user else user_text.strip()
    if user is None and user_id not in store.snapshot(max_age=0).user_overrides.get(flag, {}):
        raise click.ClickException(
            f"No user matches {user_text!r} and {flag} has no override stored under that id."
        )
    _run(
        store.clear_user_override,
        flag,
        user_id,
        unchanged=f"{flag} has no override for {user_text}; nothing changed.",
        reason=reason,
    )


@gatekeeper.cli.command("audit")
@click.option("--flag", default=None, help="Only this flag's changes.")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many entries.")
def audit_command(flag: str | None, limit: int) -> None:
    """Show the newest changes to forced variants and user overrides."""
    try:
        entries = store.audit_entries(page=1, per_page=limit, flag=flag).entries
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if not entries:
        click.echo("No changes recorded yet.")
    for entry in entries:
        when = f"{entry.at:%Y-%m-%d %H:%M:%S} UTC"
        change = f"{entry.before or '-'} -> {entry.after or '-'}"
        why = f"  ({entry.reason})" if entry.reason else ""
        click.echo(f"{when}  {entry.actor}  {entry.flag}  {entry.action}  {entry.target}  {change}{why}")


@gatekeeper.cli.command("rollout")
@click.argument("flag")
@click.argument("weights", nargs=-1)
@click.option("--clear", is_flag=True, help="Go back to the weights in code (ROLLOUT).")
def rollout_command(flag: str, weights: tuple[str, ...], clear: bool) -> None:
    """Set the weights FLAG's rule rolls out by: VARIANT=PERCENT ..., adding up to 100."""
    if clear:
        if weights:
            raise click.UsageError("--clear takes no weights.")
        _run(targeting.clear_weights, flag, unchanged=f"{flag} has no stored weights; nothing changed.")
        return
    try:
        moves = targeting.weights_moves(flag, list(weights))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    for variant, percent in moves.items():
        click.echo(f"Note: {percent:g}% of all units move away from {variant} (its range shifts).")
    _run(targeting.set_weights, flag, list(weights), unchanged=f"{flag} already has these weights.")


@gatekeeper.cli.command("target")
@click.argument("flag")
@click.argument("group")
@click.argument("variant")
def target_command(flag: str, group: str, variant: str) -> None:
    """Serve VARIANT of FLAG to every member of GROUP."""
    _run(
        targeting.target, flag, group, variant, unchanged=f"{group} already gets {variant}; nothing changed."
    )


@gatekeeper.cli.command("untarget")
@click.argument("flag")
@click.argument("group")
def untarget_command(flag: str, group: str) -> None:
    """Stop serving FLAG's targeted variant to GROUP."""
    _run(targeting.untarget, flag, group, unchanged=f"{flag} does not target {group}; nothing changed.")


@gatekeeper.cli.group("group")
def group_cli() -> None:
    """Named groups of users that flags can target."""


@group_cli.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the group is for.")
def group_create_command(name: str, description: str) -> None:
    """Create an empty group NAME."""
    _run(targeting.create_group, name, description, unchanged="")


@group_cli.command("describe")
@click.argument("name")
@click.argument("description")
def group_describe_command(name: str, description: str) -> None:
    """Set the description of group NAME."""
    _run(targeting.describe_group, name, description, unchanged=f"{name} already says that; nothing changed.")


@group_cli.command("delete")
@click.argument("name")
def group_delete_command(name: str) -> None:
    """Delete group NAME: an empty one that no flag targets (remove its members and targets first)."""
    _run(targeting.delete_group, name, unchanged="")


@group_cli.command("add")
@click.argument("name")
@click.argument("users", nargs=-1, required=True)
def group_add_command(name: str, users: tuple[str, ...]) -> None:
    """Add USERS (emails or ids) to group NAME; if one is unknown, nobody is added."""
    _run(targeting.add_members, name, list(users), unchanged="They are all members already; nothing changed.")


@group_cli.command("remove")
@click.argument("name")
@click.argument("users", nargs=-1, required=True)
def group_remove_command(name: str, users: tuple[str, ...]) -> None:
    """Remove USERS (emails or ids) from group NAME."""
    _run(targeting.remove_members, name, list(users), unchanged="None of them is a member; nothing changed.")


@group_cli.command("list")
def group_list_command() -> None:
    """List the groups, stored and in code, with their members."""
    snapshot = store.snapshot(max_age=0)
    for name, group in sorted(code_groups().items()):
        click.echo(f"{name}  (in code)  {group.description}".rstrip())
    for name, description in sorted(snapshot.groups.items()):
        members = snapshot.group_members.get(name, {})
        click.echo(f"{name}  {len(members)} member{'s' if len(members) != 1 else ''}  {description}".rstrip())
        for user_id, label in sorted(members.items(), key=lambda item: item[1]):
            click.echo(f"    {label} (id {user_id})")
    if not snapshot.groups and not code_groups():
        click.echo("No groups yet: `flask gk group create NAME`.")


@gatekeeper.cli.command("require")
@click.argument("flag")
@click.argument("required")
@click.argument("variant")
@reason_option
def require_command(flag: str, required: str, variant: str, reason: str | None) -> None:
    """Serve FLAG's default to whoever does not get VARIANT of REQUIRED (a prerequisite)."""
    unchanged = f"{flag} already requires {required} = {variant}; nothing changed."
    _run(prerequisites.require, flag, required, variant, unchanged=unchanged, reason=reason)


@gatekeeper.cli.command("unrequire")
@click.argument("flag")
@click.argument("required")
@reason_option
def unrequire_command(flag: str, required: str, reason: str | None) -> None:
    """Remove FLAG's stored prerequisite on REQUIRED."""
    unchanged = f"{flag} has no stored prerequisite on {required}; nothing changed."
    _run(prerequisites.unrequire, flag, required, unchanged=unchanged, reason=reason)


@gatekeeper.cli.group("segment")
def segment_cli() -> None:
    """Segments: conditions on users' attributes (email ends with..., plan is...) that flags target."""


@segment_cli.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the segment is for.")
def segment_create_command(name: str, description: str) -> None:
    """Create segment NAME; add conditions with `flask gk segment add NAME ATTRIBUTE OPERATOR VALUE`."""
    _run(segments.create, name, description, unchanged=f"Segment {name} exists already; nothing changed.")


@segment_cli.command("add")
@click.argument("name")
@click.argument("attribute")
@click.argument("operator", type=click.Choice(list(OPERATORS)))
@click.argument("value", required=False)
def segment_add_command(name: str, attribute: str, operator: str, value: str | None) -> None:
    """Add a condition to segment NAME: ATTRIBUTE OPERATOR [VALUE], e.g. email ends_with @example.com,
    plan in pro,team, age gte 18, app_version semver_gt 2.1.0, country is_set."""
    _run(segments.add_condition, name, attribute, operator, value, unchanged="")


@segment_cli.command("remove")
@click.argument("name")
@click.argument("number", type=int)
def segment_remove_command(name: str, number: int) -> None:
    """Remove condition NUMBER (as `flask gk segment list` numbers them) from segment NAME."""
    _run(segments.remove_condition, name, number, unchanged="")


@segment_cli.command("delete")
@click.argument("name")
def segment_delete_command(name: str) -> None:
    """Delete segment NAME; flags that target it show the target as stale."""
    _run(segments.delete, name, unchanged=f"There is no segment {name}; nothing changed.")


@segment_cli.command("list")
def segment_list_command() -> None:
    """List the segments and their conditions."""
    snapshot = store.snapshot(max_age=0)
    if not snapshot.segments:
        click.echo("No segments yet: `flask gk segment create NAME`.")
    for name, segment in sorted(snapshot.segments.items()):
        click.echo(f"{name}  {segment.description}".rstrip())
        for number, condition in enumerate(segment.conditions, start=1):
            click.echo(f"    {number}. {condition}")
        if not segment.conditions:
            click.echo("    (no conditions: matches nobody)")


@segment_cli.command("check")
@click.argument("name")
@click.option("--user", "user_text", required=True, help="The user's email or id.")
def segment_check_command(name: str, user_text: str) -> None:
    """Does the user match segment NAME? Shows their context and the conditions they miss."""
    snapshot = store.snapshot(max_age=0)
    segment = snapshot.segments.get(name)
    if segment is None:
        raise click.ClickException(f"There is no segment {name!r}.")
    try:
        user, context = segments.context_of(user_text)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{user.label}: {context}")
    missed = segment.failing(context) if segment.conditions else []
    if segment.matches(context):
        click.echo(f"matches segment {name}")
    else:
        click.echo(f"does not match segment {name}" + (":" if missed else " (it has no conditions)"))
        for condition in missed:
            click.echo(f"    not {condition}")


class _ScheduleGroup(AppGroup):
    """`flask gk schedule FLAG WHEN ACTION ...` adds; `schedule list` and `schedule cancel ID` as named."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["add", *args]
        return super().parse_args(ctx, args)


@gatekeeper.cli.group("schedule", cls=_ScheduleGroup)
def schedule_cli() -> None:
    """Changes at a future time: `schedule FLAG WHEN ACTION ...`, `schedule list`, `schedule cancel ID`."""


@schedule_cli.command("add", context_settings={"ignore_unknown_options": True})
@click.argument("flag")
@click.argument("when")
@click.argument("action")
@click.argument("arguments", nargs=-1)
def schedule_add_command(flag: str, when: str, action: str, arguments: tuple[str, ...]) -> None:
    """At WHEN (ISO 8601, or +30m, +2h, +1d) do ACTION to FLAG: force VARIANT, unforce, off, on,
    value VARIANT JSON, clear-value VARIANT, rollout VARIANT=PCT..., clear-rollout, target GROUP VARIANT
    or untarget GROUP."""
    try:
        entry = scheduler.schedule(flag, when, action, list(arguments), actor=CLI_ACTOR)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(entry.summary)


@schedule_cli.command("list")
@click.option("--flag", default=None, help="Only this flag's changes.")
def schedule_list_command(flag: str | None) -> None:
    """Pending changes by due time, then recent done ones."""
    try:
        changes = scheduler.schedules(flag)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    if not changes:
        click.echo("Nothing scheduled.")
    for change in changes:
        outcome = f"  ({change.outcome})" if change.outcome else ""
        click.echo(
            f"#{change.id}  {change.due_at:%Y-%m-%d %H:%M:%S} UTC  {change.flag}  {change.description}"
            f"  {change.state}  by {change.created_by}{outcome}"
        )


@schedule_cli.command("cancel")
@click.argument("schedule_id", type=int)
def schedule_cancel_command(schedule_id: int) -> None:
    """Cancel pending change ID."""
    _run(scheduler.cancel, schedule_id, unchanged=f"#{schedule_id} is not pending; nothing changed.")


gatekeeper.cli.add_command(tokens_cli)  # flask gk tokens create|list|revoke
gatekeeper.cli.add_command(keys_cli)  # flask gk keys create|list|revoke (OFREP client keys)
gatekeeper.cli.add_command(export_command)  # flask gk export
gatekeeper.cli.add_command(import_command)  # flask gk import
