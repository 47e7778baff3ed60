"""The dashboard's user look-up: every flag's variant for one user, and why."""

from __future__ import annotations

from flask import render_template, request

from .checks import current_config_map, shorten
from .dashboard import bp
from .engine import gatekeeper
from .segments import segments
from .store import StoreError, store


@bp.get("/users")
def users() -> str:
    """Look up a user by email or id: every flag's variant for them and why (browser overrides aside)."""
    query = request.args.get("q", "").strip()
    found, rows, error, context, matched = None, [], None, {}, []
    if query:
        try:
            found = store.find_user(query)
        except StoreError as exc:
            error = str(exc)
        if found is not None:
            for flag_name in sorted(current_config_map()):
                user_id = int(found.id) if str(found.id).isdigit() else found.id
                evaluation = gatekeeper.Gatekeeper(user_id=user_id).explain(flag_name)
                rows.append(evaluation)
            groups_of = sorted(store.snapshot().memberships.get(str(found.id), ()))
            user_id = int(found.id) if str(found.id).isdigit() else found.id
            context = dict(gatekeeper.Gatekeeper(user_id=user_id).context)
            matched = segments.matching(context, store.snapshot())
        elif error is None:
            error = f"No user matches {shorten(query)!r}: enter the email or id of an existing user."
    return render_template(
        "gatekeeper/users.html",
        query=query,
        found=found,
        rows=rows,
        error=error,
        groups_of=groups_of if found is not None else [],
        context=context,
        segments_of=matched,
    )
