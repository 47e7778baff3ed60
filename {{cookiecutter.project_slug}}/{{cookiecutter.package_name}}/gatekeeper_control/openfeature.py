"""An OpenFeature provider for gatekeeper: code written against `openfeature-sdk` asks gatekeeper's flags.

A drop-in module: it imports the standard library, Flask, `openfeature-sdk` (the `openfeature` extra) and
the engine. Wire it once, at start-up:

    from openfeature import api
    from .gatekeeper_control.openfeature import GatekeeperProvider

    api.set_provider(GatekeeperProvider(app))

What a flag resolves to:

- strings (`get_string_value`/`get_string_details`): the variant name, for every flag;
- booleans (`get_boolean_value`/`_details`): for a flag whose two variants are one of the ON_OFF_PAIRS
  (ON/OFF, VISIBLE/NOT_VISIBLE, ENABLED/DISABLED), true for the first of the pair; any other flag is a
  TYPE_MISMATCH, as are integers, floats and objects (gatekeeper flags are variant names);
- an unknown flag is FLAG_NOT_FOUND. Errors return the caller's default and never raise.

Whose flag: the evaluation context's `targeting_key` is the user id (digits become an int, as with
`flask gk explain --user`); without one, inside a request, the request's user (`request.gk`, so the
evaluation is the request's own, and `flag_evaluated` fires as for `ff()`); outside a request, no user.

Reasons (gatekeeper's -> OpenFeature's; the variant is always set):

- `browser_override`, `user_override` (and a future `group_target`) -> TARGETING_MATCH;
- `forced` -> DISABLED when the forced variant is the off half of an on/off flag (the kill switch),
  otherwise STATIC (everyone gets that variant, whatever the context);
- `rule` -> SPLIT when the flag's rule calls `self.rollout(...)` (a percentage split), else TARGETING_MATCH;
- `default` (the rule raised or returned no variant; DEFAULT_VARIANT served) -> DEFAULT, with the flag's
  default variant as the value (what `ff()` answers too) and the cause in `error_message`;
- anything else -> UNKNOWN.

Each resolution's `flag_metadata` holds `gatekeeper_reason` (and `owner`/`expires` when the flag has them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, current_app, has_app_context, has_request_context
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from .engine import gatekeeper

log = logging.getLogger(__name__)

# Two-variant flags that read as booleans: (the variant that means true, the one that means false).
ON_OFF_PAIRS: tuple[tuple[str, str], ...] = (
    ("ON", "OFF"),
    ("VISIBLE", "NOT_VISIBLE"),
    ("ENABLED", "DISABLED"),
)

_TARGETING_REASONS = frozenset({gatekeeper.BROWSER_OVERRIDE, gatekeeper.USER_OVERRIDE, "group_target"})


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
        return self._resolve(flag_key, default_value, evaluation_context, as_boolean=True)

    def resolve_string_details(
        self, flag_key: str, default_value: str, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, evaluation_context, as_boolean=False)

    def resolve_integer_details(
        self, flag_key: str, default_value: int, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[int]:
        return self._mismatch(flag_key, default_value, "an integer")

    def resolve_float_details(
        self, flag_key: str, default_value: float, evaluation_context: EvaluationContext | None = None
    ) -> FlagResolutionDetails[float]:
        return self._mismatch(flag_key, default_value, "a float")

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        return self._mismatch(flag_key, default_value, "an object")

    # -- internals --------------------------------------------------------------------------------

    def _resolve(
        self, flag_key: str, default: Any, context: EvaluationContext | None, *, as_boolean: bool
    ) -> FlagResolutionDetails[Any]:
        app = current_app._get_current_object() if has_app_context() else self.app
        if app is None:
            return _error(default, ErrorCode.GENERAL, "no Flask app: pass it, GatekeeperProvider(app)")
        try:
            if has_app_context():
                return self._evaluate(flag_key, default, context, as_boolean)
            with app.app_context():
                return self._evaluate(flag_key, default, context, as_boolean)
        except Exception as error:  # an OpenFeature provider answers with an error, it never raises
            log.exception("gatekeeper_openfeature: evaluating %r failed", flag_key)
            return _error(default, ErrorCode.GENERAL, f"{type(error).__name__}: {error}")

    def _evaluate(
        self, flag_key: str, default: Any, context: EvaluationContext | None, as_boolean: bool
    ) -> FlagResolutionDetails[Any]:
        config = gatekeeper.get_state().config_map.get(flag_key) if isinstance(flag_key, str) else None
        if config is None:
            return _error(default, ErrorCode.FLAG_NOT_FOUND, f"gatekeeper has no flag {flag_key!r}")
        pair = _on_off_pair(config)
        if as_boolean and pair is None:
            variants = ", ".join(config.get_variants())
            message = f"{flag_key} is not an on/off flag (its variants: {variants}); ask for a string"
            return _error(default, ErrorCode.TYPE_MISMATCH, message)
        evaluation = _explain(flag_key, _user_id(context))
        value = evaluation.variant == pair[0] if as_boolean and pair else evaluation.variant
        fell_back = evaluation.reason == gatekeeper.DEFAULT
        return FlagResolutionDetails(
            value=value,
            reason=_reason(evaluation, config, pair),
            variant=evaluation.variant,
            error_message=(evaluation.detail or None) if fell_back else None,
            flag_metadata=_metadata(evaluation, config),
        )

    def _mismatch(self, flag_key: str, default: Any, kind: str) -> FlagResolutionDetails[Any]:
        message = f"gatekeeper flags resolve to variant names, not {kind}: ask for a string or a boolean"
        return _error(default, ErrorCode.TYPE_MISMATCH, f"{flag_key}: {message}")


def _explain(flag_key: str, user_id: Any) -> gatekeeper.Evaluation:
    """The evaluation for `user_id`; None means the request's user (or no user, outside a request)."""
    if has_request_context():
        gk = gatekeeper.current_gatekeeper()
        evaluation = gk.explain(flag_key) if user_id is None else gk.explain(flag_key, user_id)
    else:
        evaluation = gatekeeper.Gatekeeper(user_id=user_id).explain(flag_key)
    assert evaluation is not None  # the flag is known: checked before
    return evaluation


