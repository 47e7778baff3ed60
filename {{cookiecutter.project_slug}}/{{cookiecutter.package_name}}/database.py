"""Database set-up: Alembic migrations (Flask-Migrate's `flask db ...`) own the schema; `flask init-db`
runs them.

`flask init-db` is `flask db upgrade` plus the store's one seed row, and it adopts a database made before
this project had migrations (tables present, no `alembic_version`): it records that database as the first
revision, then upgrades it. `init_db()` creates the tables straight from the models, for tests and scripts.
"""

from __future__ import annotations

import os

import click
import flask_migrate
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import inspect

from .extensions import db
from .gatekeeper_store import store

# The revision that creates the users and gatekeeper tables (migrations/versions/0001_*.py).
FIRST_REVISION = "0001"


def init_db() -> None:
    """Create every missing table from the models (the app's, then the store's); existing data is kept."""
    db.create_all()
    store.create_tables()


def upgrade_db() -> None:
    """Upgrade to the newest migration (adopting a database made before migrations), then seed the store."""
    tables = set(inspect(db.engine).get_table_names())
    if "users" in tables and "alembic_version" not in tables:
        flask_migrate.stamp(revision=FIRST_REVISION)
    flask_migrate.upgrade()
    store.create_tables()  # the tables exist by now; this adds the version row concurrent writers count on


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Run the migrations (`flask db upgrade`) and seed the store (safe to run again: nothing is dropped)."""
    upgrade_db()
    click.echo(f"Database ready: {db.engine.url.render_as_string(hide_password=True)}")


def init_app(app: Flask) -> None:
    """Register `flask init-db`, and make sure the instance folder (home of the SQLite file) exists."""
    os.makedirs(app.instance_path, exist_ok=True)
    app.cli.add_command(init_db_command)
