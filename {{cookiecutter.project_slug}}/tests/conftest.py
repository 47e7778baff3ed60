"""Shared fixtures: the app on a fresh database (SQLite, or TEST_DATABASE_URL's server), its client and CLI
runner, users, and logging in."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.security import generate_password_hash

from {{ cookiecutter.package_name }} import create_app, database, gatekeeper
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.models import User
from tests.databases import drop_database, new_database

PASSWORD = "correct horse battery staple"
# Test users get a cheap hash: a real key derivation on every login would slow the suite for nothing.
_PASSWORD_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")


def _make_test_app(db_file: Path, **config: Any) -> Flask:
    """The app as tests use it: a private database with every table, and no CSRF unless asked for. A test
    that names its own SQLALCHEMY_DATABASE_URI gets that one (and no schema of PostgreSQL's is made)."""
    database_url = config.pop("SQLALCHEMY_DATABASE_URI", None) or new_database(db_file)
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test-secret-key",
            "SQLALCHEMY_DATABASE_URI": database_url,
            "WTF_CSRF_ENABLED": False,
            "IS_DEV": False,  # whatever the developer's .env says, flag rules see production
            "RATELIMIT_ENABLED": False,  # logins are throttled only in the tests of it (test_throttling.py)
            # No listener thread per test app: tests of the TTL see the TTL; push has tests of its own.
            "GATEKEEPER_STORE_PUSH": False,
            "GATEKEEPER_CHANGE_FEED": "",  # automatic, whatever .env says (Redis: test_redis_feed.py)
            # No timer thread per test app: tests run its jobs with timer.run_due(app) (test_timer.py).
            "GATEKEEPER_TIMER": False,
            **config,
        }
    )
    with app.app_context():
        database.init_db()
    return app


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """`make_app(**config)`: a test app with its own database and extra settings, e.g. IS_DEV=True."""
    apps: list[Flask] = []

    def make(**config: Any) -> Flask:
        apps.append(_make_test_app(tmp_path / f"app{len(apps)}.db", **config))
        return apps[-1]

    yield make
    for app in apps:
        with app.app_context():
            db.engine.dispose()
        drop_database(app.config["SQLALCHEMY_DATABASE_URI"])


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture(scope="module")
def module_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """One app for a whole test module, for tests that each make things of their own names in it (an app
    per test costs more than many such tests)."""
    app = _make_test_app(tmp_path_factory.mktemp("module") / "app.db")
    yield app
    with app.app_context():
        db.engine.dispose()
    drop_database(app.config["SQLALCHEMY_DATABASE_URI"])


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


# --- Users --------------------------------------------------------------------------------------------------


def add_user(app: Flask, email: str, *, user_id: int | None = None, is_admin: bool = False) -> User:
    """Create a user who logs in with PASSWORD; returned detached, so its fields read outside the app."""
    with app.app_context():
        user = User(id=user_id, email=email, password_hash=_PASSWORD_HASH, is_admin=is_admin)
        db.session.add(user)
        db.session.commit()
        if user_id is not None and db.engine.dialect.name == "postgresql":
            # A chosen id does not move PostgreSQL's sequence: move it, so the next new user gets a free id.
            db.session.execute(db.text("SELECT setval('users_id_seq', (SELECT max(id) FROM users))"))
            db.session.commit()
        db.session.refresh(user)
        db.session.expunge(user)
    return user


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    """`make_user(email, user_id=None, is_admin=False)`: another user of `app`."""
    return functools.partial(add_user, app)


@pytest.fixture
def admin(make_user: Callable[..., User]) -> User:
    """An admin with id 1, which also makes them a team user for MY_NEW_FEATURE."""
    return make_user("admin@example.com", user_id=1, is_admin=True)


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    """A user who is neither an admin nor on the team (id 42)."""
    return make_user("user@example.com", user_id=42)


@pytest.fixture
def password() -> str:
    """The password of every user the fixtures create."""
    return PASSWORD


@pytest.fixture
def login() -> Callable[..., None]:
    """`login(client, user)`: log in through the real login form."""

    def log_in(client: FlaskClient, user: User, password: str = PASSWORD) -> None:
        response = client.post("/auth/login", data={"email": user.email, "password": password})
        assert response.status_code == 302, f"logging in as {user.email} failed"

    return log_in


# --- CSRF on ------------------------------------------------------------------------------------------------


@pytest.fixture
def csrf_app(make_app: Callable[..., Flask]) -> Flask:
    """The app as it runs in production: every POST needs a CSRF token."""
    return make_app(WTF_CSRF_ENABLED=True)


@pytest.fixture
def csrf_client(csrf_app: Flask) -> FlaskClient:
    return csrf_app.test_client()


@pytest.fixture
def csrf_user(csrf_app: Flask) -> User:
    return add_user(csrf_app, "csrf@example.com")


# --- Flags --------------------------------------------------------------------------------------------------


@pytest.fixture
def force_flag(app: Flask) -> Iterator[Callable[[str, str], None]]:
    """`force_flag(flag, variant)`: everyone gets `variant` of `flag` until the test ends.

    Tests then do not depend on who is on the team or which rollout bucket a user id falls in.
    """
    with contextlib.ExitStack() as stack:

        def force(flag: str, variant: str) -> None:
            stack.enter_context(gatekeeper.forced_variant(flag, variant, app))

        yield force
