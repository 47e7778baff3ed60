"""Prerequisites set at runtime: flag FLAG serves its default to whoever does not get VARIANT of flag
REQUIRED (`flask gk require FLAG REQUIRED VARIANT`, the flag page), beside those in code (`PREREQUISITES`).

A new prerequisite is refused when it names an unknown flag or variant, or would make a circle with the
others, stored or in code; it is written and audited through `store._write` and loaded into the snapshot.
One whose flag or variant has left the code is stale: skipped by the engine, shown on the flag page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from .audit import TARGETING_SUMMARY, TARGETING_WHAT, AuditEntry, clean_reason, record
from .checks import check_flag, check_variant, current_config_map, storable
from .engine import gatekeeper
from .errors import OverrideError
from .snapshot import Snapshot
from .store import store
from .tables import LABEL_LENGTH, NAME_LENGTH, PrerequisiteRow

TARGETING_WHAT.update({"require": "requires {target}", "unrequire": "no longer requires {target}"})
TARGETING_SUMMARY.update(
    {
        "require": "{entry.flag}: only users who get {entry.target} = {entry.after} can get more than its "
        "default.",
        "unrequire": "{entry.flag}: no longer requires {entry.target} = {entry.before}.",
    }
)


class PrerequisiteError(OverrideError):
    """A prerequisite that would go round in a circle; nothing was written."""


@dataclass(frozen=True)
class Prerequisite:
    """What the flag page lists: a required flag and variant, where it is set, and whether it is stale."""

    flag: str
    variant: str
    source: str  # "code" or "stored"
    stale: str | None = None  # why the engine skips it, or None


class Prerequisites:
    """Runtime prerequisites for the current app (`prerequisites`, below)."""

    def require(
        self, flag: str, required: str, variant: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Serve `flag`'s default to whoever does not get `variant` of `required`. None if already so."""
        reason = clean_reason(reason)
        check_flag(flag)
        check_variant(check_flag(required), required, variant)
        config_map = current_config_map()
        graph = _graph(config_map, store.snapshot(max_age=0))
        graph.setdefault(flag, []).append(required)
        cycle = gatekeeper.prerequisite_cycle(graph)
        if cycle:
            raise PrerequisiteError(
                f"{flag} cannot require {required}: that would go round in a circle ({' -> '.join(cycle)})."
            )

        def change(session: Session) -> AuditEntry | None:
            row = session.get(PrerequisiteRow, (flag, required))
            before = row.variant if row else None
            if before == variant:
                return None
            if row is None:
                row = PrerequisiteRow(flag=flag, required=required)
                session.add(row)
            row.variant, row.set_by, row.set_at = variant, actor[:LABEL_LENGTH], datetime.now(UTC)
            return record(session, actor, flag, "require", required, before, variant, reason=reason)

        return store._write(change)

    def unrequire(
        self, flag: str, required: str, actor: str, *, reason: str | None = None
    ) -> AuditEntry | None:
        """Remove a stored prerequisite (stale ones too). None if there was none."""
        reason = clean_reason(reason)
        if not (storable(flag, NAME_LENGTH) and storable(required, NAME_LENGTH)):
            return None

        def change(session: Session) -> AuditEntry | None:
            row = session.get(PrerequisiteRow, (flag, required))
            if row is None:
                return None
            session.delete(row)
            return record(session, actor, flag, "unrequire", required, row.variant, None, reason=reason)

        return store._write(change)

    def of(self, flag: str, config: Any, snapshot: Snapshot) -> list[Prerequisite]:
        """`flag`'s prerequisites, in code then stored, with why a stored one is stale."""
        config_map = current_config_map()
        listed = [
            Prerequisite(other, variant, "code") for other, variant in (config.PREREQUISITES or {}).items()
        ]
        for other, variant in snapshot.prerequisites.get(flag, ()):
            other_config = config_map.get(other)
            stale = None
            if other_config is None:
                stale = f"flag {other} is no longer in the code"
            elif variant not in other_config.get_variants():
                stale = f"variant {variant} is no longer one of {', '.join(other_config.get_variants())}"
            listed.append(Prerequisite(other, variant, "stored", stale))
        return listed


prerequisites = Prerequisites()


def _graph(config_map: Mapping[str, Any], snapshot: Snapshot) -> dict[str, list[str]]:
    graph = {flag: list((config.PREREQUISITES or {}).keys()) for flag, config in config_map.items()}
    for flag, required in snapshot.prerequisites.items():
        graph.setdefault(flag, []).extend(other for other, _ in required)
    return graph
