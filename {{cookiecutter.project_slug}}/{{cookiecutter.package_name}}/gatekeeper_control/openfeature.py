"""An OpenFeature provider for gatekeeper: code written against `openfeature-sdk` asks gatekeeper's flags.

A drop-in module: it imports the standard library, Flask, `openfeature-sdk` (the `openfeature` extra) and
the engine. Wire it once, at start-up:

    from openfeature import api
    from .gatekeeper_control.openfeature import GatekeeperProvider

    api.set_provider(GatekeeperProvider(app))

What a flag resolves to: the value of the variant the user gets (`Gatekeeper.value_of`: a value stored at
runtime, else the flag's `VALUES`, else the variant name), asked for with the method of its type:
booleans, integers, floats, strings (also every flag without `VALUES`), objects (JSON lists and objects).
A flag without `VALUES` whose two variants are one of the ON_OFF_PAIRS (ON/OFF, VISIBLE/NOT_VISIBLE,
ENABLED/DISABLED) also reads as a boolean, true for the first of the pair. The flag is looked up before the
type: an unknown flag is FLAG_NOT_FOUND whatever was asked, a known one asked with another type is
TYPE_MISMATCH. Errors return the caller's default and never raise.

Whose flag: the evaluation context is the context for that call. Its `targeting_key` is the user id (digits
become an int, as with `flask gk explain --user`); its attributes are what rules that declare a `context`
parameter see. Without a key, inside a request, the request's user (`request.gk` itself when the context is
empty, so the evaluation is the request's own and `flag_evaluated` fires as for `ff()`); outside a request,
no user.

Reasons (gatekeeper's -> OpenFeature's):

- `disabled` (switched off) -> DISABLED, with the caller's default as the value;
- `forced` -> STATIC (everyone gets that variant, whatever the context);
- `browser_override`, `user_override`, `group_target` -> TARGETING_MATCH;
- `rule` -> SPLIT when the flag's rule calls `self.rollout(...)` (a percentage split), else TARGETING_MATCH;
- `prerequisite` (another flag's variant is not there, the flag's default served) -> DEFAULT;
- `default` as a normal outcome: STATIC when nothing can vary the answer (the flag has no rule of its own
  and nothing is stored or pinned for it), else DEFAULT (a rule or targeting matched nothing);
- `default` because the rule failed (it raised, or returned no variant) -> ERROR (GENERAL), the caller's
  default, and the cause in `error_message`.

`flag_metadata` is the flag's `METADATA` (immutable), and nothing else: {} for a flag that declares none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from flask import Flask, current_app, has_app_context, has_request_context
from flask import request as flask_request
from flask import session as flask_session
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from .engine import gatekeeper

log = logging.getLogger(__name__)

# Two-variant flags without VALUES that read as booleans: (the variant that means true, the false one).
ON_OFF_PAIRS: tuple[tuple[str, str], ...] = (
    ("ON", "OFF"),
    ("VISIBLE", "NOT_VISIBLE"),
    ("ENABLED", "DISABLED"),
)

_TARGETING_REASONS = frozenset(
    {gatekeeper.BROWSER_OVERRIDE, gatekeeper.USER_OVERRIDE, gatekeeper.GROUP_TARGET}
)
# What each resolve method asks for, in gatekeeper's value types, and how its errors name it.
_ASKED = {
    "boolean": (("boolean",), "a boolean"),
    "string": (("string",), "a string"),
    "integer": (("integer",), "an integer"),
    "float": (("float",), "a float"),
    "object": (("list", "object"), "an object"),
}
_ASK_FOR = {"boolean": "boolean", "string": "string", "integer": "integer", "float": "float"}


class GatekeeperProvider(AbstractProvider):
    """Resolves OpenFeature flag evaluations with gatekeeper; `app` serves evaluations outside a request
    and app context (default: the current app)."""

    def __init__(self, app: Flask | None = None) -> None:
        super().__init__()
        self.app = app

    def get_metadata(self) -> Metadata:
        return Metadata(name="gatekeeper")

    def resolve_boolean_details(
        self, flag_key: str, default_value: bool, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, evaluation_context, "boolean")

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, "string")

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, evaluation_context, "integer")

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, evaluation_context, "float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._resolve(flag_key, default_value, evaluation_context, "object")

    # -- internals --------------------------------------------------------------------------------

    def _resolve(
        self, flag_key: str, default: Any, context: EvaluationContext | None, asked: str
    ) -> FlagResolutionDetails[Any]:
        app = current_app._get_current_object() if has_app_context() else self.app
        if app is None:
            return _error(default, ErrorCode.GENERAL, "no Flask app: pass it, GatekeeperProvider(app)")
        try:
            if has_app_context():
                return self._evaluate(flag_key, default, context, asked)
            with app.app_context():
                return self._evaluate(flag_key, default, context, asked)
        except Exception as error:  # an OpenFeature provider answers with an error, it never raises
            log.exception("gatekeeper_openfeature: evaluating %r failed", flag_key)
            return _error(default, ErrorCode.GENERAL, f"{type(error).__name__}: {error}")

    def _evaluate(
        self, flag_key: str, default: Any, context: EvaluationContext | None, asked: str
    ) -> FlagResolutionDetails[Any]:
        state = gatekeeper.get_state()
        config = state.config_map.get(flag_key) if isinstance(flag_key, str) else None
        if config is None:
            return _error(default, ErrorCode.FLAG_NOT_FOUND, f"gatekeeper has no flag {flag_key!r}")
        pair = _on_off_pair(config) if asked == "boolean" else None
        types, kind = _ASKED[asked]
        if config.value_type not in types and pair is None:
            message = (
                f"{flag_key} holds {config.value_type} values, not {kind}: "
                f"ask for {_ASKED[_asked_for(config.value_type)][1]}"
            )
            return _error(default, ErrorCode.TYPE_MISMATCH, message)
        gk = _gatekeeper_for(context)
        evaluation = gk.explain(flag_key)
        assert evaluation is not None  # the flag is known: checked above
        metadata = config.metadata  # immutable (a MappingProxyType), {} when the flag declares none
        if evaluation.reason == gatekeeper.DISABLED:
            return FlagResolutionDetails(value=default, reason=Reason.DISABLED, flag_metadata=metadata)
        if evaluation.reason == gatekeeper.DEFAULT and evaluation.detail:  # the rule failed (logged)
            return _error(default, ErrorCode.GENERAL, f"{flag_key}: {evaluation.detail}")
        value = gk.value_of(config, evaluation.variant)
        if pair is not None:
            value = evaluation.variant == pair[0]
        return FlagResolutionDetails(
            value=value,
            reason=_reason(evaluation, config, state),
            variant=evaluation.variant,
            flag_metadata=metadata,
        )


def _gatekeeper_for(context: EvaluationContext | None) -> gatekeeper.Gatekeeper:
    """Who this call is for: the request's own Gatekeeper for an empty context in a request, else one for
    the context's key (or the request's user) with the context's attributes as the evaluation context."""
    key = context.targeting_key if context is not None else None
    attributes = dict(context.attributes) if context is not None else {}
    user_id = (int(key) if key.isdigit() else key) if key else None
    if has_request_context():
        if user_id is None and not attributes:
            return gatekeeper.current_gatekeeper()
        app = current_app._get_current_object()
        request = flask_request._get_current_object()
        return gatekeeper.Gatekeeper(user_id, app, request, flask_session, context=attributes)
    return gatekeeper.Gatekeeper(user_id=user_id, context=attributes)


