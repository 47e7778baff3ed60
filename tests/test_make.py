"""The README's promise, kept as a new user would: in a fresh copy of the template, `make demo` bakes the
defaults and serves an app whose printed admin can log in; in that baked project, `make test` passes.

Slow (two virtualenvs are built from the package registry, as a new user's would be), so one demo serves
every test here.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from bakery import TEMPLATE_DIR, answers, free_port, log_in, run

pytestmark = pytest.mark.slow

DEMO_TIMEOUT = 900  # seconds for `make demo` to install, bake and serve on a slow registry


@dataclass
class Demo:
    checkout: Path
    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

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
    # A new user's shell: no virtualenv of ours active.
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    process = subprocess.Popen(
        ["make", "demo", f"PORT={port}"],
        cwd=checkout,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the server and its reloader stop together
    )
    demo = Demo(checkout, f"http://127.0.0.1:{port}", process)
    collect_output = threading.Thread(target=lambda: demo.output.extend(iter(process.stdout.readline, "")))
    collect_output.daemon = True
    collect_output.start()
    try:
        deadline = time.monotonic() + DEMO_TIMEOUT
        while not answers(demo.url + "/"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`make demo` did not serve the app:\n{''.join(demo.output)[-5000:]}")
            time.sleep(0.5)
        yield demo
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


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


def test_make_test_passes_in_the_demo_project(demo):
    """The baked project's own `make test`, in the folder `make demo` baked, passes its whole suite."""
    project = demo.checkout / "build" / "demo" / "gatekeeper_app"
    completed = run(["make", "test"], cwd=project, timeout=DEMO_TIMEOUT)
    assert re.search(r"\d+ passed", completed.stdout), completed.stdout[-2000:]
    assert " failed" not in completed.stdout
