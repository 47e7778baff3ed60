"""Where each test app keeps its data: a private SQLite file, or a private schema on a real PostgreSQL server.

Set TEST_DATABASE_URL (e.g. `postgresql+psycopg:///{{ cookiecutter.project_slug }}_test`) to run the suite on
that server; each test app then gets a schema of its own, dropped when the test ends. Unset, every test app
gets a SQLite file in the test's tmp_path, so `make test` needs nothing installed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from sqlalchemy import create_engine, make_url

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()


def new_database(db_file: Path) -> str:
    """The URL of an empty database for one test app: `db_file` (SQLite), or a fresh PostgreSQL schema."""
    if not TEST_DATABASE_URL:
        return f"sqlite:///{db_file}"
    schema = f"test_{uuid.uuid4().hex[:16]}"
    _run(TEST_DATABASE_URL, f'CREATE SCHEMA "{schema}"')
    # Every connection of this URL finds its tables (and creates them) in the schema.
    url = make_url(TEST_DATABASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    """Remove what `new_database` made on the server (a SQLite file goes with the test's tmp_path)."""
    parsed = make_url(url)
    options = parsed.query.get("options", "")
    if parsed.get_backend_name() == "postgresql" and isinstance(options, str) and "search_path=" in options:
        schema = options.split("search_path=", 1)[1]
        _run(TEST_DATABASE_URL, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _run(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
