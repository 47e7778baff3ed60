"""The dashboard's flag list: every flag with what the admin gets and why, filtered, sorted and paged."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from flask import render_template, request, url_for

from .audit import AuditEntry
from .checks import current_config_map
from .dashboard import bp
from .snapshot import Snapshot
from .store import StoreError, store
from .targeting import targeting
from .who_sees_what import SPLIT_IN_CODE, rule_split, split_source, stored_weights


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
    config_map = current_config_map()
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


# --- Helpers ------------------------------------------------------------------------------------------------


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
        split=rule_split(config, stored_weights(name, config, snapshot)),
        split_source=split_source(name, config, snapshot),
    )


def _last_changes() -> dict[str, AuditEntry]:
    try:
        return store.last_changes()
    except StoreError:
        return {}
