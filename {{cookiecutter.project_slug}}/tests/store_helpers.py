"""Store and dashboard test helpers: another process on the same database, a clock, a query counter."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, NamedTuple

from flask import Flask
from sqlalchemy import Engine, create_engine, event

from {{ cookiecutter.package_name }} import gatekeeper
from {{ cookiecutter.package_name }}.extensions import db
from {{ cookiecutter.package_name }}.gatekeeper import FeatureFlagConfig
from {{ cookiecutter.package_name }}.gatekeeper_config import FF_CONFIG_MAP
from {{ cookiecutter.package_name }}.gatekeeper_control import schedules
from {{ cookiecutter.package_name }}.gatekeeper_control.snapshot import UserRef
from {{ cookiecutter.package_name }}.gatekeeper_control.store import AuditEntry, OverrideStore, Snapshot, store

BOUND = 10.0  # seconds a test waits for what takes milliseconds: generous for a busy machine


def eventually(check: Callable[[], bool], timeout: float = BOUND) -> bool:
    """Whether `check()` comes true within `timeout` seconds (asked every 10 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


class FakeClock:
    """A monotonic clock the test moves by hand, so staleness is tested without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OldMyNewFeature(FeatureFlagConfig):
    """MY_NEW_FEATURE as an older deploy had it, with a variant the current code dropped."""

    FLAG_NAME = "MY_NEW_FEATURE"
    VARIANTS_ENUM_STR = "VISIBLE NOT_VISIBLE RETIRED"
    DEFAULT_VARIANT = "NOT_VISIBLE"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.variants_enum.NOT_VISIBLE


class RemovedFlag(FeatureFlagConfig):
    """A flag an older deploy had and the current code removed."""

    FLAG_NAME = "REMOVED_FLAG"
    VARIANTS_ENUM_STR = "ON OFF"
    DEFAULT_VARIANT = "OFF"

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        return self.variants_enum.OFF


STORE_TABLES = (
    "gatekeeper_version",
    "gatekeeper_forced_variants",
    "gatekeeper_user_overrides",
    "gatekeeper_audit_log",
)
OLD_CONFIG_MAP = {"MY_NEW_FEATURE": OldMyNewFeature(), "REMOVED_FLAG": RemovedFlag()}


class Process(NamedTuple):
    """Another worker or server: its own app, store (with its own snapshot) and database engine."""

    app: Flask
    store: OverrideStore
    engine: Engine


def snapshot(app: Flask) -> Snapshot:
    """What the store holds now, read from the database."""
    with app.app_context():
        return store.snapshot(max_age=0)


def audit_log(app: Flask, flag: str | None = None) -> list[AuditEntry]:
    """The newest audit entries (up to 100), optionally for one flag."""
    with app.app_context():
        return store.audit_entries(page=1, per_page=100, flag=flag).entries


def another_process(
    app: Flask | None,
    *,
    config_map: Mapping[str, FeatureFlagConfig] = FF_CONFIG_MAP,
    clock: Callable[[], float] = time.monotonic,
    ttl: float = 5.0,
    database_url: str | None = None,
    push: bool = False,
    change_feed: str = "",
) -> Process:
    """A second app on `app`'s database (or on `database_url`), as another worker would run it; `change_feed`
    is its GATEKEEPER_CHANGE_FEED."""
    if database_url is None:
        assert app is not None, "another process needs an app or a database URL"
        database_url = app.config["SQLALCHEMY_DATABASE_URI"]
    other = Flask("another_process")
    other.config.update(
        TESTING=True,
        SECRET_KEY="another-process",
        GATEKEEPER_STORE_TTL=ttl,
        GATEKEEPER_STORE_PUSH=push,
        GATEKEEPER_CHANGE_FEED=change_feed,
    )
    other_store = OverrideStore(clock=clock)
    engine = create_engine(database_url)
    lookup = lambda text: UserRef(id=text, label=f"user {text}")  # noqa: E731
    schedules.init_app(other_store.init_app(other, engine, user_lookup=lookup))
    gatekeeper.init_app(other, config_map, store=other_store)
    return Process(other, other_store, engine)


def write_stale_overrides(app: Flask) -> None:
    """Store overrides the current code no longer understands, as an older deploy would have left them."""
    old = another_process(app, config_map=OLD_CONFIG_MAP)
    with old.app.app_context():
        old.store.force("REMOVED_FLAG", "ON", actor="old deploy")
        old.store.set_user_override("REMOVED_FLAG", "7", "ON", actor="old deploy")
        old.store.set_user_override("MY_NEW_FEATURE", "8", "RETIRED", actor="old deploy")


@contextmanager
def count_queries(target: Flask | Engine) -> Iterator[list[str]]:
    """Every SQL statement run inside the block by `target` (an engine, or the app's database engine)."""
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    if isinstance(target, Engine):
        engine = target
    else:
        with target.app_context():
            engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def drop_store_tables(app: Flask) -> None:
    """Break the store the way a lost database would: its tables are gone."""
    with app.app_context(), db.engine.begin() as connection:
        for table in STORE_TABLES:
            connection.exec_driver_sql(f"DROP TABLE {table}")


def wait_for_refresh(app: Flask) -> None:
    """Until the snapshot refresh a request started in the background has finished (it holds the lock)."""
    with app.extensions["gatekeeper_store"].lock:
        pass
