"""Exposures in PostgreSQL: two gunicorn workers count the same flags in the same hour, and their writes
at shutdown add up (the upsert's ON CONFLICT DO UPDATE path), with each visitor counted once, while
visitors with oversized `gk_anon` cookies neither become units nor break the writes."""

from __future__ import annotations

import json
import secrets
import urllib.request

import pytest
from bakery import copy_project, flask_cli, gunicorn, run
from test_postgres import database_url  # noqa: F401  (the throwaway PostgreSQL server fixture)

pytestmark = pytest.mark.slow

VISITS = 80
FLOOD = 6  # requests with a 300-character gk_anon cookie: in the probe, enough to stop both workers' writes

COUNT_SCRIPT = """
import json, os, sqlalchemy
engine = sqlalchemy.create_engine(os.environ["DATABASE_URL"])
with engine.connect() as connection:
    exposures = connection.execute(sqlalchemy.text(
        "SELECT flag, CAST(SUM(count) AS INTEGER) FROM gatekeeper_exposures GROUP BY flag")).all()
    units = connection.execute(sqlalchemy.text(
        "SELECT flag, COUNT(DISTINCT unit) FROM gatekeeper_exposure_units GROUP BY flag")).all()
    longest = connection.scalar(sqlalchemy.text("SELECT MAX(LENGTH(unit)) FROM gatekeeper_exposure_units"))
print(json.dumps({"exposures": dict(exposures), "units": dict(units), "longest": longest}))
"""


def test_two_workers_exposures_add_up_in_postgresql(baked_project, baked_env, database_url, tmp_path):  # noqa: F811
    """Each of 80 visitors opens the home page (two workers share them), and six visitors send a
    300-character `gk_anon` cookie. Both rollout flags are forced, so no rollout replaces the cookie with an
    id of the engine's, and MY_NEW_FEATURE's rule (no rollout) counts units. When gunicorn stops, both
    workers' buffers are written: the counts add up to every visit, each well-formed visitor is one unit,
    and no oversized cookie is a unit (in the probe, one such row failed each worker's writes for good)."""
    project = copy_project(baked_project, tmp_path)
    env = {
        **baked_env(extras=("dev", "postgres")),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "exposures-postgres-secret",
        "GATEKEEPER_EXPOSURES_FLUSH": "3600",  # nothing is written before the workers stop
    }
    flask_cli(project, env, "init-db")
    flask_cli(project, env, "gk", "force", "HOMEPAGE_EXPERIMENT", "CONTROL")
    flask_cli(project, env, "gk", "force", "NEW_CHECKOUT", "OFF")
    oversized = "f" * 300
    with gunicorn(project, env, "--workers", "2") as url:
        for cookie in [secrets.token_hex(16) for _ in range(VISITS)] + [oversized] * FLOOD:
            visitor = urllib.request.Request(f"{url}/", headers={"Cookie": f"gk_anon={cookie}"})
            with urllib.request.urlopen(visitor, timeout=10) as response:
                assert response.status == 200
        while_serving = json.loads(run(["python", "-c", COUNT_SCRIPT], cwd=project, env=env).stdout)
    assert while_serving == {"exposures": {}, "units": {}, "longest": None}
    counts = json.loads(run(["python", "-c", COUNT_SCRIPT], cwd=project, env=env).stdout)
    # The readiness checks of the server helper also open the home page, without a cookie (so no unit).
    for flag in ("MY_NEW_FEATURE", "HOMEPAGE_EXPERIMENT", "NEW_CHECKOUT"):
        assert counts["exposures"][flag] >= VISITS + FLOOD
    assert counts["units"] == {"MY_NEW_FEATURE": VISITS}  # a forced variant says nothing about the split
    assert counts["longest"] == len("anon:") + 32
