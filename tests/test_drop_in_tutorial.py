"""Each level of the README's "Add gatekeeper to an existing Flask app", followed literally in an app shaped
like Flask's tutorial (tests/tutorial_app: raw sqlite3, its own session login, plain forms, its own tests).

For each level: install the README's `pip install` line in a fresh virtualenv, copy the files it names,
add its wiring lines at the marked place of the factory and nothing else, then run the tutorial's own
tests (which must still pass) together with a test module of ours that checks the flags and the dashboard.
"""

from __future__ import annotations

import re
import shutil
import sys
import textwrap
from pathlib import Path

import pytest
from bakery import TEMPLATE_DIR, ensure_virtualenv
from test_copy_into_existing_app import (
    DASHBOARD_FILES,
    ENGINE_FILES,
    ENGINE_ONLY_OWN_LOGIN,
    WITH_DASHBOARD_OWN_LOGIN,
    copy_baked_files,
    lowest,
    pip_requirements,
    readme_section,
    shop_tests,
    wiring_code,
)

pytestmark = pytest.mark.slow

TUTORIAL = TEMPLATE_DIR / "tests" / "tutorial_app"
WIRING_MARKER = "    # gatekeeper: the README's wiring goes here\n"
TUTORIAL_TESTS = 24  # what tests/tutorial_app/tests collects on its own


def tutorial_with_gatekeeper(root: Path, baked_project: Path, files: tuple[str, ...], wiring: str) -> Path:
    """A copy of the tutorial app in `root` with `files` copied into its package and `wiring` added."""
    app = root / "tutorial"
    shutil.copytree(TUTORIAL, app)
    copy_baked_files(baked_project, app / "flaskr", files)
    factory = app / "flaskr" / "__init__.py"
    source = factory.read_text(encoding="utf-8")
    assert WIRING_MARKER in source
    wired = source.replace(WIRING_MARKER, textwrap.indent(wiring.strip(), "    ") + "\n")
    factory.write_text(wired, encoding="utf-8")
    return app


def run_tests(app: Path, venv: Path, ours: str) -> str:
    """Run the tutorial's tests with `ours` beside them; fail unless every one of them passed."""
    (app / "tests" / "test_gatekeeper.py").write_text(ours, encoding="utf-8")
    output = shop_tests(app, venv)
    expected = TUTORIAL_TESTS + len(re.findall(r"^def test_", ours, flags=re.MULTILINE))
    assert re.search(rf"\b{expected} passed\b", output), output
    return output


@pytest.fixture(scope="module")
def readme_venvs() -> dict[int, Path]:
    """Per level, a virtualenv with exactly the README's `pip install` line at its lowest versions (and
    pytest to run the tests)."""
    return {
        level: ensure_virtualenv(sys.executable, [*lowest(pip_requirements(level)), "pytest>=8"])
        for level in (1, 2, 3)
    }


def test_the_readme_gives_the_lowest_python():
    """The section says which Python the copied files need."""
    assert re.search(r"Python 3\.1\d\*\* or newer", readme_section())


# --- Level 1: the engine only ----------------------------------------------------------------------------

# A page that asks flags, as the app's views will once it has flags: added by the tests, not the wiring.
FLAG_PAGE = """
import pytest
from flask import render_template_string, request


@pytest.fixture(autouse=True)
def flag_page(app):
    app.add_url_rule(
        "/flag",
        "flag",
        lambda: f"{request.gk.user_id} {request.gk.ff_variant('MY_NEW_FEATURE')} "
        + render_template_string("{{ ff('MY_NEW_FEATURE', 'VISIBLE') }}"),
    )


def register_and_log_in(client, username):
    client.post("/auth/register", data={"username": username, "password": "pw"})
    client.post("/auth/login", data={"username": username, "password": "pw"})
"""

ENGINE_CHECKS = (
    FLAG_PAGE
    + '''

def test_anonymous_visitors_get_the_default(client):
    assert client.get("/flag").text == "None NOT_VISIBLE False"


def test_a_logged_in_team_member_gets_the_feature(client, auth):
    """The tutorial's g.user is a sqlite3.Row: its "id" (1, on the team) is the user the flags are for."""
    auth.login()
    assert client.get("/flag").text == "1 VISIBLE True"


def test_a_logged_in_user_off_the_team_does_not(client):
    for name in ("carol", "dave"):  # ids 3 and 4; the team is 1, 2 and 3
        register_and_log_in(client, name)
    assert client.get("/flag").text == "4 NOT_VISIBLE False"


def test_explain_without_a_user_answers_for_an_anonymous_visitor(runner):
    result = runner.invoke(args=["gk", "explain", "HOMEPAGE_EXPERIMENT"])
    assert result.exit_code == 0
    assert "because: rule" in result.output and "anonymous visitor" in result.output
'''
)


