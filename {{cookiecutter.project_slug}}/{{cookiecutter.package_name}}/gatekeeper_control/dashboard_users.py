"""The dashboard's user look-up: every flag's variant for one user, and why."""

from __future__ import annotations

from flask import render_template, request

from . import user_lookup
from .checks import current_config_map, shorten
from .dashboard import bp
from .engine import gatekeeper
from .segments import segments
from .store import StoreError, store

# A partial text that matches many users shows this many of them (the app's user_lookup may cap it lower).
USERS_SHOWN = 20


@bp.get("/users")
def users() -> str:
    """Look up a user by email, name or id, or by part of an email or name (when the app's `user_lookup`
    answers partial texts): every flag's variant for them and why (browser overrides aside); a text that
    matches several users lists them to pick from."""
    query = request.args.get("q", "").strip()
    found, candidates, rows, error, context, matched, groups_of = None, [], [], None, {}, [], []
    if query:
        try:
            candidates = user_lookup.search_users(query)
        except StoreError as exc:
            error = str(exc)
        if len(candidates) == 1:
            found, candidates = candidates[0], []
        elif not candidates and error is None:
            error = (
                f"No user matches {shorten(query)!r}: enter an email or id, or part of an email or name."
                if store.checks_users
                else f"No user matches {shorten(query)!r}: enter the id of an existing user."
            )
    if found is not None:
        user_id = int(found.id) if str(found.id).isdigit() else found.id
        for flag_name in sorted(current_config_map()):
            rows.append(gatekeeper.Gatekeeper(user_id=user_id).explain_in_detail(flag_name))
        groups_of = sorted(store.snapshot().memberships.get(str(found.id), ()))
        context = dict(gatekeeper.Gatekeeper(user_id=user_id).context)
        matched = segments.matching(context, store.snapshot())
    return render_template(
        "gatekeeper/users.html",
        query=query,
        found=found,
        candidates=candidates[:USERS_SHOWN],
        more_candidates=len(candidates) > USERS_SHOWN,
        rows=rows,
        error=error,
        groups_of=groups_of,
        context=context,
        segments_of=matched,
    )
