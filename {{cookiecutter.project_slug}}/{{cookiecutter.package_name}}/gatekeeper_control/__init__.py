"""Everything gatekeeper ships beside the engine: stored overrides, runtime targeting, schedules, push
between processes, exposures, OpenTelemetry events, the dashboard, `flask gk check`, an OpenFeature provider
and an OFREP server.

The engine (`gatekeeper.py`) and the app's flags (`gatekeeper_config.py`) sit beside this folder; the
folder imports the engine, never the app. Wire it in `create_app()`:

    overrides = gatekeeper_control.init_app(app, db, user_lookup=lookup_user)
    gatekeeper.init_app(app, FF_CONFIG_MAP, store=overrides)

The map of its modules is in docs/design.md.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

# Importing cli, check and the dashboard's page modules adds their `flask gk` commands and pages. Modules
# only: a name imported here must never hide a module of the folder (`gatekeeper_control.store` is store.py).
from . import (  # noqa: F401
    api,
    api_admin,
    api_flags,
    check,
    cli,
    dashboard,
    dashboard_audit,
    dashboard_flags,
    dashboard_list,
    dashboard_releases,
    dashboard_schedules,
    dashboard_segments,
    dashboard_targeting,
    dashboard_tokens,
    dashboard_users,
    dashboard_webhooks,
    exposures,
    ofrep,
    outcomes,
    prerequisites,
    release_cli,
    releases,
    schedules,
    segments,
    store,
    telemetry,
    timer,
    values,
    webhooks,
)
from .push import ChangeFeed
from .snapshot import AppStore, UserLookup, UserRef, UsersLookup
from .tables import metadata

__all__ = ["AppStore", "ChangeFeed", "UserRef", "create_tables", "init_app", "metadata"]


def init_app(
    app: Flask,
    db: Any,
    *,
    user_lookup: UserLookup | None = None,
    users_lookup: UsersLookup | None = None,
    feed: ChangeFeed | None = None,
    url_prefix: str | None = None,
) -> AppStore:
    """Attach the store, schedules, exposures and the dashboard to `app`; return the store for the engine's
    `gatekeeper.init_app(app, FF_CONFIG_MAP, store=...)`.

    `db` is a database URL (``"sqlite:///path"``), a SQLAlchemy Engine, or Flask-SQLAlchemy's `db`.
    `user_lookup(text)` turns the email, name or id an admin types into a `UserRef`, or None (without it any
    text is taken as an id, unchecked); `users_lookup(texts)`, optional, finds many at once ({text: UserRef})
    for pasted lists of group members. `feed` carries changes between processes (default: LISTEN/NOTIFY on
    PostgreSQL, the TTL elsewhere). The dashboard is served under `url_prefix` (default: the
    `GATEKEEPER_URL_PREFIX` setting, else "/gatekeeper"). Exposures are recorded unless
    `GATEKEEPER_EXPOSURES` is off. Due scheduled changes are applied by a timer thread in each process
    (from its first request) unless `GATEKEEPER_TIMER` is off;
    flag evaluations become OpenTelemetry span events when `opentelemetry-api` is installed, unless
    `GATEKEEPER_OPENTELEMETRY` is off.
    """
    app_store = store.store.init_app(app, db, user_lookup=user_lookup, users_lookup=users_lookup, feed=feed)
    timer.init_app(app)
    schedules.init_app(app_store)
    outcomes.init_app(app, lambda: app_store.engine)
    releases.init_app(app)
    exposures.exposures.init_app(app, app_store.db)
    webhooks.init_app()
    telemetry.init_app(app)
    prefix = url_prefix or app.config.get("GATEKEEPER_URL_PREFIX") or "/gatekeeper"
    app.register_blueprint(dashboard.bp, url_prefix=prefix)
    api.init_app(app, prefix)  # the admin API, at <prefix>/api/v1
    ofrep.init_app(app)  # OFREP at GATEKEEPER_OFREP_PREFIX (default /ofrep), and gk.bootstrap()
    return app_store


def create_tables() -> None:
    """Create gatekeeper's tables on the current app's database, for an app that does not use Alembic
    (safe on every start). An app whose schema Alembic manages gets them from a migration instead."""
    store.store.create_tables()
