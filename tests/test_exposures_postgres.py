"""Exposures in PostgreSQL: two gunicorn workers count the same flags in the same hour, and their writes
at shutdown add up (the upsert's ON CONFLICT DO UPDATE path), with each visitor counted once."""

from __future__ import annotations

import json
import secrets
import urllib.request

import pytest
from bakery import copy_project, flask_cli, gunicorn, run
from test_postgres import database_url  # noqa: F401  (the throwaway PostgreSQL server fixture)

pytestmark = pytest.mark.slow

VISITS = 80

COUNT_SCRIPT = """
import json, os, sqlalchemy
engine = sqlalchemy.create_engine(os.environ["DATABASE_URL"])
with engine.connect() as connection:
    exposures = connection.execute(sqlalchemy.text(
        "SELECT flag, CAST(SUM(count) AS INTEGER) FROM gatekeeper_exposures GROUP BY flag")).all()
    units = connection.execute(sqlalchemy.text(
        "SELECT flag, COUNT(DISTINCT unit) FROM gatekeeper_exposure_units GROUP BY flag")).all()
print(json.dumps({"exposures": dict(exposures), "units": dict(units)}))
"""


def test_two_workers_exposures_add_up_in_postgresql(baked_project, baked_env, database_url, tmp_path):  # noqa: F811
    """Each of 80 visitors opens the home page (two workers share them); when gunicorn stops, both
    workers' buffers are written, the counts add up to 80 per flag and each visitor is one unit."""
    project = copy_project(baked_project, tmp_path)
    env = {
        **baked_env(extras=("dev", "postgres")),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "exposures-postgres-secret",
        "GATEKEEPER_EXPOSURES_FLUSH": "3600",  # nothing is written before the workers stop
    }
    flask_cli(project, env, "init-db")
    with gunicorn(project, env, "--workers", "2") as url:
        for _ in range(VISITS):
            visitor = urllib.request.Request(
                f"{url}/", headers={"Cookie": f"gk_anon={secrets.token_hex(16)}"}
            )
            with urllib.request.urlopen(visitor, timeout=10) as response:
                assert response.status == 200
        while_serving = json.loads(run(["python", "-c", COUNT_SCRIPT], cwd=project, env=env).stdout)
    assert while_serving == {"exposures": {}, "units": {}}
    counts = json.loads(run(["python", "-c", COUNT_SCRIPT], cwd=project, env=env).stdout)
    # The readiness checks of the server helper also open the home page, without a cookie.
    for flag in ("MY_NEW_FEATURE", "HOMEPAGE_EXPERIMENT"):
        assert counts["exposures"][flag] >= VISITS
        assert counts["units"][flag] >= VISITS
        assert counts["exposures"][flag] == counts["units"][flag]