def _asked_for(value_type: str) -> str:
    return _ASK_FOR.get(value_type, "object")


def _on_off_pair(config: gatekeeper.FeatureFlagConfig) -> tuple[str, str] | None:
    if config.VALUES is not None:
        return None
    variants = set(config.get_variants())
    return next((pair for pair in ON_OFF_PAIRS if variants == set(pair)), None)


def _reason(
    evaluation: gatekeeper.Evaluation, config: gatekeeper.FeatureFlagConfig, state: gatekeeper.GatekeeperState
) -> Reason:
    reason = evaluation.reason
    if reason in _TARGETING_REASONS:
        return Reason.TARGETING_MATCH
    if reason == gatekeeper.FORCED:
        return Reason.STATIC
    if reason == gatekeeper.RULE:
        return Reason.SPLIT if _rule_splits(config) else Reason.TARGETING_MATCH
    if reason == gatekeeper.PREREQUISITE:  # the default, because another flag's variant is not there
        return Reason.DEFAULT
    if reason == gatekeeper.DEFAULT:
        return Reason.DEFAULT if config.has_own_rule or _anything_stored(config, state) else Reason.STATIC
    return Reason.UNKNOWN


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


def _error(default: Any, code: ErrorCode, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(value=default, reason=Reason.ERROR, error_code=code, error_message=message)
