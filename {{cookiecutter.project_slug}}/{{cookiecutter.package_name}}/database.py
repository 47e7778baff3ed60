"""Database set-up: Alembic migrations (Flask-Migrate's `flask db ...`) own the schema; `flask init-db`
runs them.

`flask init-db` is `flask db upgrade` plus the store's one seed row, and it adopts a database made before
this project had migrations (tables present, no `alembic_version`): it records that database as the first
revision, then upgrades it. `flask init-db --demo-admin URL` then (re)creates the demo admin, as `flask users
demo-admin --url URL` does (one command for `make run`, which then imports the app once, not twice).
`init_db()` creates the tables straight from the models, for tests and scripts.

A SQLite file is created by `flask init-db` (`create_sqlite_files`) and nowhere else: the running app
opens it only if it exists, so a missing or misplaced file is an error that names the path, never a silently
empty database.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

import click
import flask_migrate
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import URL, event, inspect
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError

from . import auth
from .extensions import db
from .gatekeeper_control import create_tables as create_gatekeeper_tables

log = logging.getLogger(__name__)

# The revision that creates the users and gatekeeper tables (migrations/versions/0001_*.py).
FIRST_REVISION = "0001"


def init_db() -> None:
    """Create every missing table (the app's models, the flag store's, exposures'); existing data is kept."""
    create_sqlite_files()
    db.create_all()
    create_gatekeeper_tables()


def create_sqlite_files() -> None:
    """Create the app's SQLite database files (and their folders) that do not exist yet."""
    for engine in db.engines.values():
        path = _sqlite_file(engine.url)
        if path is not None and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Readable by this user only (it holds password hashes); SQLite gives its journal and WAL files
            # the database file's permissions.
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            sqlite3.connect(path).close()


def _sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL; None for other databases, in-memory ones and `file:` URIs."""
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).resolve()


def _open_existing_file_only(dialect: Any, record: Any, cargs: list[Any], cparams: dict[str, Any]) -> None:
    """SQLAlchemy's `do_connect` hook: open the file read-write, never create it (SQLite's default)."""
    path = Path(cargs[0]).resolve()
    if not path.exists():
        raise sqlite3.OperationalError(
            f"the SQLite database {path} does not exist: create it with `flask init-db`, "
            "or point DATABASE_URL at the right file"
        )
    cargs[:1] = [f"{path.as_uri()}?mode=rw"]
    cparams["uri"] = True


def _reconnect_when_replaced(engine: Any, path: Path) -> None:
    """Hand out no pooled connection to a SQLite file that has since been replaced (deleted, restored from a
    backup, moved over): such a connection still reads and writes the old, unlinked file, so writes failed
    ("readonly database") and a `flask users revoke` in the new file went unseen. Each connection remembers
    the file it opened (device and inode); on checkout a different or missing file makes the pool drop it
    and connect again (SQLAlchemy retries a checkout that raises DisconnectionError). One stat() a checkout.
    """

    def remember_file(dbapi_connection: Any, record: Any) -> None:
        record.info["sqlite_file"] = _file_identity(path)

    def same_file_or_reconnect(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("sqlite_file") != _file_identity(path):
            raise DisconnectionError(f"the SQLite database {path} was replaced; reconnecting")

    event.listen(engine, "connect", remember_file)
    event.listen(engine, "checkout", same_file_or_reconnect)


def _file_identity(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_dev, status.st_ino


def upgrade_db() -> None:
    """Upgrade to the newest migration (adopting a database made before migrations), then seed the store."""
    create_sqlite_files()
    tables = set(inspect(db.engine).get_table_names())
    if "users" in tables and "alembic_version" not in tables:
        flask_migrate.stamp(revision=FIRST_REVISION)
    flask_migrate.upgrade()
    create_gatekeeper_tables()  # the tables exist by now: this adds the version row concurrent writers use


@click.command("init-db")
@click.option(
    "--demo-admin",
    "demo_admin_url",
    metavar="URL",
    callback=auth.check_served_url,
    help="Then (re)create the demo admin, as `flask users demo-admin --url URL` does.",
)
@with_appcontext
def init_db_command(demo_admin_url: str | None) -> None:
    """Run the migrations (`flask db upgrade`) and seed the store (safe to run again: nothing is dropped)."""
    upgrade_db()
    click.echo(f"Database ready: {db.engine.url.render_as_string(hide_password=True)}")
    if demo_admin_url is not None:
        auth.reset_demo_admin(demo_admin_url)


def _end_session_quietly(exception: BaseException | None = None) -> None:
    """End the request's database session before Flask-SQLAlchemy's own teardown does (teardowns run last
    registered first). Its rollback raises on a connection the server has just dropped (`AdminShutdown` while
    PostgreSQL stops), after the page was made, and the client got the server's bare 500 for a page that had
    worked. The broken connection is discarded by the pool; the next request gets a fresh one."""
    try:
        db.session.remove()
    except SQLAlchemyError as error:
        log.warning("ending the request's database session failed: %s", getattr(error, "orig", None) or error)
        db.session.registry.clear()


def init_app(app: Flask) -> None:
    """Register `flask init-db`, make sure the instance folder exists, and never let SQLite create a file."""
    os.makedirs(app.instance_path, exist_ok=True)
    app.cli.add_command(init_db_command)
    app.teardown_appcontext(_end_session_quietly)
    with app.app_context():
        for engine in db.engines.values():
            path = _sqlite_file(engine.url)
            if path is not None:
                event.listen(engine, "do_connect", _open_existing_file_only)
                _reconnect_when_replaced(engine, path)
