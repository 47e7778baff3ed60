"""The dashboard's tokens page: admin API tokens and OFREP client keys, made (shown once), listed with their
last use, and revoked (with a confirmation box). Tokens never open these pages: the dashboard reads only
its session (see api.py)."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .dashboard import bp, current_actor, flash_message
from .store import StoreError
from .tokens import SCOPES, create_token, list_tokens, parse_expiry, revoke_token


@bp.get("/tokens")
def tokens() -> str:
    """Every token and client key with its scope, state and last use; forms to make and revoke them."""
    error, listed = None, []
    try:
        listed = list_tokens()
    except StoreError as exc:
        error = str(exc)
    return render_template(
        "gatekeeper/tokens.html",
        api_tokens=[info for info in listed if info.scope != "evaluate"],
        client_keys=[info for info in listed if info.scope == "evaluate"],
        scopes=SCOPES,
        error=error,
        api_url=_api_url(),
    )


def _api_url() -> str | None:
    """The OpenAPI document's address, when the app serves the API (it needs jsonschema)."""
    return url_for("gatekeeper_api.openapi_json") if "gatekeeper_api" in current_app.blueprints else None


@bp.post("/tokens")
def create_token_view() -> Response | str:
    """Make a token and show it once, on this response only (never stored, never in a flash cookie)."""
    form = request.form
    try:
        info, raw = create_token(
            form.get("name", ""),
            form.get("scope", ""),
            actor=current_actor(),
            expires_at=parse_expiry(form.get("expires")),
        )
    except StoreError as exc:
        flash_message(str(exc), "error")
        return redirect(url_for(".tokens"))
    listed = list_tokens()
    return render_template(
        "gatekeeper/tokens.html",
        api_tokens=[i for i in listed if i.scope != "evaluate"],
        client_keys=[i for i in listed if i.scope == "evaluate"],
        scopes=SCOPES,
        error=None,
        api_url=_api_url(),
        created=info,
        raw_token=raw,
    )


@bp.post("/tokens/<name>/revoke")
def revoke_token_view(name: str) -> Response:
    if request.form.get("confirm") != "yes":
        flash_message("Tick the box to confirm the revocation; nothing changed.", "error")
        return redirect(url_for(".tokens"))
    try:
        revoke_token(name, actor=current_actor())
    except StoreError as exc:
        flash_message(str(exc), "error")
    else:
        flash_message(f"Token {name} revoked: every process refuses it from now on.", "success")
    return redirect(url_for(".tokens"))
