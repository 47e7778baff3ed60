"""Error pages: friendly, in the app's layout, and never showing internals."""

from __future__ import annotations

import logging
import math
import time
from contextlib import suppress

from flask import Flask, g, render_template
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import InternalServerError, NotFound

from .extensions import db, limiter

log = logging.getLogger(__name__)

# Seconds a browser (or a monitor) is asked to wait before retrying while the database is unreachable.
DATABASE_RETRY_AFTER = 30


def page_not_found(error: NotFound) -> tuple[str, int]:
    return render_template("errors/404.html"), 404


def form_expired(error: CSRFError) -> tuple[str, int]:
    """A POST without a valid CSRF token: most often a form left open too long, so say how to retry."""
    return render_template("errors/400.html"), 400


def too_many_attempts(error: RateLimitExceeded) -> tuple[str, int]:
    """A throttled login: say how long to wait (Flask-Limiter adds the same as `Retry-After`)."""
    limit = limiter.current_limit
    wait = max(1, math.ceil(limit.reset_at - time.time())) if limit is not None else 60
    return render_template("errors/429.html", wait=wait), 429


def database_unavailable(error: SQLAlchemyError) -> tuple[str, int, dict[str, str]]:
    """The database is missing or unreachable: a 503 in the app's layout (which then shows nobody logged in),
    and the next request tries the database again, so it comes back by itself."""
    log.error("database unavailable: %s", getattr(error, "orig", None) or error)
    g.database_unavailable = True  # the layout's user lookup (auth.load_user) now answers "nobody"
    with suppress(SQLAlchemyError):
        db.session.rollback()
    page = render_template("errors/503.html")
    return page, 503, {"Retry-After": str(DATABASE_RETRY_AFTER)}


def server_error(error: InternalServerError) -> tuple[str, int]:
    # The page is standalone (no current user, no flags): whatever broke must not break the error page.
    return render_template("errors/500.html"), 500


def init_app(app: Flask) -> None:
    app.register_error_handler(404, page_not_found)
    app.register_error_handler(CSRFError, form_expired)
    app.register_error_handler(RateLimitExceeded, too_many_attempts)
    app.register_error_handler(OperationalError, database_unavailable)
    app.register_error_handler(InterfaceError, database_unavailable)
    app.register_error_handler(500, server_error)
