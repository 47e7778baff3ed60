"""The README's promise, kept as a new user would: in a fresh copy of the template, `make demo` bakes the
defaults and serves an app whose printed admin can log in; in that baked project, `make test` passes.

Slow (two virtualenvs are built from the package registry, as a new user's would be), so one demo serves
every test here.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bakery import TEMPLATE_DIR, free_port, log_in, run, serving

pytestmark = pytest.mark.slow

DEMO_TIMEOUT = 900  # seconds for `make demo` to install, bake and serve on a slow registry


@dataclass
class Demo:
    checkout: Path
    url: str
    output: list[str]

    def printed(self, label: str) -> str:
        """A value `make demo` printed on a line `label: value` (e.g. the demo admin's password)."""
        for line in self.output:
            match = re.match(rf"\s*{label}:\s+(\S+)\s*$", line)
            if match:
                return match.group(1)
        raise AssertionError(f"`make demo` printed no {label!r} line:\n{''.join(self.output)[-3000:]}")


def fresh_copy(destination: Path) -> Path:
    """The template's files as a fresh clone has them: those git tracks, plus new ones it does not ignore."""
    listed = run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=TEMPLATE_DIR
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = TEMPLATE_DIR / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Iterator[Demo]:
    checkout = fresh_copy(tmp_path_factory.mktemp("clone") / "flask-gatekeeper")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A new user's shell: no virtualenv of ours active.
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    with serving(["make", "demo", f"PORT={port}"], url + "/", checkout, env, timeout=DEMO_TIMEOUT) as output:
        yield Demo(checkout, url, output)


def test_make_demo_serves_the_home_page_with_the_sample_flags(demo):
    """The served home page shows the headline experiment, whatever variant this visitor gets."""
    with urllib.request.urlopen(demo.url + "/") as response:
        page = response.read().decode()
    assert 'id="homepage-experiment"' in page
    assert "Gatekeeper App" in page


def test_the_admin_make_demo_prints_can_log_in(demo):
    """The email and password `make demo` prints open a session: the header then names the admin."""
    email, password = demo.printed("email"), demo.printed("password")
    _, page = log_in(demo.url, email, password)
    assert re.search(rf'id="whoami">{re.escape(email)}<', page)
    assert 'href="/gatekeeper/">Flags</a>' in page


def test_a_wrong_password_does_not_log_in(demo):
    """The printed email with another password stays on the login form."""
    _, page = log_in(demo.url, demo.printed("email"), "not-the-password")
    assert 'id="whoami"' not in page


def test_the_demo_users_make_demo_prints_can_log_in_and_are_not_admins(demo):
    """Beside the admin, `make demo` prints demo users and their password: each logs in, and none gets the
    dashboard's link (so a new user can fill a group with real people, without a shell)."""
    (line,) = [line for line in demo.output if line.startswith("Demo users")]
    emails = line.split(": ", 1)[1].split(", ")
    assert len(emails) == 3
    for email in emails:
        _, page = log_in(demo.url, email.strip(), demo.printed("their password"))
        assert re.search(rf'id="whoami">{re.escape(email.strip())}<', page)
        assert 'href="/gatekeeper/">Flags</a>' not in page


def test_make_demo_keeps_its_tools_out_of_the_clone(demo):
    """uv (when it is not on PATH) and cookiecutter live in the user's cache, not the clone, so the clone's
    build/ holds the demo alone and the next clone does not fetch them again."""
    assert sorted(path.name for path in (demo.checkout / "build").iterdir()) == ["demo"]


def test_make_test_passes_in_the_demo_project(demo):
    """The baked project's own `make test`, in the folder `make demo` baked, installs its dev tools and runs
    its suite. Here a few of its files (pytest's PYTEST_ADDOPTS names them): the same bake's whole suite
    runs in test_baked_projects.py, and twice would add minutes and prove nothing more."""
    project = demo.checkout / "build" / "demo" / "gatekeeper_app"
    env = {**os.environ, "PYTEST_ADDOPTS": "tests/test_factory.py tests/test_home.py"}
    env.pop("VIRTUAL_ENV", None)
    completed = run(["make", "test"], cwd=project, env=env, timeout=DEMO_TIMEOUT)
    assert re.search(r"\d+ passed", completed.stdout), completed.stdout[-2000:]
    assert " failed" not in completed.stdout
