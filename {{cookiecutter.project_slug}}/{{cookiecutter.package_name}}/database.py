"""Database set-up: `flask init-db` creates every table the app needs, the gatekeeper store's included."""

from __future__ import annotations

import os

import click
from flask import Flask
from flask.cli import with_appcontext

from .extensions import db
from .gatekeeper_exposures import exposures
from .gatekeeper_store import store


def init_db() -> None:
    """Create every missing table (the app's models, the flag store's, exposures'); existing data is kept."""
    db.create_all()
    store.create_tables()
    exposures.create_tables()


@click.command("init-db")
@with_appcontext
def init_db_command() -> None:
    """Create the database tables (safe to run again: nothing is dropped)."""
    init_db()
    click.echo(f"Database ready: {db.engine.url.render_as_string(hide_password=True)}")


def init_app(app: Flask) -> None:
    """Register `flask init-db`, and make sure the instance folder (home of the SQLite file) exists."""
    os.makedirs(app.instance_path, exist_ok=True)
    app.cli.add_command(init_db_command)
