"""Error pages: friendly, in the app's layout, and never showing internals."""

from __future__ import annotations

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import InternalServerError, NotFound


def page_not_found(error: NotFound) -> tuple[str, int]:
    return render_template("errors/404.html"), 404


def form_expired(error: CSRFError) -> tuple[str, int]:
    """A POST without a valid CSRF token: most often a form left open too long, so say how to retry."""
    return render_template("errors/400.html"), 400


def server_error(error: InternalServerError) -> tuple[str, int]:
    # The page is standalone (no current user, no flags): whatever broke must not break the error page.
    return render_template("errors/500.html"), 500


def init_app(app: Flask) -> None:
    app.register_error_handler(404, page_not_found)
    app.register_error_handler(CSRFError, form_expired)
    app.register_error_handler(500, server_error)
