"""The Alembic migrations in migrations/ build exactly the schema the models describe, and `flask init-db`
runs them: on an empty database, again on an up-to-date one, and on one made before there were migrations."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import flask_migrate
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask
from sqlalchemy import inspect

from {{ cookiecutter.package_name }} import create_app, database
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.gatekeeper_control import metadata as gatekeeper_metadata
from {{ cookiecutter.package_name }}.gatekeeper_control.store import store
from {{ cookiecutter.package_name }}.models import User
from tests.databases import drop_database, new_database
from tests.store_helpers import STORE_TABLES


@pytest.fixture
def empty_app(tmp_path: Path) -> Iterator[Flask]:
    """The app on a database with no tables at all."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": new_database(tmp_path / "empty.db")})
    with app.app_context():
        database.create_sqlite_files()  # an empty file, as `flask init-db` makes (the app never does)
    yield app
    with app.app_context():
        db.engine.dispose()
    drop_database(app.config["SQLALCHEMY_DATABASE_URI"])


def head_revision(app: Flask) -> str:
    with app.app_context():
        return ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config()).get_current_head()


def current_revision(app: Flask) -> str | None:
    with app.app_context(), db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def schema_differences(app: Flask) -> list:
    """What autogenerate would put in a new migration: the models' schema against the database's."""
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        return compare_metadata(context, [db.metadata, gatekeeper_metadata])


def test_the_migrations_build_exactly_the_schema_of_the_models(empty_app):
    """After `upgrade`, autogenerate finds nothing to add, drop or alter: a model changed without a new
    migration fails here (run `make migration m="what changed"`)."""
    with empty_app.app_context():
        flask_migrate.upgrade()
    assert schema_differences(empty_app) == []


def test_init_db_runs_every_migration_on_an_empty_database(empty_app):
    """`flask init-db` leaves the database at the newest revision, with the users and store tables."""
    result = empty_app.test_cli_runner().invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert current_revision(empty_app) == head_revision(empty_app)
    with empty_app.app_context():
        assert {"users", *STORE_TABLES} <= set(inspect(db.engine).get_table_names())


def test_init_db_on_an_up_to_date_database_changes_nothing(empty_app):
    """A second `flask init-db` (as every `make run` does) succeeds and keeps what was stored."""
    runner = empty_app.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    with empty_app.app_context():
        store.force("MY_NEW_FEATURE", "VISIBLE", actor="test")
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    with empty_app.app_context():
        assert store.snapshot(max_age=0).forced == {"MY_NEW_FEATURE": "VISIBLE"}


def test_init_db_with_demo_admin_also_makes_the_admin_whose_password_it_prints(empty_app):
    """`flask init-db --demo-admin URL` (what `make run` runs) migrates, then prints the demo admin's login
    link at URL, email and password, as `flask users demo-admin` does: an admin with that password."""
    result = empty_app.test_cli_runner().invoke(args=["init-db", "--demo-admin", "http://127.0.0.1:8123"])
    assert result.exit_code == 0, result.output
    assert current_revision(empty_app) == head_revision(empty_app)
    assert "Log in at http://127.0.0.1:8123/auth/login" in result.output
    email = re.search(r"email:\s+(\S+)", result.output).group(1)
    password = re.search(r"password:\s+(\S+)", result.output).group(1)
    with empty_app.app_context():
        admin = User.find(email)
        assert admin.is_admin and admin.check_password(password)


def test_init_db_with_a_bad_demo_admin_url_says_so_and_changes_nothing(empty_app):
    """A `--demo-admin` value that is not an address is refused before anything is migrated."""
    result = empty_app.test_cli_runner().invoke(args=["init-db", "--demo-admin", "localhost:5000"])
    assert result.exit_code == 2
    assert "'localhost:5000' is not an address the app is served at" in result.output
    assert current_revision(empty_app) is None


def test_init_db_adopts_a_database_made_before_migrations(app, runner, admin):
    """Tables made by `create_all` (the old `flask init-db`) are recorded as the first revision and upgraded,
    not created again; the users in them stay."""
    assert current_revision(app) is None
    result = runner.invoke(args=["init-db"])
    assert result.exit_code == 0, result.output
    assert current_revision(app) == head_revision(app)
    with app.app_context():
        assert db.session.get(type(admin), admin.id).email == admin.email


def test_downgrade_to_base_removes_every_table(empty_app):
    """The first migration's downgrade undoes it completely, so a bad release can be rolled back."""
    with empty_app.app_context():
        flask_migrate.upgrade()
        flask_migrate.downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
