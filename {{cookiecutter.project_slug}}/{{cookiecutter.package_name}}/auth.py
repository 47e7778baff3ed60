"""Logging in and out, and `flask users` to create accounts from a terminal."""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import urlsplit

import click
from email_validator import EmailNotValidError, validate_email
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.cli import AppGroup
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response
from wtforms import BooleanField, EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Email, Length

from .extensions import db, limiter, login_manager
from .gatekeeper_control.checks import shorten
from .gatekeeper_control.snapshot import UserRef
from .models import User

bp = Blueprint("auth", __name__, url_prefix="/auth")

DEMO_ADMIN_EMAIL = "admin@example.com"
# Made beside the demo admin (`make run`, `flask users demo-admin`), never by `make serve`: people to put in
# groups, pin to variants and look up on the dashboard, without a shell.
DEMO_USER_EMAILS = ("ann@example.com", "bob@example.com", "carol@example.com")
MIN_PASSWORD_LENGTH = 8


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254), Email()])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    remember = BooleanField("Keep me logged in on this device")
    next = HiddenField()


# --- Throttling ---------------------------------------------------------------------------------------------
# Failed login attempts are counted per account and per client address (Flask-Limiter, the LOGIN_LIMIT_*
# settings). The limits are checked before the view runs, so a throttled attempt gets the 429 page without
# any password hashing; only failures count, so a user who types the right password uses up nothing.


def _account_key() -> str:
    """The account a login attempt names, hashed: the limiter's storage never holds an email address."""
    email = request.form.get("email", "").strip().lower()
    return hashlib.sha256(email.encode()).hexdigest()


def _attempt_failed(response: Response) -> bool:
    return bool(g.get("login_failed"))


def _per_account() -> str:
    return current_app.config["LOGIN_LIMIT_PER_ACCOUNT"]


def _per_address() -> str:
    return current_app.config["LOGIN_LIMIT_PER_ADDRESS"]


# --- Pages --------------------------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_per_address, scope="address", methods=["POST"], deduct_when=_attempt_failed)
@limiter.limit(
    _per_account,
    scope="account",
    key_func=_account_key,
    methods=["POST"],
    deduct_when=_attempt_failed,
)
def login() -> Response | str:
    """Show the login form; on success go where the visitor was headed (on this site only)."""
    form = LoginForm()
    if not form.is_submitted():
        form.next.data = request.args.get("next", "")
        if current_user.is_authenticated:
            return redirect(safe_next(form.next.data) or url_for("views.home"))
    if form.validate_on_submit():
        user = authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            _new_session()
            login_user(user, remember=form.remember.data)
            flash(f"Logged in as {user.email}.", "success")
            return redirect(safe_next(form.next.data) or url_for("views.home"))
        # One message for an unknown email and a wrong password: the form must not reveal who has an account.
        flash("Wrong email or password.", "error")
        g.login_failed = True
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout() -> Response:
    """Log out. A POST (with the CSRF token) so that no link or image on another site can log anyone out.

    The user's session token changes, so no copy of the session or remember-me cookie (on this device or
    another) logs in again.
    """
    if current_user.is_authenticated:
        current_user.revoke_sessions()
        db.session.commit()
        _new_session()
        logout_user()  # after: it marks the remember-me cookie for deletion in the new session
        flash("Logged out.", "info")
    return redirect(url_for("views.home"))


