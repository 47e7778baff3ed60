"""The application factory: settings, extensions, flags and pages, assembled in one place."""

from __future__ import annotations

from typing import Any

from flask import Flask

from . import auth, database, errors, extensions, gatekeeper, gatekeeper_dashboard, security, views
from .config import Settings
from .gatekeeper_check import check_command  # noqa: F401  (importing it adds `flask gk check`)
from .gatekeeper_config import CODE_GROUPS, FF_CONFIG_MAP
from .gatekeeper_exposures import exposures
from .gatekeeper_store import store


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, flags, pages."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(Settings.from_env(app.instance_path))
    if test_config:
        app.config.update(test_config)

    security.init_app(app)
    extensions.init_app(app)
    database.init_app(app)
    overrides = store.init_app(app, extensions.db, user_lookup=auth.lookup_user)
    gatekeeper.init_app(app, FF_CONFIG_MAP, store=overrides, groups=CODE_GROUPS, user_by_id=auth.user_by_id)
    exposures.init_app(app, extensions.db)
    auth.init_app(app)
    errors.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(gatekeeper_dashboard.bp, url_prefix=app.config["GATEKEEPER_URL_PREFIX"])
    return app
