"""Guarded releases end to end: gunicorn with two workers on a real PostgreSQL, a load generator of new
visitors, and NEW_CHECKOUT released with milestones of seconds. A broken ON (10% of its requests fail) is
rolled back by the release itself, with the evidence in the audit log and the server's log, and nothing is
served ON after that; a healthy ON reaches 100%.

The page is a test-only app (`release_app/release_app.py`, copied into the bake here, never shipped).
Figures are printed, never asserted; loops are bounded in count and time.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from bakery import copy_project, flask_cli, free_port, run, serving
from pgserver import postgres_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("guarded_release")]

FIXTURE_APP = Path(__file__).parent / "release_app"
THREADS = 6
LIMIT_SECONDS = 120  # the most a release gets to end under load
AFTER = 200  # requests sent after the rollback was seen


@dataclass
class Served:
    url: str
    project: Path
    env: dict[str, str]
    output: list[str]

    def flask(self, *args: str, check: bool = True) -> str:
        command = ["python", "-m", "flask", "--app", "release_app", *args]
        return run(command, cwd=self.project, env=self.env, check=check).stdout

    def visit(self, broken: bool) -> tuple[str, int]:
        """One new visitor (no cookies) on the checkout page: (the variant served, or "", the status)."""
        url = f"{self.url}/_checkout" + ("?broken=1" if broken else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)["variant"], response.status
        except urllib.error.HTTPError as error:
            return "", error.code

    def release_state(self) -> str:
        return self.flask("gk", "release", "status", "NEW_CHECKOUT").splitlines()[0]

    def load_until(self, ended: str, broken: bool) -> Counter[tuple[str, int]]:
        """Send new visitors until the release's state line says `ended` (or LIMIT_SECONDS pass)."""
        seen: Counter[tuple[str, int]] = Counter()
        deadline = time.monotonic() + LIMIT_SECONDS
        with ThreadPoolExecutor(THREADS) as pool:
            while time.monotonic() < deadline:
                seen.update(pool.map(lambda _: self.visit(broken), range(300)))
                if ended in self.release_state():
                    break
        return seen


@pytest.fixture(scope="module")
def served(bake, baked_env, tmp_path_factory) -> Iterator[Served]:
    with postgres_server() as server:
        url = server.create_database("releases")
        project = copy_project(bake(database="postgresql"), tmp_path_factory.mktemp("releases"))
        shutil.copy(FIXTURE_APP / "release_app.py", project)
        env = {
            **baked_env(extras=("dev", "postgres")),
            "DATABASE_URL": url,
            "SECRET_KEY": "guarded-release-test-secret",
            "BAKED_PACKAGE": project.name,
            "GATEKEEPER_RELEASE_CHECK_SECONDS": "1",
            "GATEKEEPER_RELEASE_MIN_SECONDS": "2",
            "GATEKEEPER_RELEASE_MIN_SAMPLE": "400",
            "GATEKEEPER_OUTCOMES_FLUSH": "1",
        }
        flask_cli(project, env, "init-db")
        address = f"127.0.0.1:{free_port()}"
        command = ["python", "-m", "gunicorn", "--bind", address, "--workers", "2", "release_app:app"]
        with serving(command, f"http://{address}/", cwd=project, env=env) as output:
            yield Served(f"http://{address}", project, env, output)


def start_release(served: Served) -> None:
    """Start NEW_CHECKOUT's release (ending one an earlier test left running, so each test stands alone)."""
    served.flask("gk", "release", "abort", "NEW_CHECKOUT", check=False)
    served.flask(
        "gk", "release", "start", "NEW_CHECKOUT", "--treatment", "ON", "--control", "OFF",
        "--milestones", "50,100", "--reason", "end-to-end test",
    )  # fmt: skip


def test_a_broken_treatment_is_rolled_back_by_the_release_and_never_served_after(served):
    start_release(served)
    seen = served.load_until("rolled_back", broken=True)
    print(f"until the rollback: {dict(seen)}")
    assert "rolled_back" in served.release_state()
    after = Counter(served.visit(broken=True) for _ in range(AFTER))
    assert after == Counter({("OFF", 200): AFTER})
    audit = served.flask("gk", "audit", "--flag", "NEW_CHECKOUT")
    assert "rolled back from 50%: errors: treatment" in audit
    assert any("rolled back from 50%" in line for line in served.output)


def test_a_healthy_treatment_reaches_everyone(served):
    start_release(served)
    seen = served.load_until("completed", broken=False)
    print(f"until complete: {dict(seen)}")
    assert "completed" in served.release_state()
    assert {served.visit(broken=False) for _ in range(50)} == {("ON", 200)}