def test_level_1_the_engine_in_the_tutorial_app(baked_project, readme_venvs, tmp_path):
    """The engine's two files and the README's lines for an app with its user in g.user: the tutorial's
    tests still pass, and its logged-in users get their own variants."""
    app = tutorial_with_gatekeeper(tmp_path, baked_project, ENGINE_FILES, wiring_code(ENGINE_ONLY_OWN_LOGIN))
    run_tests(app, readme_venvs[1], ENGINE_CHECKS)


# --- Level 2: the engine, the store and the dashboard ---------------------------------------------------

DASHBOARD_CHECKS = (
    ENGINE_CHECKS
    + '''

import re

FLAG = "/gatekeeper/flags/MY_NEW_FEATURE"


def post_form(client, action, **data):
    """Post to one of the flag page's forms with the CSRF token the page gave it."""
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(FLAG).text).group(1)
    return client.post(f"{FLAG}/{action}", data={**data, "csrf_token": token}, follow_redirects=True)


def test_an_admin_opens_the_dashboard(client):
    register_and_log_in(client, "admin")
    page = client.get("/gatekeeper/").text
    assert "MY_NEW_FEATURE" in page and "HOMEPAGE_EXPERIMENT" in page


def test_other_users_get_403(client, auth):
    auth.login()
    assert client.get("/gatekeeper/").status_code == 403
    assert client.post(f"{FLAG}/force", data={"variant": "VISIBLE"}).status_code == 403


def test_anonymous_visitors_go_to_the_login_page(client):
    response = client.get("/gatekeeper/audit")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login?next=/gatekeeper/audit"


def test_forcing_a_variant_reaches_everyone_and_is_audited(app, client):
    register_and_log_in(client, "admin")
    assert "everyone now gets VISIBLE" in post_form(client, "force", variant="VISIBLE", confirm="yes").text
    assert app.test_client().get("/flag").text == "None VISIBLE True"
    assert "admin" in app.test_cli_runner().invoke(args=["gk", "audit"]).output


def test_a_post_without_the_csrf_token_is_refused(app, client):
    register_and_log_in(client, "admin")
    response = client.post(f"{FLAG}/force", data={"variant": "VISIBLE", "confirm": "yes"})
    assert response.status_code == 400
    assert "CSRF token is missing" in response.text
    assert app.test_client().get("/flag").text == "None NOT_VISIBLE False"


def test_a_post_with_a_forged_csrf_token_is_refused(app, client):
    register_and_log_in(client, "admin")
    data = {"variant": "VISIBLE", "confirm": "yes", "csrf_token": "forged"}
    assert client.post(f"{FLAG}/force", data=data).status_code == 400
    assert app.test_client().get("/flag").text == "None NOT_VISIBLE False"


def test_an_override_names_a_real_user_through_the_lookup(client, auth):
    register_and_log_in(client, "admin")
    page = post_form(client, "users", user="dave", variant="VISIBLE").text
    assert "No user matches &#39;dave&#39;" in page
    page = post_form(client, "users", user="other", variant="NOT_VISIBLE").text
    assert "other now gets NOT_VISIBLE" in page
    auth.login("other", "other")
    assert client.get("/flag").text == "2 NOT_VISIBLE False"
'''
)


def test_level_2_the_dashboard_in_the_tutorial_app(baked_project, readme_venvs, tmp_path):
    """Engine, store, dashboard, templates and assets, and the README's lines for a raw-sqlite3 app: the
    tutorial's own form-posting tests still pass (no app-wide CSRF), its admin gets the dashboard, everyone
    else is refused, dashboard POSTs need their CSRF token, and unknown users cannot be named."""
    files = (*ENGINE_FILES, *DASHBOARD_FILES)
    app = tutorial_with_gatekeeper(tmp_path, baked_project, files, wiring_code(WITH_DASHBOARD_OWN_LOGIN))
    run_tests(app, readme_venvs[2], DASHBOARD_CHECKS)


# --- Level 3: the blog post's flat layout ---------------------------------------------------------------

# The rest of a single-module app.py: the post's "usual app setup" before its snippet, its views after.
FLAT_SETUP = """
from flask import Flask, render_template_string, request


def create_app():
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "flat"
    return app
"""

# From the post, verbatim: its usage in Python and in Jinja, and its MyNewFeatureFFConfig.
FLAT_VIEWS = """

@app.get("/")
def home():
    if request.gk.ff('MY_NEW_FEATURE', 'VISIBLE'):
        python = "new"
    else:
        python = "old"
    return python + " " + render_template_string(
        "{% if request.gk.ff('MY_NEW_FEATURE', 'VISIBLE') %}new{% else %}old{% endif %}"
    )
"""