def _user_id(context: EvaluationContext | None) -> Any:
    key = context.targeting_key if context is not None else None
    if not key:
        return None
    return int(key) if key.isdigit() else key


def _on_off_pair(config: gatekeeper.FeatureFlagConfig) -> tuple[str, str] | None:
    variants = set(config.get_variants())
    return next((pair for pair in ON_OFF_PAIRS if variants == set(pair)), None)


def _reason(
    evaluation: gatekeeper.Evaluation, config: gatekeeper.FeatureFlagConfig, pair: tuple[str, str] | None
) -> Reason:
    reason = evaluation.reason
    if reason in _TARGETING_REASONS:
        return Reason.TARGETING_MATCH
    if reason == gatekeeper.FORCED:
        return Reason.DISABLED if pair is not None and evaluation.variant == pair[1] else Reason.STATIC
    if reason == gatekeeper.RULE:
        return Reason.SPLIT if _rule_splits(config) else Reason.TARGETING_MATCH
    if reason == gatekeeper.DEFAULT:
        return Reason.DEFAULT
    return Reason.UNKNOWN


def _rule_splits(config: gatekeeper.FeatureFlagConfig) -> bool:
    """Whether the flag's rule calls `rollout` (read from its code object, so it costs nothing to ask)."""
    code = getattr(type(config)._get_variant, "__code__", None)
    return code is not None and "rollout" in code.co_names


def _metadata(evaluation: gatekeeper.Evaluation, config: gatekeeper.FeatureFlagConfig) -> dict[str, str]:
    metadata = {"gatekeeper_reason": evaluation.reason}
    owner, expires = getattr(config, "OWNER", ""), getattr(config, "expires", None)
    if owner:
        metadata["owner"] = owner
    if expires is not None:
        metadata["expires"] = expires.isoformat()
    return metadata


def _error(default: Any, code: ErrorCode, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(value=default, reason=Reason.ERROR, error_code=code, error_message=message)
