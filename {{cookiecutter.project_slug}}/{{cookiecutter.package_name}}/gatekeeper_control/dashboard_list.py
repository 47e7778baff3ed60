"""The dashboard's flag list: every flag with what the admin gets and why, found by search, filtered by state,
owner, tag and expiry, sorted, paged, and switched off or on from its row."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .audit import AuditEntry
from .checks import current_config_map, shorten
from .dashboard import bp, change, config_or_404, flash_message, page_of
from .snapshot import Snapshot
from .store import StoreError, store
from .targeting import targeting
from .who_sees_what import SPLIT_IN_CODE, rule_split, split_source, stored_weights

# Flags to a page: the list's server time grows with the flags on the page, not with every flag the app has
# (1,000 flags on one page were 600 KB of HTML and 34,700 px of scrolling).
FLAGS_PER_PAGE = 50
FLAG_STATES = {
    "forced": "Forced",
    "off": "Off",
    "overridden": "Overridden",
    "stale": "Stale",
    "rolling_out": "Rolling out",
}
FLAG_SORTS = {"name": "Name", "changed": "Last change"}
EXPIRY_FILTERS = {"expired": "Expired", "soon": "Expires within 30 days", "none": "No expiry date"}
EXPIRES_SOON = timedelta(days=30)
# The list's query-string keys, in the order its links write them.
LIST_PARAMS = ("q", "state", "owner", "tag", "expiry", "sort", "density", "page")


@dataclass(frozen=True)
class ListedFlag:
    """What the list knows about a flag before it renders it: enough to search, filter, count and sort."""

    name: str
    config: Any
    owner: str
    tags: tuple[str, ...]
    states: frozenset[str]
    expired: bool
    search_text: str  # lower case: name, description, owner, tags, and "expired" once it has

    def matches(self, words: list[str]) -> bool:
        """Every word of the search is somewhere in the flag's name, description, owner or tags."""
        return all(word in self.search_text for word in words)


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
    owner: str = ""
    tags: tuple[str, ...] = ()
    expired: bool = False
    off: bool = False
    search_text: str = ""


@bp.get("/")
def index() -> str:
    """The flag list, 50 to a page (`?page=`): searched server-side by `?q=` (every word in the name,
    description, owner or tags; the page's script narrows the rows shown as you type), filtered by `?state=`,
    `?owner=`, `?tag=` and `?expiry=`, sorted by `?sort=name|changed`, and `?density=compact` to fit many
    flags on a screen: all linkable, none needing JavaScript."""
    args = request.args
    query = args.get("q", "").strip()
    state = _choice(args.get("state"), FLAG_STATES)
    sort = _choice(args.get("sort"), FLAG_SORTS)
    expiry = _choice(args.get("expiry"), EXPIRY_FILTERS)
    compact = args.get("density") == "compact"
    snapshot = store.snapshot(max_age=0)
    config_map = current_config_map()
    stale = store.stale_overrides(snapshot, config_map)
    stale_counts = Counter(item.flag for item in stale)
    today = date.today()
    flags = [
        _listed(name, config, snapshot, stale_counts[name], today)
        for name, config in sorted(config_map.items())
    ]
    owners = sorted({flag.owner for flag in flags if flag.owner}, key=str.lower)
    tags = sorted({tag for flag in flags for tag in flag.tags}, key=str.lower)
    owner = args.get("owner", "") if args.get("owner") in owners else ""
    tag = args.get("tag", "") if args.get("tag") in tags else ""
    words = query.lower().split()
    found = [
        flag
        for flag in flags
        if flag.matches(words)
        and (not owner or flag.owner == owner)
        and (not tag or tag in flag.tags)
        and (not expiry or _expiry_matches(flag.config, expiry))
    ]
    state_counts = Counter(item for flag in found for item in flag.states)
    shown = [flag for flag in found if not state or state in flag.states]
    if sort == "changed":  # newest change first; flags never changed last, by name
        newest = _last_change_ids()
        shown.sort(key=lambda flag: newest.get(flag.name, 0), reverse=True)
    params = {
        "q": query,
        "state": state,
        "owner": owner,
        "tag": tag,
        "expiry": expiry,
        "sort": sort,
        "density": "compact" if compact else "",
    }
    list_url = _list_url(params)
    pages = page_of(
        shown,
        args.get("page"),
        lambda number: list_url(page=number if number > 1 else ""),
        per_page=FLAGS_PER_PAGE,
    )
    # The page's flags' last changes only: every flag's would cost more than the page.
    last_changes = _last_changes([flag.name for flag in pages.items]) if pages.items else {}
    rows = [
        _flag_row(flag, snapshot, stale_counts[flag.name], last_changes.get(flag.name))
        for flag in pages.items
    ]
    here = {**params, "page": pages.page if pages.page > 1 else ""}
    return render_template(
        "gatekeeper/index.html",
        rows=rows,
        pages=pages,
        matched=len(shown),
        query=query,
        total=len(config_map),
        stale=stale,
        stale_targeting=targeting.stale(snapshot),
        state=state,
        owner=owner,
        tag=tag,
        expiry=expiry,
        owners=owners,
        tags=tags,
        sort=sort or "name",
        compact=compact,
        narrowed_by=_narrowed_by(state, owner, tag, expiry),
        params={key: value for key, value in params.items() if value},
        here={key: value for key, value in here.items() if value},
        list_url=list_url,
        flag_states=FLAG_STATES,
        flag_sorts=FLAG_SORTS,
        expiry_filters=EXPIRY_FILTERS,
        state_counts=state_counts,
    )


