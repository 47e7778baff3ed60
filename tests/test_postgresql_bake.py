"""The `database=postgresql` bake passes its own suite on a real PostgreSQL server, as its README tells CI to
run it: `TEST_DATABASE_URL` names a database, and every test app gets a schema of its own there."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bakery import run
from pgserver import PostgresServer, postgres_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with postgres_server() as running:
        yield running


def test_postgresql_bake_passes_its_own_suite_on_a_real_server(bake, baked_env, project_copy, server):
    """Every baked test passes with PostgreSQL under the app, and the test schemas are dropped afterwards."""
    project = project_copy(bake(database="postgresql"))
    env = {**baked_env(extras=("dev", "postgres")), "TEST_DATABASE_URL": server.create_database("suite")}
    pytest_args = ["-q", "--tb=short", "-rfE", "-p", "no:cacheprovider"]
    run(["python", "-m", "pytest", *pytest_args], cwd=project, env=env)
    leftover = server.query("suite", "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'test_%'")
    assert leftover == "0"
