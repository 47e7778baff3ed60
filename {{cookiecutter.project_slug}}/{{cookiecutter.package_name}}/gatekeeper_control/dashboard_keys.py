"""The dashboard's client keys page: OFREP's client keys (tokens of scope `evaluate`) created, listed and
revoked. A new key is shown once, in the answer to the form that made it (never in a flash message, which
rides in the session cookie); only its hash is stored."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from .dashboard import bp, current_actor, flash_message
from .errors import StoreError
from .tokens import create_token, list_tokens, revoke_token

SCOPE = "evaluate"


@bp.get("/keys")
def keys() -> str:
    """Every client key, live and revoked (names and first characters only), and a form to make one."""
    return _page()


@bp.post("/keys")
def create_key() -> str | tuple[str, int]:
    """Make a key and show it this once."""
    name = request.form.get("name", "").strip()
    try:
        info, raw = create_token(name, SCOPE, actor=current_actor())
    except StoreError as exc:
        flash_message(str(exc), "error")
        return _page(), 400
    return _page(new_key=raw, new_name=info.name)


@bp.post("/keys/<name>/revoke")
def revoke_key(name: str) -> Response:
    try:
        revoke_token(name, actor=current_actor())
    except StoreError as exc:
        flash_message(str(exc), "error")
    else:
        flash_message(f"Revoked {name}: it is refused from now on, in every process.", "success")
    return redirect(url_for(".keys"))


def _page(new_key: str | None = None, new_name: str | None = None) -> str:
    found = [info for info in list_tokens() if info.scope == SCOPE]
    return render_template("gatekeeper/keys.html", keys=found, new_key=new_key, new_name=new_name)
