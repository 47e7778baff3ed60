"""The defaults bake on a real PostgreSQL server, as two gunicorn worker processes: the store works there, and
a change made in one process (the CLI, the dashboard) reaches every worker within `GATEKEEPER_STORE_TTL`.

The server is Debian's PostgreSQL (`make test` installs it when run as root), started for this module on a
free port of 127.0.0.1 with a throwaway data folder (`pgserver.postgres_server`), and stopped afterwards.
"""

from __future__ import annotations

import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from bakery import copy_project, csrf_token, flask_cli, gunicorn, log_in
from pgserver import postgres_server

pytestmark = pytest.mark.slow

TTL = 1  # seconds: GATEKEEPER_STORE_TTL of the served app
CONVERGE = TTL + 10  # every worker must agree within the TTL; the rest is slack for a busy machine
PASSWORD = "a postgres test password"
ADMIN, VIEWER = "admin@example.com", "viewer@example.com"


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL server and database; its SQLAlchemy URL."""
    with postgres_server() as server:
        yield server.create_database("gatekeeper")


@dataclass
class Served:
    url: str
    project: Path
    env: dict[str, str]

    def flask(self, *args: str) -> str:
        """Run `flask ARGS` in the project (another process than the server's workers); its output."""
        return flask_cli(self.project, self.env, *args)

    def page(self, path: str = "/") -> str:
        with urllib.request.urlopen(self.url + path) as response:
            return response.read().decode()


@pytest.fixture(scope="module")
def served(baked_project, baked_env, database_url, tmp_path_factory) -> Iterator[Served]:
    """The defaults bake with the `postgres` extra, its tables and users made, served by two workers."""
    project = copy_project(baked_project, tmp_path_factory.mktemp("postgres"))
    env = {
        **baked_env(extras=("dev", "postgres")),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "postgres-test-secret",
        "GATEKEEPER_STORE_TTL": str(TTL),
    }
    flask_cli(project, env, "init-db")
    # The viewer gets id 4: outside MY_NEW_FEATURE's team (ids 1, 2 and 3).
    for email in (ADMIN, "two@example.com", "three@example.com", VIEWER):
        admin = ["--admin"] if email == ADMIN else []
        flask_cli(project, env, "users", "create", email, "--password", PASSWORD, *admin)
    with gunicorn(project, env, "--workers", "2") as url:
        yield Served(url, project, env)


def experiment_variants(served: Served, requests: int = 30) -> set[str]:
    """The HOMEPAGE_EXPERIMENT variants that many new visitors get, whichever worker answers each."""
    pages = (served.page() for _ in range(requests))
    return {
        re.search(r'id="homepage-experiment" data-flag="\w+" data-variant="(\w+)"', p).group(1) for p in pages
    }


def eventually(check, timeout: float = CONVERGE) -> bool:
    """Whether `check()` comes true before `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def test_a_variant_forced_from_the_cli_reaches_every_worker_within_the_ttl(served):
    """`flask gk force` writes from a third process; both workers soon serve the forced variant to everyone,
    and after `flask gk unforce` visitors are spread over the variants again."""
    served.flask("gk", "force", "HOMEPAGE_EXPERIMENT", "VARIANT_B")
    assert eventually(lambda: experiment_variants(served) == {"VARIANT_B"})
    served.flask("gk", "unforce", "HOMEPAGE_EXPERIMENT")
    assert eventually(lambda: experiment_variants(served) != {"VARIANT_B"})


def test_a_user_override_from_the_cli_reaches_that_user(served):
    """An override for the viewer (outside the team) shows them MY_NEW_FEATURE once the workers reload."""
    session, home = log_in(served.url, VIEWER, PASSWORD)
    assert 'id="my-new-feature"' not in home
    served.flask("gk", "override", "MY_NEW_FEATURE", "VISIBLE", "--user", VIEWER)
    assert eventually(lambda: 'id="my-new-feature"' in session.open(served.url + "/").read().decode())


def test_a_dashboard_change_is_stored_and_audited_in_postgresql(served):
    """The admin forces a variant on the dashboard; the CLI, another process, reads it from the audit log."""
    session, _ = log_in(served.url, ADMIN, PASSWORD)
    flag_page = session.open(f"{served.url}/gatekeeper/flags/MY_NEW_FEATURE").read().decode()
    form = {"csrf_token": csrf_token(flag_page), "variant": "NOT_VISIBLE", "confirm": "yes"}
    session.open(
        f"{served.url}/gatekeeper/flags/MY_NEW_FEATURE/force", data=urllib.parse.urlencode(form).encode()
    )
    audit = served.flask("gk", "audit", "--flag", "MY_NEW_FEATURE")
    assert ADMIN in audit and "NOT_VISIBLE" in audit
    audit_page = session.open(f"{served.url}/gatekeeper/audit").read().decode()
    assert "forced for everyone" in audit_page
    served.flask("gk", "unforce", "MY_NEW_FEATURE")


def test_the_flag_list_renders_from_postgresql(served):
    """The flag list, with stored overrides and audit entries, answers 200 and lists both flags."""
    session, _ = log_in(served.url, ADMIN, PASSWORD)
    page = session.open(f"{served.url}/gatekeeper/").read().decode()
    assert "MY_NEW_FEATURE" in page and "HOMEPAGE_EXPERIMENT" in page


def test_a_scheduled_change_is_made_once_by_racing_workers(served):
    """Two workers on PostgreSQL pass a change's due time under concurrent requests: it is made and audited
    exactly once (the claiming UPDATE matches for one of them only), and every worker then serves it."""
    served.flask("gk", "schedule", "NEW_CHECKOUT", "+4s", "force", "ON")
    time.sleep(4)

    def checkout_variants() -> set[str]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            pages = list(pool.map(lambda _: served.page(), range(40)))
        return {re.search(r'data-flag="NEW_CHECKOUT" data-variant="(\w+)"', page).group(1) for page in pages}

    try:
        assert eventually(lambda: checkout_variants() == {"ON"})
        audit = served.flask("gk", "audit", "--flag", "NEW_CHECKOUT")
        applied = [line for line in audit.splitlines() if "schedule #" in line and "  force  " in line]
        assert len(applied) == 1, audit
        assert "(set by cli)" in applied[0]
    finally:
        served.flask("gk", "unforce", "NEW_CHECKOUT")