SEED_CONFIG = """
class MyNewFeatureFFConfig(FeatureFlagConfig):
    FLAG_NAME = 'MY_NEW_FEATURE'
    VARIANTS_ENUM_STR = 'VISIBLE NOT_VISIBLE'
    DESCRIPTION = 'Gate visibility of my new feature during development'

    def _get_variant(self, user_id=None, app=None, request=None, session=None):
        if app and app.config.get('IS_DEV'):
            return self.variants_enum.VISIBLE
        elif user_id and user_id in [1, 2, 3]:  # Team user ids
            return self.variants_enum.VISIBLE
        else:
            return self.variants_enum.NOT_VISIBLE


FF_CONFIG_MAP: FFConfigMap = {
    'MY_NEW_FEATURE': MyNewFeatureFFConfig()
}
"""

FLAT_CHECKS = """
import gatekeeper
from app import app


def test_the_post_s_snippet_answers_in_views_and_jinja():
    app.config["IS_DEV"] = False
    assert app.test_client().get("/").text == "old old"


def test_the_post_s_is_dev_rule_shows_the_feature():
    app.config["IS_DEV"] = True
    assert app.test_client().get("/").text == "new new"


def test_a_team_member_gets_the_feature():
    app.config["IS_DEV"] = False
    with app.test_request_context():
        assert gatekeeper.initialize_gatekeeper(user_id=2, app=app).ff("MY_NEW_FEATURE", "VISIBLE")
"""


def test_level_3_the_blog_posts_flat_layout(baked_project, readme_venvs, tmp_path):
    """gatekeeper.py and gatekeeper_config.py beside app.py, the post's `register_gatekeeper` hook from the
    README, its views and templates and its MyNewFeatureFFConfig verbatim: `import gatekeeper` just works."""
    copy_baked_files(baked_project, tmp_path, ENGINE_FILES)
    config = (tmp_path / "gatekeeper_config.py").read_text(encoding="utf-8")
    imports = config[: config.index("\nTEAM_USER_IDS")]  # the baked file's docstring and imports
    (tmp_path / "gatekeeper_config.py").write_text(imports + SEED_CONFIG, encoding="utf-8")
    snippet = wiring_code("# All the usual app setup stuff here...")
    (tmp_path / "app.py").write_text(FLAT_SETUP + "\n" + snippet + FLAT_VIEWS, encoding="utf-8")
    (tmp_path / "test_app.py").write_text(FLAT_CHECKS, encoding="utf-8")
    assert "3 passed" in shop_tests(tmp_path, readme_venvs[3])


# The flat layout with the folder too (level 2's files beside app.py): `import gatekeeper_control` finds the
# top-level gatekeeper.py, and the README's level-2 wiring works as written there, minus the relative dots.
FLAT_WITH_FOLDER = """
import os

from flask import Flask, request

import gatekeeper
import gatekeeper_control
from gatekeeper_config import FF_CONFIG_MAP

app = Flask(__name__)
app.config["SECRET_KEY"] = "flat"
overrides = gatekeeper_control.init_app(app, "sqlite:///" + os.environ["FLAT_DB"])
gatekeeper.init_app(app, FF_CONFIG_MAP, store=overrides)
with app.app_context():
    gatekeeper_control.create_tables()


@app.get("/")
def home():
    return "new" if request.gk.ff("MY_NEW_FEATURE", "VISIBLE") else "old"
"""

FLAT_WITH_FOLDER_CHECKS = """
from app import app


def test_a_variant_forced_from_the_cli_reaches_the_flat_app():
    assert app.test_client().get("/").text == "old"
    result = app.test_cli_runner().invoke(args=["gk", "force", "MY_NEW_FEATURE", "VISIBLE"])
    assert result.exit_code == 0, result.output
    assert app.test_client().get("/").text == "new"


def test_the_dashboard_is_served_from_the_folder():
    assert app.test_client().get("/gatekeeper/static/gatekeeper.css").status_code == 200
"""


def test_level_2_files_in_the_blog_posts_flat_layout(baked_project, readme_venvs, tmp_path):
    """The two files and the folder beside a single-module app.py, at the README's level-2 versions: the
    store, the CLI and the dashboard's assets work with the engine as a top-level module."""
    copy_baked_files(baked_project, tmp_path, (*ENGINE_FILES, *DASHBOARD_FILES))
    (tmp_path / "app.py").write_text(FLAT_WITH_FOLDER, encoding="utf-8")
    (tmp_path / "test_app.py").write_text(FLAT_WITH_FOLDER_CHECKS, encoding="utf-8")
    assert "2 passed" in shop_tests(tmp_path, readme_venvs[2], FLAT_DB=str(tmp_path / "flat.db"))