@bp.post("/flags/<name>/switch")
def quick_switch(name: str) -> Response:
    """The list's on/off switch: `to=off` needs the confirmation box ticked, as the flag page's off switch
    does; `to=on` switches the flag back on. Both are the store's audited switch; then back to the same
    view of the list (its search, filters and page)."""
    config_or_404(name)
    if request.form.get("to") == "on":
        change(store.switch_on, name, unchanged=f"{shorten(name)} was not off.")
    elif not request.form.get("confirm"):
        flash_message(f"Tick the confirmation box to switch {name} off; nothing changed.", "error")
    else:
        change(store.switch_off, name, unchanged=f"{name} is already off.")
    back = {key: request.form.get(key, "") for key in LIST_PARAMS}
    return redirect(url_for(".index", **{key: value for key, value in back.items() if value}))


# --- Helpers ------------------------------------------------------------------------------------------------


def flag_tags(config: Any) -> tuple[str, ...]:
    """A flag's TAGS as the list uses them: the strings of a tuple or list (`flask gk check` reports the
    rest), never an error."""
    tags = getattr(config, "TAGS", ())
    if not isinstance(tags, tuple | list):
        return ()
    return tuple(tag for tag in tags if isinstance(tag, str) and tag)


@dataclass(frozen=True)
class _Written:
    """What a flag's class says that the list reads on every request: the same until the code changes."""

    owner: str
    tags: tuple[str, ...]
    search_text: str
    splits: bool  # its weights in code split users between two or more variants


# Per config object (by id, with the object to tell a reused id): reading 1,000 classes' attributes and
# weights again on every request was a third of the list's time. Bounded: emptied past _WRITTEN_KEPT.
_written: dict[int, tuple[Any, _Written]] = {}
_WRITTEN_KEPT = 10_000


def _written_for(name: str, config: Any) -> _Written:
    kept = _written.get(id(config))
    if kept is not None and kept[0] is config:
        return kept[1]
    owner = getattr(config, "OWNER", "")
    owner = owner if isinstance(owner, str) else ""
    tags = flag_tags(config)
    description = str(getattr(config, "DESCRIPTION", "") or "")
    search_text = " ".join(word for word in [name, description, owner, *tags] if word).lower()
    written = _Written(owner, tags, search_text, _splits(rule_split(config)))
    if len(_written) >= _WRITTEN_KEPT:
        _written.clear()
    _written[id(config)] = (config, written)
    return written


def _splits(split: dict[str, float] | None) -> bool:
    return bool(split) and sum(1 for share in split.values() if share > 0) > 1


def _listed(name: str, config: Any, snapshot: Snapshot, stale_count: int, today: date) -> ListedFlag:
    written = _written_for(name, config)
    expires = getattr(config, "expires", None)
    expired = expires is not None and expires < today
    forced = name in snapshot.forced
    states = set()
    if forced:
        states.add("forced")
    if name in snapshot.disabled:
        states.add("off")
    if snapshot.user_overrides.get(name):
        states.add("overridden")
    if stale_count:
        states.add("stale")
    stored = stored_weights(name, config, snapshot) if name in snapshot.weights else None
    if not forced and (_splits(rule_split(config, stored)) if stored else written.splits):
        states.add("rolling_out")
    search_text = f"{written.search_text} expired" if expired else written.search_text
    return ListedFlag(name, config, written.owner, written.tags, frozenset(states), expired, search_text)


def _flag_row(
    flag: ListedFlag, snapshot: Snapshot, stale_count: int, last_change: AuditEntry | None
) -> FlagRow:
    name, config = flag.name, flag.config
    return FlagRow(
        name=name,
        description=str(getattr(config, "DESCRIPTION", "") or ""),
        variants=config.get_variants(),
        default=config.default_variant,
        evaluation=request.gk.explain_in_detail(name),
        forced=snapshot.forced.get(name),
        override_count=len(snapshot.user_overrides.get(name, ())),
        stale_count=stale_count,
        last_change=last_change,
        split=rule_split(config, stored_weights(name, config, snapshot)),
        split_source=split_source(name, config, snapshot),
        owner=flag.owner,
        tags=flag.tags,
        expired=flag.expired,
        off=name in snapshot.disabled,
        search_text=flag.search_text,
    )


def _narrowed_by(state: str, owner: str, tag: str, expiry: str) -> list[str]:
    """The filters in force, in words ("forced", "owner growth-team", "tag beta", "expired")."""
    words = [
        FLAG_STATES[state].lower() if state else "",
        f"owner {owner}" if owner else "",
        f"tag {tag}" if tag else "",
        EXPIRY_FILTERS[expiry].lower() if expiry else "",
    ]
    return [text for text in words if text]


def _choice(value: str | None, choices: Mapping[str, str]) -> str:
    return value if value in choices else ""


def _expiry_matches(config: Any, expiry: str) -> bool:
    expires = getattr(config, "expires", None)
    if expiry == "none":
        return expires is None
    if expires is None:
        return False
    today = date.today()
    return expires < today if expiry == "expired" else today <= expires <= today + EXPIRES_SOON


def _list_url(params: dict[str, str]) -> Callable[..., str]:
    """`list_url(state="forced")`: the list's URL with this view's choices, some changed (an empty value drops
    one); a change of search, filter or sort goes back to page 1."""

    def url(**changes: Any) -> str:
        merged = {**params, **changes}
        return url_for(".index", **{key: merged[key] for key in LIST_PARAMS if merged.get(key)})

    return url


def _last_changes(flags: list[str]) -> dict[str, AuditEntry]:
    try:
        return store.last_changes(flags)
    except StoreError:
        return {}


def _last_change_ids() -> dict[str, int]:
    try:
        return store.last_change_ids()
    except StoreError:
        return {}
