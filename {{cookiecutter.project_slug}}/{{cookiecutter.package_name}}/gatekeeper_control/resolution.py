"""One flag evaluation in OpenFeature's terms, as plain data: value, variant, reason, error code and message.

Both doors that speak OpenFeature use it, so they answer alike: the in-process provider (openfeature.py,
which turns the names into the SDK's enums) and the OFREP server (ofrep.py, which writes them as JSON). It
imports no OpenFeature package. The rules (the OpenFeature provider's docstring says them to its users):

- the value is that of the variant served (`Gatekeeper.value_of`), asked for by type: a flag holds the type
  of its `VALUES` (a flag without any holds text, its variant names), and a two-variant flag without
  `VALUES` whose variants are one of ON_OFF_PAIRS also reads as a boolean, true for the first of the pair;
- reasons: `disabled` -> DISABLED (the caller's default); `forced` -> STATIC; overrides and group targets ->
  TARGETING_MATCH; `rule` -> SPLIT when the rule calls `self.rollout(...)`, else TARGETING_MATCH;
  `prerequisite` -> DEFAULT; `default` -> STATIC when nothing can vary the answer, else DEFAULT; a rule that
  failed -> an error (GENERAL) with the caller's default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .engine import gatekeeper

# Two-variant flags without VALUES that read as booleans: (the variant that means true, the false one).
ON_OFF_PAIRS: tuple[tuple[str, str], ...] = (
    ("ON", "OFF"),
    ("VISIBLE", "NOT_VISIBLE"),
    ("ENABLED", "DISABLED"),
)

# OpenFeature's names (the SDK's Reason and ErrorCode values).
STATIC, TARGETING_MATCH, SPLIT, DEFAULT, DISABLED, ERROR, UNKNOWN = (
    "STATIC",
    "TARGETING_MATCH",
    "SPLIT",
    "DEFAULT",
    "DISABLED",
    "ERROR",
    "UNKNOWN",
)
FLAG_NOT_FOUND, TYPE_MISMATCH, GENERAL = "FLAG_NOT_FOUND", "TYPE_MISMATCH", "GENERAL"

_TARGETING_REASONS = frozenset(
    {gatekeeper.BROWSER_OVERRIDE, gatekeeper.USER_OVERRIDE, gatekeeper.GROUP_TARGET}
)
# What each typed question asks for, in gatekeeper's value types, and how its errors name it.
ASKED = {
    "boolean": (("boolean",), "a boolean"),
    "string": (("string",), "a string"),
    "integer": (("integer",), "an integer"),
    "float": (("float",), "a float"),
    "object": (("list", "object"), "an object"),
}
_ASK_FOR = {"boolean": "boolean", "string": "string", "integer": "integer", "float": "float"}


class _CallersDefault:
    """The value of a resolution that defers to the caller's default (switched off, or an error)."""

    def __repr__(self) -> str:
        return "CALLERS_DEFAULT"


CALLERS_DEFAULT: Any = _CallersDefault()


@dataclass(frozen=True)
class Resolution:
    """What one flag resolved to. `value` is CALLERS_DEFAULT when the caller's own default applies;
    `error_code` is set (and `error_message` says why) when the evaluation failed."""

    flag: str
    value: Any
    variant: str | None
    reason: str
    metadata: Mapping[str, Any]
    error_code: str | None = None
    error_message: str | None = None


def resolve(gk: gatekeeper.Gatekeeper, flag_key: Any, asked: str | None = None) -> Resolution:
    """Resolve `flag_key` for `gk`'s user, as `asked` ("boolean", "string", "integer", "float", "object"),
    or as the flag's own type when None (OFREP, where the request names no type)."""
    config = gk.config_map.get(flag_key) if isinstance(flag_key, str) else None
    if config is None:
        return _error(flag_key, FLAG_NOT_FOUND, f"gatekeeper has no flag {flag_key!r}")
    pair = on_off_pair(config) if asked in ("boolean", None) else None
    if asked is not None:
        types, kind = ASKED[asked]
        if config.value_type not in types and pair is None:
            message = (
                f"{flag_key} holds {config.value_type} values, not {kind}: "
                f"ask for {ASKED[_ASK_FOR.get(config.value_type, 'object')][1]}"
            )
            return _error(flag_key, TYPE_MISMATCH, message)
    evaluation = gk.explain(flag_key)
    assert evaluation is not None  # the flag is known: checked above
    metadata = config.metadata  # immutable (a MappingProxyType), {} when the flag declares none
    if evaluation.reason == gatekeeper.DISABLED:
        return Resolution(flag_key, CALLERS_DEFAULT, evaluation.variant, DISABLED, metadata)
    if evaluation.reason == gatekeeper.DEFAULT and evaluation.detail:  # the rule failed (logged)
        return _error(flag_key, GENERAL, f"{flag_key}: {evaluation.detail}")
    value = gk.value_of(config, evaluation.variant) if pair is None else evaluation.variant == pair[0]
    state = gatekeeper.get_state(gk.app)
    return Resolution(flag_key, value, evaluation.variant, _reason(evaluation, config, state), metadata)


def user_id_for_key(key: str | None) -> Any:
    """The user id an OpenFeature targeting key names: digits become an int (as `flask gk explain --user`
    reads them), any other text stays text; None or "" is no user."""
    if not key:
        return None
    return int(key) if key.isascii() and key.isdigit() else key


def on_off_pair(config: gatekeeper.FeatureFlagConfig) -> tuple[str, str] | None:
    """The ON_OFF_PAIRS entry a flag's two variants make, when the flag has no VALUES; else None."""
    if config.VALUES is not None:
        return None
    variants = set(config.get_variants())
    return next((pair for pair in ON_OFF_PAIRS if variants == set(pair)), None)


def _reason(
    evaluation: gatekeeper.Evaluation, config: gatekeeper.FeatureFlagConfig, state: gatekeeper.GatekeeperState
) -> str:
    reason = evaluation.reason
    if reason in _TARGETING_REASONS:
        return TARGETING_MATCH
    if reason == gatekeeper.FORCED:
        return STATIC
    if reason == gatekeeper.RULE:
        return SPLIT if _rule_splits(config) else TARGETING_MATCH
    if reason == gatekeeper.PREREQUISITE:  # the default, because another flag's variant is not there
        return DEFAULT
    if reason == gatekeeper.DEFAULT:
        return DEFAULT if config.has_own_rule or _anything_stored(config, state) else STATIC
    return UNKNOWN


def _anything_stored(config: gatekeeper.FeatureFlagConfig, state: gatekeeper.GatekeeperState) -> bool:
    """Whether anything but the code could change what the flag gives someone: overrides in code or
    stored, group targets, weights, or a variant pinned in a test."""
    flag = config.FLAG_NAME
    if config._code_overrides or flag in state.pinned:
        return True
    snapshot = state.store.snapshot() if state.store is not None else None
    return snapshot is not None and any(
        flag in getattr(snapshot, name, MappingProxyType({}))
        for name in ("forced", "user_overrides", "group_targets", "weights")
    )


def _rule_splits(config: gatekeeper.FeatureFlagConfig) -> bool:
    """Whether the flag's rule calls `rollout` (read from its code object, so it costs nothing to ask)."""
    code = getattr(type(config)._get_variant, "__code__", None)
    return code is not None and "rollout" in code.co_names


def _error(flag: Any, code: str, message: str) -> Resolution:
    return Resolution(str(flag), CALLERS_DEFAULT, None, ERROR, MappingProxyType({}), code, message)
