"""OpenTelemetry: each flag evaluation becomes a `feature_flag.evaluation` event on the current span.

When `opentelemetry-api` is installed, `init_app` registers one function with the engine's
`on_evaluation`, called once per flag per Gatekeeper: in a request, the first time the request asks for that
flag (later checks are memoised and add nothing). (Not a receiver of the `flag_evaluated` signal: blinker's
send costs each evaluation more than the whole event does.) It adds an event to the span current at
that moment (your Flask instrumentation's request span, a Celery task's, one you started) with the semantic
conventions' attributes: `feature_flag.key`, `feature_flag.result.variant`, `feature_flag.result.reason`
(OpenFeature's reason codes: `static`, `targeting_match`, `split`, `default`, `disabled`) and
`feature_flag.provider.name` ("gatekeeper"), plus `gatekeeper.reason`, gatekeeper's own word for the step
that decided (`forced`, `user_override`, `rule`...). The user id is not sent (it names a person).

With no span recording (no SDK configured, or a span sampled out) it costs one `get_current_span()` per
flag and adds nothing; without the package it connects nothing at all. `GATEKEEPER_OPENTELEMETRY = False`
turns it off. The engine knows nothing of this: it only sends its signal.

Drop-in: imports only the standard library, Flask and the engine; OpenTelemetry's API when installed.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from .engine import gatekeeper

try:
    from opentelemetry.trace import get_current_span
except ImportError:  # not installed: nothing to record into
    get_current_span = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

EVENT_NAME = "feature_flag.evaluation"
PROVIDER_NAME = "gatekeeper"
# gatekeeper's reason -> OpenFeature's reason code (the semantic conventions' well-known values); a rule that
# calls `rollout()` is a `split`, any other rule a `targeting_match`.
REASONS = {
    gatekeeper.BROWSER_OVERRIDE: "targeting_match",
    gatekeeper.FORCED: "static",
    gatekeeper.USER_OVERRIDE: "targeting_match",
    gatekeeper.GROUP_TARGET: "targeting_match",
    gatekeeper.RULE: "targeting_match",
    gatekeeper.DEFAULT: "default",
    gatekeeper.DISABLED: "disabled",
    gatekeeper.PREREQUISITE: "default",  # another flag's variant is not there: the flag serves its default
}


def available() -> bool:
    """Whether `opentelemetry-api` is installed."""
    return get_current_span is not None


def init_app(app: Flask) -> bool:
    """Record `app`'s flag evaluations on the current span, unless `GATEKEEPER_OPENTELEMETRY` is off or
    OpenTelemetry's API is not installed; returns whether it does."""
    app.config.setdefault("GATEKEEPER_OPENTELEMETRY", True)
    if not app.config["GATEKEEPER_OPENTELEMETRY"] or get_current_span is None:
        return False
    gatekeeper.on_evaluation(app, record_evaluation)  # this app's evaluations only
    return True


def record_evaluation(gk: gatekeeper.Gatekeeper, evaluation: gatekeeper.Evaluation) -> None:
    """One event on the current span, if one is recording (the engine's `on_evaluation` calls it)."""
    span = get_current_span()
    if not span.is_recording():
        return
    flag, variant, reason = evaluation.flag, evaluation.variant, evaluation.reason
    try:
        span.add_event(
            EVENT_NAME,
            {
                "feature_flag.key": flag,
                "feature_flag.result.variant": variant,
                "feature_flag.result.reason": _reason_code(gk.app, flag, reason),
                "feature_flag.provider.name": PROVIDER_NAME,
                "gatekeeper.reason": reason,
            },
        )
    except Exception:  # telemetry is never worth a failed flag check
        log.exception("gatekeeper: could not record the evaluation of %s on the current span", flag)


def _reason_code(app: Any, flag: str, reason: str) -> str:
    if reason == gatekeeper.RULE:
        state = app.extensions.get("gatekeeper")
        rule = getattr(type(state.config_map.get(flag)), "_get_variant", None) if state is not None else None
        code = getattr(rule, "__code__", None)
        if code is not None and "rollout" in code.co_names:  # read from its code: costs nothing to ask
            return "split"
    return REASONS.get(reason, "unknown")
