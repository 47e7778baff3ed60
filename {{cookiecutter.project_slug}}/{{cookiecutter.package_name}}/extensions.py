"""The Flask extensions, created unbound here and attached to the app in `init_app`."""

from pathlib import Path

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """The app's models share this base (the gatekeeper store keeps its own, so it stays drop-in)."""


# pre-ping: after a database restart, a pooled connection the server dropped is replaced, not handed out.
db = SQLAlchemy(model_class=Base, engine_options={"pool_pre_ping": True})
login_manager = LoginManager()
csrf = CSRFProtect()
# Throttles logins (see auth.py); set up from the RATELIMIT_* settings. The client address is the one
# ProxyFix (security.py) resolved, so behind a proxy it is the visitor's, not the proxy's.
limiter = Limiter(key_func=get_remote_address)
migrate = Migrate()


def init_app(app: Flask) -> None:
    """Attach every extension to `app`; CSRF protection covers every POST, not only WTForms forms."""
    db.init_app(app)
    # The project's migrations/ folder, wherever `flask` runs from; batch mode lets SQLite alter tables.
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"), render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    limiter.init_app(app)
