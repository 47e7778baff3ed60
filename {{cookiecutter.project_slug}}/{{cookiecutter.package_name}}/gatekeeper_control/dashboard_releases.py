"""The dashboard's guarded releases: a flag page's release card (its milestones, each arm's evidence, the
decision log in words) and the forms that start, pause, resume, advance and abort a release."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from flask import request
from werkzeug.wrappers import Response

from .dashboard import bp, change_on_flag, config_or_404, flag_page_with_error
from .errors import StoreError
from .releases import ACTIVE, make_plan, releases
from .store import store
from .targeting import code_weights

SECTION = "release"
DECISIONS_SHOWN = 10


@bp.app_template_global("gatekeeper_release_card")
def release_card(name: str) -> dict[str, Any]:
    """What the flag page's release card shows: the latest release (active or not) with its evidence and
    decisions, whether one can be started, and the saved templates. Never raises: a store that cannot be
    read says so in `error`."""
    try:
        config = config_or_404(name)
        release = releases.current(name)
        can_start = bool(code_weights(config) or store.snapshot().weights.get(name))
        return {
            "release": release,
            "active": release is not None and release.state in ACTIVE,
            "evidence": releases.evidence(release) if release is not None else [],
            "decisions": releases.decisions(release.id, DECISIONS_SHOWN) if release is not None else [],
            "templates": sorted(releases.templates()) if can_start else [],
            "can_start": can_start,
            "variants": config.get_variants(),
            "default_variant": config.default_variant,
            "error": None,
        }
    except StoreError as exc:
        return {"release": None, "active": False, "can_start": False, "error": str(exc)}


@bp.app_template_filter("gatekeeper_number")
def number(value: float | None) -> str:
    """A figure for the release card: four significant digits, or a dash when there is none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.4g}"


@bp.post("/flags/<name>/release")
def start_release(name: str) -> Response | tuple[str, int]:
    """Start a guarded release of the flag from the card's form."""
    config_or_404(name)
    form = request.form
    try:
        steps = [float(part) for part in form.get("milestones", "").replace(" ", "").split(",") if part]
    except ValueError:
        return flag_page_with_error(
            name, SECTION, "milestones", "Give the milestones as shares, e.g. 1, 5, 25, 50, 100."
        )
    minutes, sample = form.get("min_minutes", "").strip(), form.get("min_sample", "").strip()
    try:
        min_seconds = float(minutes) * 60 if minutes else None
    except ValueError:
        return flag_page_with_error(name, SECTION, "min_minutes", f"{minutes!r} is not a number of minutes.")
    if sample and not sample.isdigit():
        problem = f"{sample!r} is not a whole number of requests."
        return flag_page_with_error(name, SECTION, "min_sample", problem)
    guardrails = [metric for metric in ("errors", "latency_ms") if form.get(f"guard-{metric}")]
    if custom := form.get("guardrail", "").strip():
        guardrails.append(custom)
    template = form.get("template") or None

    def start(*, actor: str, reason: str | None) -> SimpleNamespace:
        base = releases.template(template) if template else None
        plan = make_plan(
            milestones=steps or None,
            min_seconds=min_seconds,
            min_sample=int(sample) if sample else None,
            guardrails=guardrails,
            base=base,
        )
        release = releases.start(
            name, form.get("treatment", ""), form.get("control", ""), actor, plan=plan, reason=reason
        )
        words = f"{name}: release #{release.id} started, {release.treatment} at {release.share:g}%"
        return SimpleNamespace(summary=f"{words} against {release.control}.")

    return change_on_flag(name, SECTION, "treatment", start, unchanged="No release was started.")


def _steer(operation: str) -> Any:
    def view(name: str) -> Response | tuple[str, int]:
        config_or_404(name)
        if operation == "abort" and request.form.get("confirm") != "yes":
            return flag_page_with_error(
                name, SECTION, "confirm", "Tick the box to confirm: aborting gives every user the control."
            )
        method = getattr(releases, operation)
        return change_on_flag(name, SECTION, "confirm", method, name, unchanged="The release did not change.")

    view.__name__ = f"{operation}_release"
    return view


for _operation in ("pause", "resume", "advance", "abort"):
    bp.add_url_rule(f"/flags/<name>/release/{_operation}", view_func=_steer(_operation), methods=["POST"])
