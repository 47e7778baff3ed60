"""The application factory: settings, extensions, flags and pages, assembled in one place."""

from __future__ import annotations

from typing import Any

from flask import Flask

from . import auth, database, errors, extensions, gatekeeper, gatekeeper_control, security, views
from .config import Settings
from .gatekeeper_config import CODE_GROUPS, FF_CONFIG_MAP


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: settings, extensions, flags, pages."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(Settings.from_env(app.instance_path))
    if test_config:
        app.config.update(test_config)
        if app.testing and "GATEKEEPER_TIMER" not in test_config:
            # A test's app starts no timer thread unless it asks for one (tests run the jobs with
            # `timer.run_due(app)`): a thread left running for an app whose database is gone would log
            # errors into every later test.
            app.config["GATEKEEPER_TIMER"] = False

    security.init_app(app)
    extensions.init_app(app)
    database.init_app(app)
    overrides = gatekeeper_control.init_app(
        app, extensions.db, user_lookup=auth.lookup_user, users_lookup=auth.lookup_users
    )
    gatekeeper.init_app(app, FF_CONFIG_MAP, store=overrides, groups=CODE_GROUPS, user_by_id=auth.user_by_id)
    auth.init_app(app)
    errors.init_app(app)
    app.register_blueprint(views.bp)
    return app
