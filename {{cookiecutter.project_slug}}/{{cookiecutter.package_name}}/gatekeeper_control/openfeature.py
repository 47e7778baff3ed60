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

Values, types and reasons are worked out by resolution.py, which the OFREP server (ofrep.py) shares, so the
two answer alike. Reasons (gatekeeper's -> OpenFeature's):

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
from typing import Any

from flask import Flask, current_app, has_app_context, has_request_context
from flask import request as flask_request
from flask import session as flask_session
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType, Reason
from openfeature.provider import AbstractProvider, Metadata

from .engine import gatekeeper
from .resolution import CALLERS_DEFAULT, DISABLED, ON_OFF_PAIRS, resolve, user_id_for_key

__all__ = ["ON_OFF_PAIRS", "GatekeeperProvider"]

log = logging.getLogger(__name__)


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
        resolution = resolve(_gatekeeper_for(context), flag_key, asked)
        if resolution.error_code is not None:
            return _error(default, ErrorCode(resolution.error_code), resolution.error_message or "")
        value = default if resolution.value is CALLERS_DEFAULT else resolution.value
        return FlagResolutionDetails(
            value=value,
            reason=Reason(resolution.reason),
            variant=None if resolution.reason == DISABLED else resolution.variant,
            flag_metadata=resolution.metadata,
        )


def _gatekeeper_for(context: EvaluationContext | None) -> gatekeeper.Gatekeeper:
    """Who this call is for: the request's own Gatekeeper for an empty context in a request, else one for
    the context's key (or the request's user) with the context's attributes as the evaluation context."""
    key = context.targeting_key if context is not None else None
    attributes = dict(context.attributes) if context is not None else {}
    user_id = user_id_for_key(key)
    if has_request_context():
        if user_id is None and not attributes:
            return gatekeeper.current_gatekeeper()
        app = current_app._get_current_object()
        request = flask_request._get_current_object()
        return gatekeeper.Gatekeeper(user_id, app, request, flask_session, context=attributes)
    return gatekeeper.Gatekeeper(user_id=user_id, context=attributes)


def _error(default: Any, code: ErrorCode, message: str) -> FlagResolutionDetails[Any]:
    return FlagResolutionDetails(value=default, reason=Reason.ERROR, error_code=code, error_message=message)