def _new_session() -> None:
    """Start a fresh session at login and logout: nothing from before carries over, the CSRF secrets
    (Flask-WTF's and the dashboard's) included, so a token taken before login is refused after it."""
    session.clear()
    g.pop(current_app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)  # Flask-WTF's per-request copy


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None: never an open redirect to another host.

    Only a single leading slash is allowed; `//host`, backslashes (`/\\host`), schemes and control
    characters (browsers drop a tab, so `/<tab>/host` would become `//host`) are refused.
    """
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(char) < 32 or ord(char) == 127 for char in target):
        return None
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


# --- Users --------------------------------------------------------------------------------------------------


@functools.cache
def _dummy_hash() -> str:
    return generate_password_hash(secrets.token_hex(16))


def authenticate(email: str, password: str) -> User | None:
    """The user with this email and password, or None."""
    user = User.find_by_email(email)
    if user is None:
        # Check against a throwaway hash so an unknown email takes as long to refuse as a wrong password.
        check_password_hash(_dummy_hash(), password)
        return None
    return user if user.check_password(password) else None


def load_user(session_token: str) -> User | None:
    """Flask-Login's lookup: the user whose session token the cookie holds (nobody once it is revoked).

    When the database cannot answer, the error reaches errors.py, which answers with the 503 page and sets
    `g.database_unavailable`; that page's layout asks again and is told "nobody", so it renders without the
    database.
    """
    if g.get("database_unavailable"):
        return None
    return User.find_by_session_token(session_token)


def user_by_id(user_id: object) -> User | None:
    """The user with this numeric id, for code groups asked about a user outside a request (`flask gk
    explain --user`, the dashboard's look-up). Flask-Login's loader cannot: it takes session tokens."""
    text = str(user_id)
    return User.find(text) if text.isascii() and text.isdigit() else None


def lookup_user(text: str) -> UserRef | list[UserRef]:
    """The user an admin typed for the flag store (an email or id), as an id and a recognisable label; for a
    text that is only part of an email, the users whose email holds it (up to 20; none: an empty list)."""
    user = User.find(text)
    if user is not None:
        return UserRef(id=str(user.id), label=user.email)
    return [UserRef(id=str(match.id), label=match.email) for match in User.search(text)]


def lookup_users(texts: Sequence[str]) -> dict[str, UserRef]:
    """`lookup_user` for many texts at once (a pasted list of group members), in a few queries."""
    return {text: UserRef(id=str(user.id), label=user.email) for text, user in User.find_many(texts).items()}


# --- `flask users` ------------------------------------------------------------------------------------------

users_cli = AppGroup("users", help="Create user accounts, and end their sessions.")


def _valid_email(ctx: click.Context, param: click.Parameter, email: str) -> str:
    try:
        return validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as error:
        raise click.BadParameter(
            f"{email!r} is not an email address ({error}); type one like ann@example.com"
        ) from None


def _valid_password(ctx: click.Context, param: click.Parameter, password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.BadParameter(f"use at least {MIN_PASSWORD_LENGTH} characters")
    return password


@contextmanager
def _database_errors() -> Iterator[None]:
    """Turn a database failure into a message that says what to do, with nothing half-written."""
    try:
        yield
    except SQLAlchemyError as error:
        db.session.rollback()
        reason = getattr(error, "orig", None) or error
        message = f"the database failed ({reason}). Is it set up? Run: flask init-db"
        raise click.ClickException(message) from None


@users_cli.command("create")
@click.argument("email", callback=_valid_email)
@click.option("--admin", is_flag=True, help="Let this user open the flag dashboard.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    callback=_valid_password,
    help="The password (asked for twice, hidden, when not given here).",
)
def create_user_command(email: str, admin: bool, password: str) -> None:
    """Create a user who logs in with EMAIL."""
    with _database_errors():
        if User.find_by_email(email) is not None:
            raise click.ClickException(f"a user with email {email} already exists")
        user = User(email=email, is_admin=admin)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
    click.echo(f"Created {'admin' if admin else 'user'} {email} (id {user.id}).")


@users_cli.command("revoke")
@click.argument("email")
def revoke_command(email: str) -> None:
    """End every session of the user with EMAIL, on every device: they must log in again."""
    with _database_errors():
        user = User.find_by_email(email)
        if user is None:
            raise click.ClickException(f"no user has the email {shorten(email.strip())}")
        user.revoke_sessions()
        db.session.commit()
    click.echo(f"Ended every session of {user.email}; they must log in again.")


def _is_served_url(url: str) -> bool:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a port that is not a number from 0 to 65535
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and port != 0


def check_served_url(ctx: click.Context, param: click.Parameter, url: str | None) -> str | None:
    """A click callback for an option naming where the app is served (for the login link it prints)."""
    if url is None:
        return None
    if not _is_served_url(url.strip()):
        raise click.BadParameter(
            f"{url!r} is not an address the app is served at; type one like http://127.0.0.1:5000"
        )
    return url.strip()


def reset_demo_admin(url: str) -> None:
    """Create (or reset) the admin admin@example.com with a fresh random password, and the demo users
    (DEMO_USER_EMAILS, not admins; an existing one keeps its admin flag) with another; print how to log in at
    `url`, where the app is served. `flask users demo-admin` and `flask init-db --demo-admin URL` call it."""
    password, users_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    with _database_errors():
        user = User.find_by_email(DEMO_ADMIN_EMAIL) or User(email=DEMO_ADMIN_EMAIL)
        user.is_admin = True
        user.set_password(password)
        db.session.add(user)
        for email in DEMO_USER_EMAILS:
            demo_user = User.find_by_email(email) or User(email=email, is_admin=False)
            demo_user.set_password(users_password)
            db.session.add(demo_user)
        db.session.commit()
    with current_app.test_request_context(base_url=url):
        login_url = url_for("auth.login", _external=True)
    click.echo(f"Demo admin ready. Log in at {login_url}")
    click.echo(f"  email:    {DEMO_ADMIN_EMAIL}")
    click.echo(f"  password: {password}")
    click.echo(f"Demo users (not admins), to fill groups and try overrides: {', '.join(DEMO_USER_EMAILS)}")
    click.echo(f"  their password: {users_password}")


@users_cli.command("demo-admin")
@click.option(
    "--url",
    default="http://127.0.0.1:5000",
    show_default=True,
    callback=check_served_url,
    help="Where the app is served.",
)
def demo_admin_command(url: str) -> None:
    """Create (or reset) the admin admin@example.com and three demo users with fresh random passwords, and say
    how to log in."""
    reset_demo_admin(url)


def init_app(app: Flask) -> None:
    """Register the login pages, Flask-Login's user lookup and `flask users`."""
    login_manager.user_loader(load_user)
    app.register_blueprint(bp)
    app.cli.add_command(users_cli)
