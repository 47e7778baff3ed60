"""Exposures on a real server: gunicorn buffers them off the request path and writes what is left when it
stops; the flag page shows the chart in headless Chromium, on a desktop and a phone (screenshots)."""

from __future__ import annotations

import secrets
import sqlite3
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from bakery import BUILD_DIR, copy_project, flask_cli, free_port, serving

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = BUILD_DIR / "test-output" / "browser"
PASSWORD = "an exposures test password"
ADMIN = "admin@example.com"
VISITS = 60


@contextmanager
def served(project: Path, env: dict[str, str]) -> Iterator[str]:
    """gunicorn (one worker) serving the project; ready once the login page answers, a page that asks no
    flag, so that the readiness checks add no exposures. Stopped with SIGTERM at the end of the block."""
    address = f"127.0.0.1:{free_port()}"
    command = [
        "python",
        "-m",
        "gunicorn",
        "--bind",
        address,
        "--workers",
        "1",
        f"{project.name}:create_app()",
    ]
    with serving(command, f"http://{address}/auth/login", cwd=project, env=env):
        yield f"http://{address}"


def visit_home(url: str, visits: int) -> None:
    """`visits` anonymous visitors, each with their own `gk_anon` id, open the home page."""
    for _ in range(visits):
        request = urllib.request.Request(f"{url}/", headers={"Cookie": f"gk_anon={secrets.token_hex(16)}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200


def stored(database: Path, flag: str) -> tuple[int, int]:
    """(exposures, distinct units) written for `flag`."""
    with sqlite3.connect(database) as connection:
        exposures = connection.execute(
            "SELECT COALESCE(SUM(count), 0) FROM gatekeeper_exposures WHERE flag = ?", (flag,)
        ).fetchone()[0]
        units = connection.execute(
            "SELECT COUNT(DISTINCT unit) FROM gatekeeper_exposure_units WHERE flag = ?", (flag,)
        ).fetchone()[0]
    return exposures, units


@pytest.fixture
def project(baked_project, baked_env, tmp_path) -> tuple[Path, dict[str, str], Path]:
    """A copy of the defaults bake on its own SQLite file, with an admin; (project, env, database)."""
    project = copy_project(baked_project, tmp_path)
    database = project / "exposures.db"
    env = {**baked_env(), "DATABASE_URL": f"sqlite:///{database}"}
    flask_cli(project, env, "init-db")
    flask_cli(project, env, "users", "create", ADMIN, "--admin", "--password", PASSWORD)
    return project, env, database


def test_gunicorn_writes_buffered_exposures_when_it_stops(project):
    """With the writer set to wait an hour, nothing reaches the database while serving; stopping gunicorn
    (SIGTERM, as a deploy does) writes every exposure and every distinct visitor."""
    project, env, database = project
    env = {**env, "GATEKEEPER_EXPOSURES_FLUSH": "3600"}
    with served(project, env) as url:
        visit_home(url, VISITS)
        assert stored(database, "MY_NEW_FEATURE") == (0, 0)
    assert stored(database, "MY_NEW_FEATURE") == (VISITS, VISITS)
    exposures, units = stored(database, "HOMEPAGE_EXPERIMENT")
    assert (exposures, units) == (VISITS, VISITS)


@pytest.fixture
def browser() -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (make test installs it when run as root)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"]
        )
        yield browser
        browser.close()


@pytest.mark.parametrize(("device", "viewport"), [("desktop", (1280, 900)), ("phone", (390, 844))])
def test_flag_page_shows_the_exposure_chart_in_a_browser(project, browser, device, viewport):
    """After visits served by gunicorn, the admin's flag page draws one line per variant and the users
    table, fitting the screen's width; saved as flag-exposures-<device>.png."""
    project, env, _database = project
    with served(project, env) as url:
        visit_home(url, VISITS)
        width, height = viewport
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto(f"{url}/auth/login")
        page.fill("#email", ADMIN)
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_url(f"{url}/")
        page.goto(f"{url}/gatekeeper/flags/HOMEPAGE_EXPERIMENT")
        chart = page.locator("svg.gk-chart")
        assert chart.is_visible()
        assert page.locator("svg.gk-chart polyline").count() == 3
        # The visitors, and the admin's own landing on the home page after logging in.
        assert f"{VISITS + 1} in all" in page.locator(".gk-exposures").inner_text()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 0 and box["x"] + box["width"] <= width
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(".gk-exposures").screenshot(path=str(SCREENSHOTS / f"flag-exposures-{device}.png"))
        context.close()
