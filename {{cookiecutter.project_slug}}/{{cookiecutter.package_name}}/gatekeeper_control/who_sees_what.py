"""Who sees what: the engine's evaluation order on a flag page, which steps a higher one shadows, and the
rule's split (the share of each variant) as the bar shows it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .engine import gatekeeper
from .snapshot import Snapshot

# Where a flag's rule split comes from, as its bar's legend says.
SPLIT_IN_CODE, SPLIT_AT_RUNTIME = "weights in code", "weights set at runtime"

# The engine's steps, highest first: (step, how the dashboard names it when it shadows a lower step). One more
# engine step is one more entry here, in its place; everything below walks this list.
EVALUATION_ORDER: tuple[tuple[str, str], ...] = (
    ("browser_override", "this browser's override"),
    ("disabled", "the off switch"),
    ("forced", "forced for everyone"),
    ("user_override", "a stored user override"),
    ("code_override", "a pin in the flag's code (its overrides)"),
    ("group_target", "a group target"),
    ("rule", "the rule"),
    ("default", "the default"),
)
_STEP_LABELS = dict(EVALUATION_ORDER)
_STEP_TITLES = {
    "browser_override": "This browser's override",
    "disabled": "Switched off",
    "forced": "Forced for everyone",
    "user_override": "User pinned on the dashboard",
    "code_override": "User pinned in the code",
    "group_target": "Group target",
    "rule": "The rule",
    "default": "The default",
}


def shadowed_by(step: str, active: Mapping[str, str | None]) -> str | None:
    """How the dashboard names the first step above `step` that is active (``"forced for everyone"``), or
    None when nothing above it is: what `step` says is then what the user gets."""
    if step not in _STEP_LABELS:
        raise ValueError(f"{step!r} is not a step of EVALUATION_ORDER")
    for name, label in EVALUATION_ORDER:
        if name == step:
            return None
        if name in active:
            return label
    return None  # pragma: no cover: step is in the list


def winning_variant(active: Mapping[str, str | None]) -> str | None:
    """The variant of the highest active step (None for the rule, whose answer depends on the request)."""
    for name, _label in EVALUATION_ORDER:
        if name in active:
            return active[name]
    return None


def active_steps(
    flag: str, config: Any, snapshot: Snapshot, user_id: str | None, browser: str | None
) -> dict[str, str | None]:
    """The steps that would answer `flag` for `user_id`, with their variant, as the engine walks them.

    Stale stored values (not a variant of the flag) are skipped, as the engine skips them; the rule and the
    default are always there, the rule first (None: its answer depends on the user and request).
    """
    variants = set(config.get_variants()) if config else set()
    active: dict[str, str | None] = {}
    if browser in variants:
        active["browser_override"] = browser
    if config and flag in snapshot.disabled:
        active["disabled"] = config.default_variant
    forced = snapshot.forced.get(flag)
    if forced in variants:
        active["forced"] = forced
    stored = snapshot.user_overrides.get(flag, {}).get(str(user_id)) if user_id is not None else None
    if stored in variants:
        active["user_override"] = stored
    in_code = _code_override_index(config).get(str(user_id)) if user_id is not None else None
    if in_code is not None:
        active["code_override"] = in_code
    target = (
        gatekeeper.group_target_of(gatekeeper.current_gatekeeper(), flag, user_id, snapshot)
        if config
        else None
    )
    if target is not None:
        active["group_target"] = target.variant
    active["rule"] = None
    active["default"] = config.default_variant if config else None
    return active


def _code_override_index(config: Any) -> dict[str, str]:
    """`overrides=` in code, as user id -> variant."""
    return {
        str(user_id): variant
        for variant, user_ids in ((getattr(config, "overrides", None) or {}).items())
        for user_id in user_ids
    }


def evaluation_order(
    flag: str, config: Any, snapshot: Snapshot, user_id: str | None, browser: str | None, evaluation: Any
) -> list[dict[str, Any]]:
    """Each step for the signed-in admin: whether it is set, its variant, and what shadows it."""
    active = active_steps(flag, config, snapshot, user_id, browser)
    if evaluation is not None and evaluation.reason == gatekeeper.DEFAULT:
        del active["rule"]  # the rule raised or gave no variant: the default answered
    elif evaluation is not None and evaluation.reason == gatekeeper.RULE:
        active["rule"] = evaluation.variant
    return [
        {
            "step": step,
            "title": _STEP_TITLES[step],
            "set": step in active,
            "variant": active.get(step),
            "shadowed_by": shadowed_by(step, active) if step in active else None,
        }
        for step, _label in EVALUATION_ORDER
    ]


def code_overrides(
    flag: str, config: Any, snapshot: Snapshot, my_id: str | None, browser: str | None
) -> list[dict[str, Any]]:
    """The overrides in code, one per user, each with what shadows it (a forced or stored variant)."""
    rows = []
    for user_id, variant in _code_override_index(config).items():
        active = active_steps(flag, config, snapshot, user_id, browser if user_id == my_id else None)
        rows.append({"id": user_id, "variant": variant, "shadowed_by": shadowed_by("code_override", active)})
    return rows


def my_user_id() -> str | None:
    user_id = gatekeeper.current_gatekeeper().user_id
    return None if user_id is None else str(user_id)


def overrides_a_force_ignores(flag: str, config: Any, snapshot: Snapshot) -> int:
    """How many overrides (stored and in code) forcing `flag` would put aside: the impact, in a number."""
    if config is None:
        return 0
    variants = set(config.get_variants())
    stored = {user for user, variant in snapshot.user_overrides.get(flag, {}).items() if variant in variants}
    return len(stored | set(_code_override_index(config)))


def rule_split(config: Any, stored: Mapping[str, float] | None = None) -> dict[str, float] | None:
    """Each variant's share of the rule, in percent: the weights stored at runtime when given, else the
    config's rollout weights (``ROLLOUT``); None when the flag has none, or they are not numbers that add up
    to more than 0."""
    weights = stored if stored else getattr(config, "ROLLOUT", None)
    if not isinstance(weights, Mapping) or not weights:
        return None
    try:
        shares = {str(variant): float(weight) for variant, weight in weights.items()}
    except (TypeError, ValueError):
        return None
    total = sum(shares.values())
    if total <= 0 or any(share < 0 for share in shares.values()):
        return None
    return {variant: share * 100 / total for variant, share in shares.items()}


def stored_weights(name: str, config: Any, snapshot: Snapshot) -> Mapping[str, float] | None:
    """The weights stored for `name`, unless stale (naming a variant the flag lost): what the engine uses."""
    stored = snapshot.weights.get(name)
    return stored if stored and set(stored) <= set(config.get_variants()) else None


def split_source(name: str, config: Any, snapshot: Snapshot) -> str:
    stored = config is not None and stored_weights(name, config, snapshot)
    return SPLIT_AT_RUNTIME if stored else SPLIT_IN_CODE
