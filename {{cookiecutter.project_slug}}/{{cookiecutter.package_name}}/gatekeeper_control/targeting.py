"""Runtime targeting: rollout weights, groups (stored lists of users) and group targets.

Built on the store (store.py): its tables are in the store's metadata (tables.py), every change is
validated first and then written and audited in one transaction through `store._write`, and everything a
flag check needs is loaded into the store's `Snapshot` (snapshot.py), so a check stays dict lookups.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from . import user_lookup
from .audit import AuditEntry, clean_reason, record
from .checks import check_flag, check_variant, current_config_map, quote, storable
from .engine import gatekeeper
from .errors import InUseError, OverrideError, UnknownGroupError, UnknownUserError, WeightsError
from .parsing import percentage
from .snapshot import Snapshot, UserRef
from .store import store
from .tables import LABEL_LENGTH, NAME_LENGTH, USER_ID_LENGTH, GroupRow, MemberRow, TargetRow, WeightRow

_GROUP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Users named in one change (a pasted list of members): each is looked up, so a change stays within seconds.
MAX_USERS_PER_CHANGE = 20_000


@dataclass(frozen=True)
class StaleTarget:
    """Stored targeting the engine ignores: its flag, variant or group is gone."""

    flag: str
    kind: str  # "weights" or "target"
    name: str  # the group, or "" for weights
    reason: str


def parse_weights(config: Any, items: Any) -> dict[str, int]:
    """`["ON=10", "OFF=90"]` (or a mapping) as {variant: hundredths of a percent} in range order.

    Raises WeightsError, saying what is wrong, unless every name is a variant and the weights add up to 100.
    """
    pairs = list(items.items()) if isinstance(items, Mapping) else [_split_weight(item) for item in items]
    flag, variants = config.FLAG_NAME, config.get_variants()
    if not pairs:
        raise WeightsError(f"{flag}: give weights like {variants[0]}=10; nothing changed.")
    points: dict[str, int] = {}
    for name, value in pairs:
        if name not in variants:
            raise WeightsError(f"{flag} has no variant {quote(name)}: use {', '.join(variants)}.")
        if name in points:
            raise WeightsError(f"{flag}: {name} is given twice; nothing changed.")
        points[name] = percentage(flag, name, value)
    total = sum(points.values())
    if total != 10_000:
        raise WeightsError(
            f"{flag}: the weights add up to {Decimal(total) / 100:f}, not 100; nothing changed."
        )
    return {name: points[name] for name in config.rollout_order(points)}


def _split_weight(item: str) -> tuple[str, str]:
    name, sign, value = str(item).partition("=")
    if not sign:
        raise WeightsError(f"{quote(str(item))} is not VARIANT=PERCENT (e.g. ON=10); nothing changed.")
    return name.strip(), value.strip()


def format_weights(weights: Mapping[str, Any]) -> str:
    return " ".join(f"{variant}={percent}" for variant, percent in weights.items())


def as_percentages(points: Mapping[str, int]) -> dict[str, Any]:
    return {name: p // 100 if p % 100 == 0 else p / 100 for name, p in points.items()}


# How the audit log marks weights that were the code's (`ROLLOUT`), not stored ones.
CODE_WEIGHTS = "in code: "


def code_weights(config: Any) -> dict[str, float] | None:
    """The weights in code (`ROLLOUT`), in range order; None when the flag declares none."""
    rollout = getattr(config, "ROLLOUT", None)
    return dict(rollout) if rollout else None


def arm_moves(config: Any, snapshot: Snapshot, new_points: Mapping[str, int]) -> dict[str, float]:
    """Percent of units per variant a change to `new_points` moves away without shrinking it (see engine)."""
    current = snapshot.weights.get(config.FLAG_NAME) or code_weights(config)
    if not current:
        return {}
    return gatekeeper.rollout_moves(current, as_percentages(new_points))


def _check_group_name(name: str) -> str:
    name = (name or "").strip()
    if not _GROUP_NAME.fullmatch(name):
        raise OverrideError(
            f"{quote(name)} is not a group name: use letters, digits, '.', '_' or '-' (up to 64)."
        )
    return name


def _check_description(description: str | None) -> str:
    """A group's description as stored: trimmed, at most LABEL_LENGTH characters, no NUL (which PostgreSQL
    refuses and SQLite would keep); anything else is refused (OverrideError) with nothing written."""
    description = (description or "").strip()
    if len(description) > LABEL_LENGTH or "\x00" in description:
        raise OverrideError(
            f"A description is at most {LABEL_LENGTH} characters of text (this one has {len(description)}"
            f"{', with a NUL character' if chr(0) in description else ''}); nothing changed."
        )
    return description


def code_groups() -> Mapping[str, gatekeeper.CodeGroup]:
    return gatekeeper.get_state(current_app).groups


def check_group_exists(name: str) -> None:
    snapshot = store.snapshot(max_age=0)
    if name in code_groups() or name in snapshot.groups or name in snapshot.segments:
        return
    raise UnknownGroupError(
        f"No group or segment {quote(name)}: create it with `flask gk group create {name}` "
        f"or `flask gk segment create {name}`."
    )


# --- The operations -----------------------------------------------------------------------------------------


class TargetingStore:
    """Weights, groups, targets and schedules for the current app (`targeting`, below).

    Writes validate, then change and audit in one transaction (None: nothing to change); they raise the
    store's errors (StoreError subclasses) with a message for the admin.
    """

    # Weights ------------------------------------------------------------------------------------------------

    def set_weights(
        self, flag: str, weights: Any, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Replace the weights `self.rollout()` uses for `flag` (a mapping or ["ON=10", ...]); add to 100."""
        reason = clean_reason(reason)
        points = parse_weights(check_flag(flag), weights)
        return store._write(lambda session: set_weights_in(session, flag, points, actor, reason=reason))

    def clear_weights(self, flag: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Go back to the weights in code. None if none were stored."""
        reason = clean_reason(reason)
        if not storable(flag, NAME_LENGTH):
            return None
        return store._write(lambda session: clear_weights_in(session, flag, actor, reason=reason))

    def weights_moves(self, flag: str, weights: Any) -> dict[str, float]:
        """What saving `weights` would move between variants beyond what a ramp must (raises WeightsError)."""
        config = check_flag(flag)
        return arm_moves(config, store.snapshot(max_age=0), parse_weights(config, weights))

    # Groups -------------------------------------------------------------------------------------------------

    def create_group(
        self, name: str, description: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        reason = clean_reason(reason)
        name, description = _check_group_name(name), _check_description(description)
        if name in code_groups():
            raise OverrideError(f"{name} is a group defined in code; choose another name.")
        if name in store.snapshot(max_age=0).segments:  # flags target both by name
            raise OverrideError(f"{name} is a segment; choose another name for the group.")

        def change(session: Session) -> AuditEntry | None:
            if session.get(GroupRow, name) is not None:
                raise OverrideError(f"Group {name} already exists; nothing changed.")
            session.add(GroupRow(name=name, description=description, created_by=actor, created_at=utc_now()))
            return record(
                session,
                actor,
                "",
                "create_group",
                name,
                None,
                description[:NAME_LENGTH] or None,
                reason=reason,
            )

        return store._write(change)

    def describe_group(
        self, name: str, description: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        reason = clean_reason(reason)
        description = _check_description(description)

        def change(session: Session) -> AuditEntry | None:
            row = _stored_group(session, name)
            if row.description == description:
                return None
            before, row.description = row.description, description
            return record(
                session,
                actor,
                "",
                "describe_group",
                name,
                before[:NAME_LENGTH] or None,
                description[:100] or None,
                reason=reason,
            )

        return store._write(change)

    def delete_group(self, name: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Delete stored group NAME: only an empty one that no flag targets (remove its members and its
        targets first, so that nothing anyone gets changes without a change of its own in the log). The
        log keeps its description, for an undo to create it again."""
        reason = clean_reason(reason)

        def change(session: Session) -> AuditEntry | None:
            row = _stored_group(session, name)
            targets = select(TargetRow.flag).where(TargetRow.group == name).order_by(TargetRow.flag)
            targeted_by = list(session.scalars(targets))
            if targeted_by:
                raise InUseError(
                    f"Group {name} is targeted by {', '.join(targeted_by)}: remove those targets first; "
                    "nothing changed."
                )
            members = session.scalar(select(func.count()).where(MemberRow.group == name)) or 0
            if members:
                raise InUseError(
                    f"Group {name} has {members} member{'s' if members != 1 else ''}: remove them first; "
                    "nothing changed."
                )
            description = row.description
            session.delete(row)
            return record(session, actor, "", "delete_group", name, description or None, None, reason=reason)

        return store._write(change)

    def add_members(
        self, name: str, users: list[str], actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Add users (emails or ids); if any is unknown, nobody is added. None if all were members."""
        reason = clean_reason(reason)
        found = self._find_users(users)

        def change(session: Session) -> AuditEntry | None:
            _stored_group(session, name)
            # One query for who is in already and one multi-row insert: row by row, 20,000 members took
            # seconds in one request.
            members = set(session.scalars(select(MemberRow.user_id).where(MemberRow.group == name)))
            new = [ref for ref in found if ref.id not in members]
            if not new:
                return None
            now = utc_now()
            session.execute(
                insert(MemberRow),
                [
                    {
                        "group": name,
                        "user_id": ref.id,
                        "user_label": ref.label,
                        "added_by": actor,
                        "added_at": now,
                    }
                    for ref in new
                ],
            )
            added = [ref.label for ref in new]
            return record(session, actor, "", "add_members", name, None, _list(added), reason=reason)

        return store._write(change)

    def remove_members(
        self, name: str, users: list[str], actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Remove users (emails or ids; a deleted user by their stored id). None if none were in."""
        reason = clean_reason(reason)
        ids = []
        for text in users:
            ref = user_lookup.find_user(text)
            ids.append(ref.id if ref is not None else (text or "").strip())

        def change(session: Session) -> AuditEntry | None:
            _stored_group(session, name)
            removed = []
            for user_id in ids:
                row = session.get(MemberRow, (name, user_id)) if storable(user_id, USER_ID_LENGTH) else None
                if row is not None:
                    session.delete(row)
                    removed.append(row.user_label)
            if not removed:
                return None
            return record(session, actor, "", "remove_members", name, _list(removed), None, reason=reason)

        return store._write(change)

    def _find_users(self, users: list[str]) -> list[UserRef]:
        """The users named (each once, in the order given); raises UnknownUserError if any is unknown."""
        texts = list(dict.fromkeys((text or "").strip() for text in users))
        if len(texts) > MAX_USERS_PER_CHANGE:
            raise OverrideError(
                f"{len(texts):,} users at once is more than {MAX_USERS_PER_CHANGE:,}: add them in parts. "
                "Nothing was changed."
            )
        refs = user_lookup.find_users(texts)
        found: dict[str, UserRef] = {}
        unknown = []
        for text in texts:
            ref = refs.get(text)
            if ref is None:
                unknown.append(text)
            else:
                user_id = str(ref.id)[:USER_ID_LENGTH]
                found.setdefault(user_id, UserRef(user_id, str(ref.label)[:LABEL_LENGTH]))
        if unknown:
            raise UnknownUserError(
                f"No user matches {', '.join(quote(t) for t in unknown[:5])}: enter emails or ids of "
                "existing users. Nothing was changed."
            )
        if not found:
            raise UnknownUserError("Enter at least one email or id. Nothing was changed.")
        return list(found.values())

    # Targets ------------------------------------------------------------------------------------------------

    def target(
        self, flag: str, group: str, variant: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Serve `variant` of `flag` to the members of `group` (stored, in code, or a segment), or a sticky
        split among them, written as weights: ``"ON=50 OFF=50"`` (or with commas). None if already so."""
        reason = clean_reason(reason)
        config = check_flag(flag)
        if "=" in variant:
            points = parse_weights(config, variant.replace(",", " ").split())
            variant = format_weights(as_percentages(points))
        else:
            check_variant(config, flag, variant)
        check_group_exists(group)
        return store._write(lambda session: target_in(session, flag, group, variant, actor, reason=reason))

    def untarget(self, flag: str, group: str, actor: str, *, reason: str | None = None) -> AuditEntry | None:
        """Stop targeting `group` (stale targets too). None if it was not targeted."""
        reason = clean_reason(reason)
        if not (storable(flag, NAME_LENGTH) and storable(group, NAME_LENGTH)):
            return None
        return store._write(lambda session: untarget_in(session, flag, group, actor, reason=reason))

    # Reading ------------------------------------------------------------------------------------------------

    def stale(self, snapshot: Snapshot | None = None) -> list[StaleTarget]:
        """Stored weights and targets naming a flag, variant or group that no longer exists."""
        snapshot = snapshot or store.snapshot()
        config_map, in_code = current_config_map(), code_groups()
        stale = []
        for flag, weights in sorted(snapshot.weights.items()):
            config = config_map.get(flag)
            if config is None:
                stale.append(StaleTarget(flag, "weights", "", f"flag {flag} is no longer in the code"))
            elif missing := [v for v in weights if v not in config.get_variants()]:
                stale.append(StaleTarget(flag, "weights", "", f"variant {', '.join(missing)} is gone"))
        for flag, targets in sorted(snapshot.group_targets.items()):
            config = config_map.get(flag)
            for group, variant in targets:
                split = snapshot.target_splits.get((flag, group))
                if config is None:
                    why = f"flag {flag} is no longer in the code"
                elif split is not None and not set(split) <= set(config.get_variants()):
                    why = f"the split {variant} names a variant that is gone"
                elif split is None and variant not in config.get_variants():
                    why = f"variant {variant} is no longer one of {', '.join(config.get_variants())}"
                elif group not in snapshot.groups and group not in in_code and group not in snapshot.segments:
                    why = f"group {group} no longer exists"
                else:
                    continue
                stale.append(StaleTarget(flag, "target", group, why))
        return stale


targeting = TargetingStore()


# --- Changes inside a transaction (shared by the operations above and by scheduled changes) -----------------


def utc_now() -> datetime:
    return datetime.now(UTC)


def _list(labels: list[str]) -> str:
    text = ", ".join(labels)
    return text if len(text) <= NAME_LENGTH else text[: NAME_LENGTH - 3] + "..."


def _stored_group(session: Session, name: str) -> GroupRow:
    row = session.get(GroupRow, name) if storable(name or "", NAME_LENGTH) else None
    if row is None:
        if has_app_context() and name in code_groups():
            raise OverrideError(f"{name} is defined in code: change its members there.")
        raise UnknownGroupError(f"No group {quote(name or '')}: create it with `flask gk group create`.")
    return row


def set_weights_in(
    session: Session, flag: str, points: Mapping[str, int], actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    rows = session.scalars(select(WeightRow).where(WeightRow.flag == flag)).all()
    before = {row.variant: row.basis_points for row in sorted(rows, key=lambda row: row.position)}
    if before == dict(points):
        return None
    for row in rows:
        session.delete(row)
    session.flush()
    now = utc_now()
    for position, (variant, basis_points) in enumerate(points.items()):
        session.add(
            WeightRow(
                flag=flag,
                variant=variant,
                position=position,
                basis_points=basis_points,
                set_by=actor[:LABEL_LENGTH],
                set_at=now,
            )
        )
    was = format_weights(as_percentages(before)) or _code_weights_text(flag)
    return record(
        session,
        actor,
        flag,
        "rollout",
        "everyone",
        was,
        format_weights(as_percentages(points))[:100],
        reason=reason,
    )


def _code_weights_text(flag: str) -> str | None:
    """What the rule rolled out before any weights were stored, for the audit log's "before" (the true
    before, and an undo of the first stored weights goes back to the code's)."""
    config = current_config_map().get(flag) if has_app_context() else None
    weights = code_weights(config) if config is not None else None
    return f"{CODE_WEIGHTS}{format_weights(weights)}"[:100] if weights else None


def clear_weights_in(
    session: Session, flag: str, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    rows = sorted(session.scalars(select(WeightRow).where(WeightRow.flag == flag)), key=lambda r: r.position)
    if not rows:
        return None
    before = format_weights(as_percentages({row.variant: row.basis_points for row in rows}))
    for row in rows:
        session.delete(row)
    return record(session, actor, flag, "clear_rollout", "everyone", before[:100], None, reason=reason)


def target_in(
    session: Session, flag: str, group: str, variant: str, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    row = session.get(TargetRow, (flag, group))
    before = row.variant if row else None
    if before == variant:
        return None
    if row is None:
        row = TargetRow(flag=flag, group=group, set_at=utc_now())
        session.add(row)
    row.variant, row.set_by = variant, actor[:LABEL_LENGTH]
    return record(session, actor, flag, "target", f"group {group}", before, variant, reason=reason)


def untarget_in(
    session: Session, flag: str, group: str, actor: str, *, reason: str | None = None
) -> AuditEntry | None:
    row = session.get(TargetRow, (flag, group))
    if row is None:
        return None
    session.delete(row)
    return record(session, actor, flag, "untarget", f"group {group}", row.variant, None, reason=reason)


# --- Scheduled changes --------------------------------------------------------------------------------------
